"""After a run: is every guarantee kept? Redis and the database are read directly."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from experiments.engine.results import Audit
from strategies import keys, state

ROWS = sa.text("SELECT member_id, issued_at FROM member_coupon WHERE coupon_id = :c")


def persisted(engine: sa.Engine, coupon_id: int) -> list[tuple[int, datetime]]:
    """The coupon's rows as (member id, issued_at)."""
    with engine.connect() as conn:
        return [(int(m), _as_datetime(t)) for m, t in conn.execute(ROWS, {"c": coupon_id})]


def winners_in_redis(client: Any, strategy: str, coupon_id: int, quantity: int) -> int:
    """How many members Redis says won: the Set of winners (lua) or the stock spent (lock)."""
    if strategy == "lua":
        return int(client.scard(keys.winners(coupon_id)))
    return quantity - (state.stock(client, coupon_id) or 0)


def audit(
    client: Any,
    engine: sa.Engine,
    strategy: str,
    coupon_id: int,
    quantity: int,
    asked: set[int],
    won_responses: int,
    failures: int,
    in_flight: frozenset[int] | set[int] = frozenset(),
) -> Audit:
    """Every check of the contract's guarantees for one run, with the counts behind them.

    ``asked``: members with an answered request. A request never answered (a broken connection, or
    in flight when the load stopped: ``in_flight`` members) may or may not have won, so the checks
    allow for exactly those and no more. With none, every bound below is an equality.
    """
    rows = persisted(engine, coupon_id)
    members = [m for m, _ in rows]
    winners = winners_in_redis(client, strategy, coupon_id, quantity)
    possible = asked | set(in_flight)
    # Until stock ran out, every answered asker won; nobody who never asked can have won.
    lowest, highest = min(quantity, len(asked)), min(quantity, len(possible))
    unanswered = len(in_flight) + failures
    queue_left = int(client.zcard(keys.queue(coupon_id)))
    if strategy == "lua":
        agrees = {int(m) for m in client.smembers(keys.winners(coupon_id))} == set(members)
    else:
        agrees = winners == len(rows)
    checks = {
        "rows == winners": len(rows) == winners,
        "winners == min(quantity, distinct askers)": lowest <= winners <= highest,
        "no member twice": len(set(members)) == len(members),
        "only members who asked": set(members) <= possible,
        "queue empty": queue_left == 0,
        "redis agrees with database": agrees,
        "every 2xx is a row": won_responses <= len(rows) <= won_responses + unanswered,
    }
    return Audit(
        ok=all(checks.values()),
        checks=checks,
        rows=len(rows),
        winners=winners,
        expected_winners=lowest if lowest == highest else f"{lowest}-{highest}",
        distinct_askers=len(asked),
        unanswered=unanswered,
        queue_left=queue_left,
    )


def _as_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))
