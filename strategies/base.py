"""The protocol every strategy follows and the outcomes it may return."""

from __future__ import annotations

import enum
from typing import Protocol

import sqlalchemy as sa


class Outcome(enum.Enum):
    """What one download request came to; mapped to HTTP in one place (app/errors.py)."""

    ISSUED = "issued"  # the row is committed (lock)
    PENDING = "pending"  # the member won; the row follows when the queue drains (lua)
    NOT_FOUND = "coupon_not_found"
    NOT_STARTED = "not_started"
    ENDED = "ended"
    ALREADY_ISSUED = "already_issued"
    SOLD_OUT = "sold_out"


class Unavailable(Exception):
    """Redis, the database or the lock could not be had in time: the outcome is unknown."""


class IssueStrategy(Protocol):
    """Decides one download request for one member."""

    def issue(self, coupon_id: int, member_id: int) -> Outcome:
        """Try to give ``coupon_id`` to ``member_id``; raise Unavailable if that cannot be decided."""
        ...


# The issued-coupon table as the strategies and the drain see it; the schema itself lives in
# app/models.py and migrations/. A table clause keeps this package free of Flask.
member_coupon = sa.table(
    "member_coupon",
    sa.column("member_id", sa.BigInteger),
    sa.column("coupon_id", sa.BigInteger),
    sa.column("issued_at", sa.DateTime),
)
