"""Move a coupon's waiting winners from its Redis queue into member_coupon, in batches."""

from __future__ import annotations

import logging
import time
from typing import Any

import redis_lock
import sqlalchemy as sa

from app import background
from jobs import enqueued
from strategies import keys
from strategies.clock import from_epoch_us
from strategies.tables import insert_ignore

log = logging.getLogger(__name__)


def drain(client: Any, engine: sa.Engine, coupon_id: int, batch: int, lock_expire_s: int, max_run_s: float) -> int:
    """Persist the coupon's queue oldest first; return the rows moved.

    Each batch is read, inserted with INSERT IGNORE and committed, and only then removed from
    the queue (and from its members' pending sets). A crash before the commit leaves the entries
    queued; a crash between the commit and the removal leaves entries whose rows exist, and the
    next drain's INSERT IGNORE skips them. So a kill -9 anywhere loses no winner and duplicates none.

    One drain per coupon at a time: the drain lock is renewed by a thread while the drain works
    (a batch may outlive ``lock_expire_s`` when the database is slow), and a drain that finds the
    lock no longer its own stops before its next batch. Even two drains at once would insert each
    row once (UNIQUE) and remove each entry only after its commit.
    """
    lock = redis_lock.Lock(client, keys.drain_lock(coupon_id), expire=lock_expire_s, auto_renewal=True, strict=False)
    if not lock.acquire(blocking=False):
        return 0  # another drain holds the coupon; it loops until the queue is empty
    moved = 0
    started = time.monotonic()
    deadline = started + max_run_s
    try:
        while time.monotonic() < deadline and _still_holds(lock, coupon_id):
            entries = client.zrange(keys.queue(coupon_id), 0, batch - 1, withscores=True)
            if not entries:
                _no_longer_due(client, coupon_id)
                break
            rows = [
                {"member_id": int(member), "coupon_id": coupon_id, "issued_at": from_epoch_us(score)}
                for member, score in entries
            ]
            with engine.begin() as conn:
                conn.execute(insert_ignore(), rows)
            _forget(client, coupon_id, [int(member) for member, _ in entries])
            moved += len(rows)
    finally:
        held_s = time.monotonic() - started
        _release(lock, coupon_id)
    if moved:
        # The holding time, with the line's own timestamp, lets an operator (and the tests) see
        # which drains overlapped: different coupons may, one coupon's never do.
        log.info("drained %s winners of coupon %s in %.3f s", moved, coupon_id, held_s)
    return moved


def _forget(client: Any, coupon_id: int, members: list[int]) -> None:
    """Remove committed winners from the queue and their pending sets (rows exist: any order is safe)."""
    pipe = client.pipeline(transaction=False)
    pipe.zrem(keys.queue(coupon_id), *members)
    for member in members:
        pipe.srem(keys.member_pending(member), coupon_id)
    removed = pipe.execute()[0]
    # Counted as entries leave the queue (ZREM's count), so a batch committed twice (a drain killed
    # between its commit and this removal, then run again) counts once. A separate step: on a
    # cluster the counter's slot is not the queue's. The API's /metrics exposes it.
    client.incrby(keys.DRAIN_ROWS, removed)


def _no_longer_due(client: Any, coupon_id: int) -> None:
    """Take the coupon off the due set, then look again: a winner who arrived meanwhile puts it back.

    A winner's note (lua strategy) follows its queue entry, so if the second look misses the
    entry, its note comes after the removal and the coupon stays due.
    """
    client.srem(keys.DRAIN_DUE, coupon_id)
    if client.zcard(keys.queue(coupon_id)):
        client.sadd(keys.DRAIN_DUE, coupon_id)


def _still_holds(lock: redis_lock.Lock, coupon_id: int) -> bool:
    if lock.get_owner_id() == lock.id:
        return True
    log.warning("drain lock of coupon %s lost; leaving the rest to the next drain", coupon_id)
    return False


def _release(lock: redis_lock.Lock, coupon_id: int) -> None:
    try:
        lock.release()
    except redis_lock.NotAcquired:
        log.warning("drain lock of coupon %s expired while held", coupon_id)


def drain_coupon(coupon_id: int) -> int:
    """RQ job: drain one coupon with the service's configured clients and settings."""
    service = background.current()
    enqueued.clear(service.broker, coupon_id)
    settings = service.drain
    try:
        return drain(
            service.state_redis, service.engine, coupon_id, settings.batch, settings.lock_expire_s, settings.max_run_s
        )
    except sa.exc.DBAPIError:
        # The database is out of reach: hold the next drain of this coupon off for a moment rather
        # than fail one every tick. The winners wait in Redis; RQ records this failure.
        enqueued.back_off(service.broker, coupon_id)
        raise
