"""The protocol every strategy follows and the outcomes it may return."""

from __future__ import annotations

import enum
from typing import Protocol


class Outcome(enum.Enum):
    """What one download request came to; its value is the answer's word, mapped to HTTP in app/errors.py."""

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
