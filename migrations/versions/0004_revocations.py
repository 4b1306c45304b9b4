"""Revocations, and member ids never reused: AUTOINCREMENT on SQLite

An operator ends a member's access (ban, delete, role or password change): the ``revocation`` row
is the durable record each API process's view of revocations is rebuilt from. A member's id is the
subject of its tokens, so SQLite must not hand a deleted highest id to the next member (MySQL and
MariaDB never reuse an AUTO_INCREMENT value).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06

"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "revocation",
        sa.Column("member_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("revoked_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("member_id"),
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_unicode_ci",
    )
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table("member", recreate="always", table_kwargs={"sqlite_autoincrement": True}):
            pass


def downgrade():
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table("member", recreate="always", table_kwargs={"sqlite_autoincrement": False}):
            pass
    op.drop_table("revocation")
