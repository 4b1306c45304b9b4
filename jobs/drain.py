"""Move a coupon's waiting winners from its Redis queue into member_coupon, in batches."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

import redis_lock
import sqlalchemy as sa

from strategies import keys
from strategies.base import member_coupon

log = logging.getLogger(__name__)
RETRY_AFTER_DB_ERROR_S = 2


def insert_ignore() -> sa.Insert:
    """One idempotent bulk insert for MySQL/MariaDB and SQLite alike."""
    return sa.insert(member_coupon).prefix_with("IGNORE", dialect="mysql").prefix_with("OR IGNORE", dialect="sqlite")


def drain(client: Any, engine: sa.Engine, coupon_id: int, batch: int, lock_expire_s: int, max_run_s: float) -> int:
    """Persist the coupon's queue oldest first; return the rows moved.

    Each batch is read, inserted with INSERT IGNORE and committed, and only then removed from
    the queue. A crash before the commit leaves the entries queued; a crash between the commit
    and the removal leaves entries whose rows exist, and the next drain's INSERT IGNORE skips
    them. So a kill -9 anywhere loses no winner and duplicates none.

    The drain lock keeps one drain per coupon; it is an economy, not the guarantee: two drains
    at once would still insert each row once (UNIQUE) and remove each entry after its commit.
    """
    lock = redis_lock.Lock(client, keys.drain_lock(coupon_id), expire=lock_expire_s, strict=False)
    if not lock.acquire(blocking=False):
        return 0  # another drain holds the coupon; it loops until the queue is empty
    moved = 0
    started = time.monotonic()
    deadline = started + max_run_s
    try:
        while time.monotonic() < deadline:
            entries = client.zrange(keys.queue(coupon_id), 0, batch - 1, withscores=True)
            if not entries:
                break
            rows = [
                {"member_id": int(member), "coupon_id": coupon_id, "issued_at": _from_us(score)}
                for member, score in entries
            ]
            with engine.begin() as conn:
                conn.execute(insert_ignore(), rows)
            client.zrem(keys.queue(coupon_id), *(member for member, _ in entries))
            moved += len(rows)
            lock.extend()  # raises NotAcquired if the lock was lost: stop, the next drain goes on
    finally:
        held_s = time.monotonic() - started
        _release(lock, coupon_id)
    if moved:
        # The holding time, with the line's own timestamp, lets an operator (and tests/test_scale.py)
        # see which drains overlapped: different coupons may, one coupon's never do.
        log.info("drained %s winners of coupon %s in %.3f s", moved, coupon_id, held_s)
    return moved


def _release(lock: redis_lock.Lock, coupon_id: int) -> None:
    try:
        lock.release()
    except redis_lock.NotAcquired:
        log.warning("drain lock of coupon %s expired while held", coupon_id)


def _from_us(score: float) -> datetime:
    return datetime.fromtimestamp(score / 1e6, UTC).replace(tzinfo=None)


def drain_coupon(coupon_id: int) -> int:
    """RQ job: drain one coupon with the service's configured clients and settings."""
    from jobs.worker import app_context

    with app_context() as app:
        from app.extensions import clients, db

        clients().broker.delete(keys.drain_enqueued(coupon_id))  # lets the scheduler enqueue the next
        cfg = app.config
        try:
            return drain(
                clients().issuance,
                db.engine,
                coupon_id,
                cfg["DRAIN_BATCH"],
                cfg["DRAIN_LOCK_EXPIRE_S"],
                cfg["DRAIN_MAX_RUN_S"],
            )
        except sa.exc.DBAPIError:
            # The database is out of reach: hold the next drain of this coupon off for a moment rather
            # than fail one every tick. The winners wait in Redis; RQ records this failure.
            clients().broker.set(keys.drain_enqueued(coupon_id), 1, ex=RETRY_AFTER_DB_ERROR_S)
            raise
