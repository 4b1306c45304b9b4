"""The lua strategy: one atomic script decides and marks the winner; persistence is queued."""

from __future__ import annotations

from typing import Any

from strategies import keys, scripts
from strategies.base import Outcome

# Return codes of lua/issue.lua.
CODES = {
    0: Outcome.PENDING,
    1: Outcome.NOT_FOUND,
    2: Outcome.NOT_STARTED,
    3: Outcome.ENDED,
    4: Outcome.ALREADY_ISSUED,
    5: Outcome.SOLD_OUT,
}


class LuaStrategy:
    """Checks existence, window, duplicate and stock in one EVALSHA; no database on this path."""

    def __init__(self, client: Any, **_settings: Any) -> None:
        self._issue = scripts.register(client, "issue")

    def issue(self, coupon_id: int, member_id: int) -> Outcome:
        """Mark ``member_id`` a winner of ``coupon_id`` if every requirement holds."""
        code = self._issue(
            keys=[keys.coupon(coupon_id), keys.winners(coupon_id), keys.queue(coupon_id)],
            args=[member_id],
        )
        return CODES[int(code)]
