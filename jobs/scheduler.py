"""The scheduler: every DRAIN_INTERVAL_MS, enqueue a drain for each coupon with waiting winners.

``python -m jobs.scheduler``. Run one. It keeps no state that matters, so a kill -9 at any moment
loses nothing: the winners wait in Redis and the next scheduler picks them up.
"""

from __future__ import annotations

import argparse
import logging
import signal
import time
from typing import Any

import redis
from rq import Queue

from app.logs import configure as configure_logging
from jobs import enqueued
from jobs.context import app_context
from jobs.drain import drain_coupon
from strategies import keys, state

log = logging.getLogger(__name__)

# Coupons of the registry the sweep looks at per tick: bounds a tick's cost whatever the number
# of coupons ever registered (100,000 open coupons: a full pass every 500 ticks, under a minute).
SWEEP_COUNT = 200
# Windows are judged by Redis's clock, the script's; on a cluster, nodes' clocks may differ a
# little, so an ended coupon is forgotten only this long after its end.
ENDED_GRACE_MS = 5_000
RETRY_AFTER_ERROR_S = 1.0


class Sweep:
    """A cursor through the registry of open coupons, a slice a tick.

    The due set is how winners are found (the API notes a coupon there after each win); the
    sweep is the backstop for a win whose note was never written (the API process died between
    the script and the note) and forgets coupons that can get no more winners.
    """

    def __init__(self) -> None:
        self.cursor = 0

    def step(self, client: Any) -> None:
        """Look at the next SWEEP_COUNT coupons of the registry."""
        self.cursor, members = client.sscan(keys.OPEN_COUPONS, self.cursor, count=SWEEP_COUNT)
        coupon_ids = [int(c) for c in members]
        if not coupon_ids:
            return
        # Stock before queue length: the lua strategy's stock never comes back, so once a read shows
        # none left, no winner can join the queue after it, and an empty queue read next means the
        # coupon is done. Read the other way round, a last winner accepted between the two reads
        # would be forgotten. On a cluster the two of one coupon share a slot, so they keep order.
        pipe = client.pipeline(transaction=False)
        for coupon_id in coupon_ids:
            state.queue_read(pipe, coupon_id)
            pipe.zcard(keys.queue(coupon_id))
        replies = pipe.execute()
        now_ms = state.now_ms(client)
        for i, coupon_id in enumerate(coupon_ids):
            found, waiting = state.from_hash(replies[2 * i]), replies[2 * i + 1]
            if waiting:
                client.sadd(keys.DRAIN_DUE, coupon_id)
            elif _finished(found, now_ms):
                client.srem(keys.OPEN_COUPONS, coupon_id)


def tick(client: Any, broker: redis.Redis, queue: Queue, job_timeout_s: int, sweep: Sweep | None = None) -> int:
    """One pass: a slice of the sweep, then a drain enqueued for each due coupon; the jobs enqueued."""
    (sweep or Sweep()).step(client)
    count = 0
    for coupon_id in sorted(int(c) for c in client.smembers(keys.DRAIN_DUE)):
        if enqueued.claim(broker, coupon_id):
            queue.enqueue(
                drain_coupon,
                coupon_id,
                job_timeout=job_timeout_s,
                result_ttl=0,
                failure_ttl=24 * 3600,
                description=f"drain coupon {coupon_id}",
            )
            count += 1
    return count


def _finished(found: state.CouponState | None, now_ms: int) -> bool:
    """Sold out or ended (by Redis's clock): no winner can arrive any more."""
    if found is None:
        # No state yet: registration adds the coupon to the registry before it writes the hash, so
        # this is a coupon being registered right now (or a registration that failed). Forgetting
        # it would leave every winner it is about to get undrained.
        return False
    ended = found.ends_ms > 0 and found.ends_ms + ENDED_GRACE_MS <= now_ms  # 0: no end
    return found.stock <= 0 or ended


def _check_state() -> None:
    """At start: report open coupons whose Redis state is missing (a Redis that lost its data).

    The check reads through the session; ending it returns the connection with no transaction open,
    which would otherwise hold its snapshot and metadata locks (a migration's ALTER TABLE waits on
    them) for the scheduler's whole life.
    """
    from app import recovery
    from app.extensions import db

    try:
        recovery.check()
    except Exception:  # a report, never a reason not to drain
        log.exception("could not check coupons for missing Redis state")
    finally:
        db.session.remove()


def main(argv: list[str] | None = None) -> None:
    """Tick until SIGTERM or Ctrl-C; a Redis error is logged and retried, never fatal."""
    parser = argparse.ArgumentParser(prog="python -m jobs.scheduler", description=__doc__.splitlines()[0])
    parser.parse_args(argv)  # --help prints usage and exits before anything starts
    configure_logging("scheduler")
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
        sweep = Sweep()
        _check_state()
        log.info("scheduling drains every %s ms on queue %s", app.config["DRAIN_INTERVAL_MS"], queue.name)
        try:
            while not stopping:
                try:
                    tick(clients().state_redis, clients().broker, queue, job_timeout_s, sweep)
                    # Redis's clock, the one /healthz and /metrics measure ages by.
                    clients().broker.set(keys.SCHEDULER_HEARTBEAT, state.now_ms(clients().state_redis) / 1000)
                    time.sleep(interval_s)
                except redis.RedisError as exc:  # unreachable, cluster down, OOM, read-only: wait and go on
                    log.warning("Redis error, retrying in %s s: %s: %s", RETRY_AFTER_ERROR_S, type(exc).__name__, exc)
                    time.sleep(RETRY_AFTER_ERROR_S)
        except KeyboardInterrupt:
            pass
    log.info("scheduler stopped")


if __name__ == "__main__":
    main()
