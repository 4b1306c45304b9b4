"""The lua strategy: one atomic script decides and marks the winner; persistence is queued."""

from __future__ import annotations

from typing import Any

from strategies import keys, scripts
from strategies.base import Outcome

# Return codes of lua/issue.lua.
CODES = {
    scripts.OK: Outcome.PENDING,
    scripts.NOT_FOUND: Outcome.NOT_FOUND,
    scripts.NOT_STARTED: Outcome.NOT_STARTED,
    scripts.ENDED: Outcome.ENDED,
    scripts.ALREADY_ISSUED: Outcome.ALREADY_ISSUED,
    scripts.SOLD_OUT: Outcome.SOLD_OUT,
}


class LuaStrategy:
    """Checks existence, window, duplicate and stock in one EVALSHA; no database on this path."""

    def __init__(self, client: Any, **_settings: Any) -> None:
        self._client = client
        self._issue = scripts.register(client, "issue")

    def issue(self, coupon_id: int, member_id: int) -> Outcome:
        """Mark ``member_id`` a winner of ``coupon_id`` if every requirement holds."""
        code = self._issue(
            keys=[keys.coupon(coupon_id), keys.winners(coupon_id), keys.queue(coupon_id)],
            args=[member_id],
        )
        outcome = CODES[int(code)]
        if outcome is Outcome.PENDING:
            note_winner(self._client, coupon_id, member_id)
        return outcome


def note_winner(client: Any, coupon_id: int, member_id: int) -> None:
    """After a win, before its 202: the coupon is due for a drain, the member has it pending.

    Outside the script because these keys sit in other slots than the coupon's on a cluster; one
    pipelined round trip, paid by winners only. Written after the queue entry, so a drain that
    empties the queue cannot miss it (jobs.drain._no_longer_due); if the process dies between the
    script and this note, the scheduler's sweep finds the waiting winner.
    """
    pipe = client.pipeline(transaction=False)
    pipe.sadd(keys.DRAIN_DUE, coupon_id)
    pipe.sadd(keys.member_pending(member_id), coupon_id)
    pipe.execute()
