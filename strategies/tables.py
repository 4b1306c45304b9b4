"""The schema, defined once and Flask-free: app/models.py maps onto it, the lock strategy and the drain use it.

Alembic's migrations must agree with it: tests/test_schema.py autogenerates against a migrated
database and expects no difference.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

from strategies.clock import utcnow

metadata = sa.MetaData()

# SQLite keeps BIGINT primary keys out of ROWID aliasing; INTEGER there, BIGINT elsewhere.
_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")

member = sa.Table(
    "member",
    metadata,
    sa.Column("id", _ID, primary_key=True),
    sa.Column("username", sa.String(64), nullable=False, unique=True),
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("role", sa.String(16), nullable=False, default="member"),
    sa.Column("created_at", sa.DateTime, nullable=False, default=utcnow),
    # A member's id is the subject of its tokens: never reuse one (a deleted member's token would act
    # as the next member to sign up; SQLite would reuse the highest freed id).
    sqlite_autoincrement=True,
    mysql_charset="utf8mb4",
    mysql_collate="utf8mb4_unicode_ci",
)

# Members whose access an operator ended (app/revocations.py): the durable record every API process's
# in-memory view is built from. ``status`` is ``revoked`` (tokens issued at or before ``revoked_at``
# are refused), ``banned`` or ``deleted`` (every token refused). No foreign key: a deleted member's
# row outlives the member.
revocation = sa.Table(
    "revocation",
    metadata,
    sa.Column("member_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("revoked_at", sa.BigInteger, nullable=False),  # epoch seconds, compared with a token's iat
    mysql_charset="utf8mb4",
    mysql_collate="utf8mb4_unicode_ci",
)

coupon = sa.Table(
    "coupon",
    metadata,
    sa.Column("id", _ID, primary_key=True),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("quantity", sa.Integer, nullable=False),
    sa.Column("starts_at", sa.DateTime, nullable=False),
    sa.Column("ends_at", sa.DateTime, nullable=True),
    sa.Column("seller_id", sa.BigInteger, sa.ForeignKey("member.id"), nullable=False, index=True),
    sa.Column("created_at", sa.DateTime, nullable=False, default=utcnow),
    # A coupon's id names its Redis state: never reuse one (SQLite would reuse the highest freed id).
    sqlite_autoincrement=True,
    mysql_charset="utf8mb4",
    mysql_collate="utf8mb4_unicode_ci",
)

# One coupon given to one member: the row every 201/202 becomes. No foreign keys: the batched
# drain inserts tens of thousands of rows a second, and both ids come from a signed token and a
# registered coupon. UNIQUE(member_id, coupon_id) serves "coupons of this member" and refuses a
# second issue; the coupon_id index serves "rows of this coupon".
member_coupon = sa.Table(
    "member_coupon",
    metadata,
    sa.Column("id", _ID, primary_key=True),
    sa.Column("member_id", sa.BigInteger, nullable=False),
    sa.Column("coupon_id", sa.BigInteger, nullable=False, index=True),
    sa.Column(
        "issued_at",
        sa.DateTime(timezone=False).with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb"),
        nullable=False,
        default=utcnow,
    ),
    sa.UniqueConstraint("member_id", "coupon_id", name="uq_member_coupon_member_coupon"),
    mysql_charset="utf8mb4",
    mysql_collate="utf8mb4_unicode_ci",
)


def insert_ignore() -> sa.Insert:
    """One idempotent bulk insert of member_coupon rows for MySQL/MariaDB and SQLite alike."""
    return sa.insert(member_coupon).prefix_with("IGNORE", dialect="mysql").prefix_with("OR IGNORE", dialect="sqlite")
