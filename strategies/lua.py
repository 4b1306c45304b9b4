"""The lua strategy: one atomic script decides and marks the winner; persistence is queued."""

from __future__ import annotations

from typing import Any

import redis

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
        # A standalone Redis takes the win's notes inside the script: one round trip a download.
        self._notes_in_script = not isinstance(client, redis.RedisCluster)

    def issue(self, coupon_id: int, member_id: int) -> Outcome:
        """Mark ``member_id`` a winner of ``coupon_id`` if every requirement holds."""
        tagged = [keys.coupon(coupon_id), keys.winners(coupon_id), keys.queue(coupon_id)]
        if self._notes_in_script:
            code = self._issue(
                keys=[*tagged, keys.DRAIN_DUE, keys.member_pending(member_id)], args=[member_id, coupon_id]
            )
            return CODES[int(code)]
        outcome = CODES[int(self._issue(keys=tagged, args=[member_id]))]
        if outcome is Outcome.PENDING:
            note_winner(self._client, coupon_id, member_id)
        return outcome


def note_winner(client: Any, coupon_id: int, member_id: int) -> None:
    """After a win on a cluster, before its 202: the coupon is due for a drain, the member has it pending.

    On a standalone Redis lua/issue.lua writes both in its atomic step. On a cluster these keys sit
    in other slots than the coupon's, so they cannot be in the script: one more pipelined round
    trip, paid by winners only. Written after the queue entry, so a drain that empties the queue
    cannot miss it (jobs.drain._no_longer_due); if the process dies between the script and this
    note, the scheduler's sweep finds the waiting winner.
    """
    pipe = client.pipeline(transaction=False)
    pipe.sadd(keys.DRAIN_DUE, coupon_id)
    pipe.sadd(keys.member_pending(member_id), coupon_id)
    pipe.execute()
