"""The "drain enqueued" mark on the broker: at most one waiting drain job per coupon.

The scheduler claims the mark before it enqueues; the job clears it as it starts, so the next
tick may enqueue the next; a job that meets a database error sets it for a while instead, so
that a coupon's drain is not failed once a tick while the database is away.
"""

from __future__ import annotations

import redis

from strategies import keys

# How long a claimed mark blocks another job for the same coupon. Past it (a worker died between
# taking the job and starting it) the scheduler enqueues again: short, since that is how long
# such winners wait; a spare job costs one empty ZRANGE.
MARK_TTL_S = 5
# After a database error, how long before the coupon's next drain.
BACK_OFF_S = 2


def claim(broker: redis.Redis, coupon_id: int) -> bool:
    """Take the mark; False if a drain of the coupon is already waiting."""
    return bool(broker.set(keys.drain_enqueued(coupon_id), 1, nx=True, ex=MARK_TTL_S))


def clear(broker: redis.Redis, coupon_id: int) -> None:
    """The job has started: let the scheduler enqueue the next."""
    broker.delete(keys.drain_enqueued(coupon_id))


def back_off(broker: redis.Redis, coupon_id: int) -> None:
    """Hold the coupon's next drain off for BACK_OFF_S (the database is away)."""
    broker.set(keys.drain_enqueued(coupon_id), 1, ex=BACK_OFF_S)
