"""The scheduler: every DRAIN_INTERVAL_MS, enqueue a drain for each coupon with waiting winners.

``python -m jobs.scheduler``. Run one. It keeps no state of its own, so a kill -9 at any moment
loses nothing: the winners wait in Redis and the next scheduler picks them up.
"""

from __future__ import annotations

import logging
import signal
import time
from typing import Any

import redis
from rq import Queue

from app.logs import configure as configure_logging
from jobs.drain import drain_coupon
from strategies import keys

log = logging.getLogger(__name__)

# How long an enqueued-but-not-started drain blocks another for the same coupon. Past it (a
# worker died between taking the job and starting it) the scheduler enqueues again: short, since
# that is how long such winners wait; a spare job costs one empty ZRANGE.
ENQUEUED_MARK_TTL_S = 5
# The script ends a coupon's window by Redis's clock, the scheduler by its own: wait this long
# past ends_ms before forgetting an ended coupon, so a clock behind Redis's cannot drop a winner.
ENDED_GRACE_MS = 60_000


def tick(issuance: Any, broker: redis.Redis, queue: Queue, job_timeout_s: int) -> int:
    """One pass over the registry: enqueue drains where winners wait; forget finished coupons.

    The pipeline reads each coupon's stock before its queue length. Only the lua strategy queues
    winners, and its stock never comes back, so once a read shows none left, no winner can join
    the queue after it, and an empty queue read next means the coupon is done. Read the other way
    round, a last winner accepted between the two reads would be forgotten with it. On a cluster
    the pipeline is not a transaction: its commands are grouped per node, and the two of one
    coupon share a slot, so they keep this order.
    """
    coupon_ids = [int(c) for c in issuance.smembers(keys.REGISTRY)]
    if not coupon_ids:
        return 0
    pipe = issuance.pipeline(transaction=False)
    for coupon_id in coupon_ids:
        pipe.hmget(keys.coupon(coupon_id), "stock", "ends_ms")
        pipe.zcard(keys.queue(coupon_id))
    replies = pipe.execute()
    now_ms = int(time.time() * 1000)
    enqueued = 0
    for i, coupon_id in enumerate(coupon_ids):
        (stock, ends_ms), waiting = replies[2 * i], replies[2 * i + 1]
        if waiting:
            if broker.set(keys.drain_enqueued(coupon_id), 1, nx=True, ex=ENQUEUED_MARK_TTL_S):
                queue.enqueue(
                    drain_coupon,
                    coupon_id,
                    job_timeout=job_timeout_s,
                    result_ttl=0,
                    failure_ttl=24 * 3600,
                    description=f"drain coupon {coupon_id}",
                )
                enqueued += 1
        elif _finished(stock, ends_ms, now_ms):
            # Sold out or ended, and nothing waiting: no winner can arrive any more.
            issuance.srem(keys.REGISTRY, coupon_id)
    return enqueued


def _finished(stock: bytes | None, ends_ms: bytes | None, now_ms: int) -> bool:
    if stock is None:
        # No state yet: registration adds the coupon to the registry before it writes the hash, so
        # this is a coupon being registered right now (or a registration that failed). Forgetting
        # it would leave every winner it is about to get undrained; keeping a failed one costs two
        # reads a tick.
        return False
    ends = int(ends_ms or 0)  # 0: no end
    ended = ends > 0 and ends + ENDED_GRACE_MS <= now_ms
    return int(stock) <= 0 or ended


def main() -> None:
    """Tick until SIGTERM or Ctrl-C; an outage is logged and retried, never fatal."""
    configure_logging("scheduler")
    from jobs.worker import app_context

    stopping = False

    def stop(_signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    with app_context() as app:
        from app.extensions import clients

        interval_s = app.config["DRAIN_INTERVAL_MS"] / 1000
        queue = Queue(app.config["DRAIN_QUEUE"], connection=clients().broker)
        job_timeout_s = app.config["DRAIN_MAX_RUN_S"] + 60
        log.info("scheduling drains every %s ms on queue %s", app.config["DRAIN_INTERVAL_MS"], queue.name)
        try:
            while not stopping:
                try:
                    tick(clients().issuance, clients().broker, queue, job_timeout_s)
                except (redis.ConnectionError, redis.TimeoutError) as exc:
                    log.warning("Redis unreachable, retrying: %s", exc)
                time.sleep(interval_s)
        except KeyboardInterrupt:
            pass
    log.info("scheduler stopped")


if __name__ == "__main__":
    main()
