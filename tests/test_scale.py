"""Many coupons, many workers, many API instances at once: every guarantee still holds.

The scheduler finds coupons with waiting winners through the registry and enqueues one drain job
per coupon; several workers drain different coupons in parallel while the drain lock keeps one
drain per coupon. Several gunicorn instances share the issuance state and the drain queue.
"""

from __future__ import annotations

import re
import threading
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import redis_lock
import sqlalchemy as sa
from flask import Flask
from rq import Queue, Worker
from rq.registry import StartedJobRegistry

from app.extensions import clients, db
from app.models import MemberCoupon
from jobs.scheduler import ENDED_GRACE_MS, tick
from strategies import keys, state
from support.procs import Proc, start_module, wait_for
from support.queue import fill_queue

COUPONS = 6
WINNERS = 4000  # per coupon
DRAIN_WORKERS = 3
DRAINED = re.compile(
    r"^(\S+ \S+) worker INFO jobs\.drain \[[^\]]*\]: drained (\d+) winners of coupon (\d+) in ([\d.]+) s$"
)  # app/logs.py's text format: time, process, level, logger, [request id], message
TOLERANCE_S = 0.005  # log lines carry milliseconds


def test_tick_enqueues_and_forgets_only_what_it_may(backend: tuple[Flask, dict[str, str]]) -> None:
    """One tick over coupons in every state; the registry keeps each coupon that can still get a winner."""
    app, _ = backend
    now_ms = int(time.time() * 1000)
    with app.app_context():
        issuance, broker = clients().state_redis, clients().broker
        issuance.sadd(keys.COUPON_REGISTRY, 1)  # being registered: in the registry, its hash not written yet
        state.register(issuance, 2, "sold out, drained", 1, 0, 0)
        issuance.hset(keys.coupon(2), "stock", 0)
        fill_queue(issuance, 3, 4)  # sold out, four winners waiting
        state.register(issuance, 4, "ended a moment ago", 5, 0, now_ms - 1000)
        state.register(issuance, 5, "ended long ago", 5, 0, now_ms - ENDED_GRACE_MS - 1000)
        state.register(issuance, 6, "open, nobody yet", 5, 0, 0)
        queue = Queue("tick-test", connection=broker)

        assert tick(issuance, broker, queue, job_timeout_s=60) == 1
        assert [job.args for job in queue.get_jobs()] == [(3,)]
        assert {int(c) for c in issuance.smembers(keys.COUPON_REGISTRY)} == {1, 3, 4, 6}
        assert tick(issuance, broker, queue, job_timeout_s=60) == 0  # marked: no second job while one waits
        assert queue.count == 1


def drain_intervals(logs: list[Path]) -> dict[int, list[tuple[float, float, int, str]]]:
    """Per coupon, (start, end, rows, worker log) of every drain the workers logged."""
    found: dict[int, list[tuple[float, float, int, str]]] = defaultdict(list)
    for log in logs:
        for line in log.read_text(errors="replace").splitlines():
            match = DRAINED.match(line)
            if match:
                end = datetime.strptime(match[1], "%Y-%m-%d %H:%M:%S,%f").timestamp()
                found[int(match[3])].append((end - float(match[4]), end, int(match[2]), log.name))
    return found


class LockSampler(threading.Thread):
    """Reads every coupon's drain lock in one pipeline, again and again: which coupons are draining now."""

    def __init__(self, client: Any, coupon_ids: list[int]) -> None:
        super().__init__(daemon=True)
        self._client = client
        self._ids = coupon_ids
        self._names = [redis_lock.Lock(client, keys.drain_lock(c), strict=False)._name for c in coupon_ids]
        self._halt = threading.Event()
        self.samples: list[frozenset[int]] = []

    def run(self) -> None:
        while not self._halt.wait(0.003):
            pipe = self._client.pipeline(transaction=False)
            for name in self._names:
                pipe.get(name)
            held = pipe.execute()
            self.samples.append(frozenset(c for c, holder in zip(self._ids, held, strict=True) if holder))

    def stop(self) -> None:
        self._halt.set()
        self.join(10)


def progress(app: Flask, coupon_ids: list[int]) -> dict[int, tuple[int, int, int]]:
    """Per coupon: (rows, distinct members in rows, entries still queued)."""
    with app.app_context():
        counted = db.session.execute(
            sa.select(MemberCoupon.coupon_id, sa.func.count(), sa.func.count(sa.distinct(MemberCoupon.member_id)))
            .where(MemberCoupon.coupon_id.in_(coupon_ids))
            .group_by(MemberCoupon.coupon_id)
        ).all()
        rows = {c: (n, d) for c, n, d in counted}
        issuance = clients().state_redis
        return {c: (*rows.get(c, (0, 0)), int(issuance.zcard(keys.queue(c)))) for c in coupon_ids}


def done(app: Flask, coupon_ids: list[int]) -> bool:
    """Every winner of these coupons is one row, and their queues are empty."""
    return all(counts == (WINNERS, WINNERS, 0) for counts in progress(app, coupon_ids).values())


def assert_drains(drains: dict[int, list[tuple[float, float, int, str]]], coupon_ids: list[int]) -> None:
    """What the workers logged: each coupon drained by drains that never overlapped, coupons in parallel."""
    assert set(drains) == set(coupon_ids)
    for coupon_id, runs in drains.items():
        # Each entry was moved by exactly one drain (no two drains took the same batch) ...
        assert sum(rows for _, _, rows, _ in runs) == WINNERS, (coupon_id, runs)
        # ... and one coupon's drains, one after another on any worker, never overlapped in time.
        runs.sort()
        for (_, end, _, _), (start, _, _, _) in zip(runs, runs[1:], strict=False):
            assert start >= end - TOLERANCE_S, (coupon_id, runs)
    overlapping = [
        (a, b)
        for a in coupon_ids
        for b in coupon_ids
        if a < b
        for start_a, end_a, *_ in drains[a]
        for start_b, end_b, *_ in drains[b]
        if min(end_a, end_b) - max(start_a, start_b) > 10 * TOLERANCE_S
    ]
    assert overlapping, f"the workers' logs show no two coupons drained at the same time: {drains}"


@pytest.mark.slow
def test_many_coupons_drain_in_parallel_one_drain_each(backend: tuple[Flask, dict[str, str]], tmp_path: Path) -> None:
    """Six coupons, three workers and the scheduler; the test itself holds coupon 1's drain lock a while."""
    app, base_env = backend
    held, others = 1, list(range(2, COUPONS + 1))
    coupon_ids = [held, *others]
    with app.app_context():
        issuance, broker = clients().state_redis, clients().broker
        for coupon_id in coupon_ids:
            fill_queue(issuance, coupon_id, WINNERS)
    # Small batches and a one-second bound per job: each coupon takes several jobs, so drains of
    # one coupon follow one another, on whichever worker is free, while the others go on.
    env = dict(base_env, ISSUE_STRATEGY="lua", DRAIN_BATCH="5", DRAIN_MAX_RUN_S="1")
    logs = [tmp_path / f"worker{i}.log" for i in range(DRAIN_WORKERS)]
    procs: list[Proc] = []
    sampler = LockSampler(issuance, others)  # coupon 1's lock is the test's own
    # A drain of coupon 1 that never ends, as far as the workers can tell: theirs must all stand back.
    blocker = redis_lock.Lock(issuance, keys.drain_lock(held), expire=60, strict=False)
    assert blocker.acquire(blocking=False)
    try:
        procs += [start_module("jobs.worker", env, log) for log in logs]
        wait_for(lambda: Worker.count(connection=broker) >= DRAIN_WORKERS, 30, "the workers to register")
        sampler.start()
        procs.append(start_module("jobs.scheduler", env, tmp_path / "scheduler.log"))
        wait_for(lambda: done(app, others), 60, "coupons 2-6 to drain", every_s=0.1)
        # Coupon 1's drain jobs were enqueued from the first tick on; with the others done, the idle
        # workers take them at once. Once none waits and none runs, every one of them has ended,
        # and each must have found the coupon held and moved nothing.
        drain_queue = Queue(env.get("DRAIN_QUEUE", "drain"), connection=broker)
        started = StartedJobRegistry(queue=drain_queue)
        wait_for(lambda: drain_queue.count == 0 and started.count == 0, 10, "coupon 1's jobs to end", every_s=0.005)
        assert progress(app, [held])[held] == (0, 0, WINNERS), "a worker drained a coupon whose drain was held"
        blocker.release()
        wait_for(lambda: done(app, [held]), 30, "coupon 1 to drain once released", every_s=0.1)
    finally:
        for proc in procs:
            proc.stop()
        sampler.stop()

    with app.app_context():
        for coupon_id in coupon_ids:
            members = db.session.scalars(sa.select(MemberCoupon.member_id).where(MemberCoupon.coupon_id == coupon_id))
            assert sorted(members) == list(range(1, WINNERS + 1)), coupon_id
    assert max(map(len, sampler.samples), default=0) > 1, "no two coupons were ever seen draining at once"
    assert_drains(drain_intervals(logs), coupon_ids)


def test_a_win_is_noted_for_the_drain_and_the_member_and_a_refusal_is_not(
    backend: tuple[Flask, dict[str, str]],
) -> None:
    """In the script on a standalone Redis, right after it on a cluster: the same notes either way."""
    app, _env = backend
    with app.app_context():
        client, strategy = clients().state_redis, clients().strategy
        state.register(client, 41, "noted", 1, 0, 0)
        assert strategy.issue(41, 5).value == "pending"
        assert strategy.issue(41, 6).value == "sold_out"
        assert strategy.issue(41, 5).value == "already_issued"
        assert client.smembers(keys.DRAIN_DUE) == {b"41"}
        assert client.smembers(keys.member_pending(5)) == {b"41"}
        assert not client.exists(keys.member_pending(6))
