"""The schema: member, coupon, member_coupon (SQLAlchemy 2.0 style)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import Base, db

if TYPE_CHECKING:  # mypy cannot see through db.Model; it is a subclass of Base
    Model = Base
else:
    Model = db.Model


def utcnow() -> datetime:
    """Naive UTC now: the database stores UTC without a zone."""
    return datetime.now(UTC).replace(tzinfo=None)


class Member(Model):
    """A person who signs in: a member who downloads, or a seller who registers coupons."""

    __tablename__ = "member"

    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True)
    username: Mapped[str] = mapped_column(sa.String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(sa.String(255))
    role: Mapped[str] = mapped_column(sa.String(16), default="member")
    created_at: Mapped[datetime] = mapped_column(sa.DateTime, default=utcnow)


class Coupon(Model):
    """A coupon a seller registered, with a limited quantity and an issuance window."""

    __tablename__ = "coupon"

    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(100))
    quantity: Mapped[int] = mapped_column(sa.Integer)
    starts_at: Mapped[datetime] = mapped_column(sa.DateTime)
    ends_at: Mapped[datetime | None] = mapped_column(sa.DateTime)
    seller_id: Mapped[int] = mapped_column(sa.BigInteger, sa.ForeignKey("member.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime, default=utcnow)


class MemberCoupon(Model):
    """One coupon given to one member; the row every 201/202 becomes.

    No foreign keys: the batched drain inserts tens of thousands of rows a second, and both ids
    come from a signed token and a registered coupon. UNIQUE(member_id, coupon_id) serves
    "coupons of this member"; the coupon_id index serves "rows of this coupon".
    """

    __tablename__ = "member_coupon"
    __table_args__ = (sa.UniqueConstraint("member_id", "coupon_id", name="uq_member_coupon_member_coupon"),)

    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True)
    member_id: Mapped[int] = mapped_column(sa.BigInteger)
    coupon_id: Mapped[int] = mapped_column(sa.BigInteger, index=True)
    issued_at: Mapped[datetime] = mapped_column(
        sa.DateTime(timezone=False).with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb"), default=utcnow
    )
