"""Every table in utf8mb4, whatever the database's default character set

A database created with a latin1 default gave its tables latin1 columns: a Hangul username or an
emoji coupon name could not be stored (500 at sign-up, 503 at log-in). MySQL/MariaDB only; SQLite
stores UTF-8 already.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25

"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TABLES = ("member", "coupon", "member_coupon")


def upgrade():
    if op.get_bind().dialect.name in ("mysql", "mariadb"):
        for table in TABLES:
            op.execute(f"ALTER TABLE {table} CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")


def downgrade():
    # Nothing: converting back could not hold the text utf8mb4 let in.
    pass
