"""Coupons whose Redis state is missing: found, recorded for /healthz, rebuilt from the database. No Flask here.

Redis holds every open coupon's stock and winners. A Redis that lost its data (a failover
without persistence, a flushed instance) leaves coupons with a row and no state. The scheduler
checks at its start and records what it finds; ``/healthz`` reports it; downloads of such a
coupon answer 503, never "not found"; ``flask --app wsgi rebuild-state`` (app/recovery.py)
restores them.

A rebuild sets stock = quantity - rows and the winners to the members with a row. It cannot
restore winners whose 202 was accepted but whose row was never written (they waited in the lost
queue): the rebuilt stock counts their units as not taken, and they may win again. Safe to run at
any time: it never touches a coupon that has state, and a coupon it rebuilds had none, so no
download could be using it.

Each database read runs in a connection of its own that ends with it: a long-running caller
(the scheduler) keeps no transaction open afterwards.
"""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa

from strategies import keys, state
from strategies.clock import epoch_ms, from_epoch_ms
from strategies.tables import coupon, member_coupon

log = logging.getLogger(__name__)


def open_coupon_ids(client: Any, engine: sa.Engine) -> list[int]:
    """Coupons whose window has not ended (by Redis's clock): the ones Redis must know."""
    now = from_epoch_ms(state.now_ms(client))
    query = (
        sa.select(coupon.c.id).where(sa.or_(coupon.c.ends_at.is_(None), coupon.c.ends_at > now)).order_by(coupon.c.id)
    )
    with engine.connect() as conn:
        return list(conn.scalars(query))


def check(client: Any, engine: sa.Engine) -> list[int]:
    """Find open coupons without state, record them for /healthz, log them; the ids."""
    missing = state.missing(client, open_coupon_ids(client, engine))
    pipe = client.pipeline(transaction=False)
    pipe.delete(keys.MISSING_STATE)
    if missing:
        pipe.sadd(keys.MISSING_STATE, *missing)
    pipe.execute()
    if missing:
        log.error(
            "%s open coupons have no Redis state (Redis lost its data?): %s; "
            "restore them with 'flask --app wsgi rebuild-state'",
            len(missing),
            missing[:20],
        )
    return missing


def reported(client: Any) -> list[int]:
    """What the last check recorded and no rebuild has restored since."""
    return sorted(int(c) for c in client.smembers(keys.MISSING_STATE))


def rebuild(client: Any, engine: sa.Engine, coupon_id: int) -> bool:
    """Restore one coupon's state from its row and its issued rows; False if it has state or no row."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(coupon).where(coupon.c.id == coupon_id)).first()
        if row is None:
            return False
        winners = list(conn.scalars(sa.select(member_coupon.c.member_id).where(member_coupon.c.coupon_id == coupon_id)))
    restored = state.restore(
        client, coupon_id, row.name, row.quantity, epoch_ms(row.starts_at), epoch_ms(row.ends_at), winners
    )
    client.srem(keys.MISSING_STATE, coupon_id)
    return restored
