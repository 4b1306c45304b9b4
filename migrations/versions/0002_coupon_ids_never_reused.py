"""Coupon ids are never reused: AUTOINCREMENT on SQLite

A coupon's id names its state in Redis. SQLite without AUTOINCREMENT hands a deleted highest id
to the next row, which would then meet the old coupon's state. MySQL/MariaDB never reuse an
AUTO_INCREMENT value, so only SQLite changes.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25

"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade():
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table("coupon", recreate="always", table_kwargs={"sqlite_autoincrement": True}):
            pass


def downgrade():
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table("coupon", recreate="always", table_kwargs={"sqlite_autoincrement": False}):
            pass
