"""The ORM classes, mapped onto the one schema in strategies/tables.py (SQLAlchemy 2.0 style)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.orm import Mapped

from app.extensions import Base, db
from strategies import tables
from strategies.clock import utcnow

if TYPE_CHECKING:  # mypy cannot see through db.Model; it is a subclass of Base
    Model = Base
else:
    Model = db.Model

__all__ = ["Coupon", "Member", "MemberCoupon", "Revocation", "utcnow"]


class Member(Model):
    """A person who signs in: a member who downloads, or a seller who registers coupons."""

    __table__ = tables.member

    id: Mapped[int]
    username: Mapped[str]
    password_hash: Mapped[str]
    role: Mapped[str]
    created_at: Mapped[datetime]


class Coupon(Model):
    """A coupon a seller registered, with a limited quantity and an issuance window."""

    __table__ = tables.coupon

    id: Mapped[int]
    name: Mapped[str]
    quantity: Mapped[int]
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime | None]
    seller_id: Mapped[int]
    created_at: Mapped[datetime]


class MemberCoupon(Model):
    """One coupon given to one member (see tables.member_coupon)."""

    __table__ = tables.member_coupon

    id: Mapped[int]
    member_id: Mapped[int]
    coupon_id: Mapped[int]
    issued_at: Mapped[datetime]


class Revocation(Model):
    """A member whose access an operator ended (see tables.revocation and app/revocations.py)."""

    __table__ = tables.revocation

    member_id: Mapped[int]
    status: Mapped[str]
    revoked_at: Mapped[int]
