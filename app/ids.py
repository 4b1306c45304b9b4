"""Ids as clients write them: in paths (the ``id`` URL converter) and in query parameters.

An id is ASCII digits without a leading zero, at most 2**63 - 1 (a BIGINT): one spelling per id,
so ``/coupons/00001``, ``/coupons/１`` and ``/coupons/٣`` name no coupon (Werkzeug's ``int``
converter reads all three as numbers).
"""

from __future__ import annotations

import re

from werkzeug.exceptions import NotFound
from werkzeug.routing import BaseConverter

MAX_ID = 2**63 - 1
DIGITS = "[0-9]+"  # ASCII only: \d would match every script's digits
_CANONICAL = re.compile(r"[1-9][0-9]{0,18}")


def parse(text: str) -> int | None:
    """The id ``text`` spells, or None if it spells none."""
    if not _CANONICAL.fullmatch(text):
        return None
    value = int(text)
    return value if value <= MAX_ID else None


class UnknownId(NotFound):
    """ASCII digits in an id's place that spell no id: the route's own 404, before its view runs."""


class IdConverter(BaseConverter):
    """``<id:name>``: an id in a path. Other digits are :class:`UnknownId`; anything else matches no route."""

    regex = DIGITS
    part_isolating = True

    def to_python(self, value: str) -> int:
        """The id, or UnknownId."""
        parsed = parse(value)
        if parsed is None:
            raise UnknownId()
        return parsed

    def to_url(self, value: int) -> str:
        """The id's one spelling."""
        return str(int(value))
