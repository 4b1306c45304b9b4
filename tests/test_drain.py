"""The queue is loss-free: kill -9 the worker and the scheduler mid-drain, again and again."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask

from app.extensions import clients, db
from app.models import MemberCoupon
from jobs.drain import drain
from strategies import keys
from support.procs import start_module, wait_for
from support.queue import fill_queue

WINNERS = 20_000


def fill(app: Flask, coupon_id: int, winners: int) -> None:
    """Accept ``winners`` members through the real issue script."""
    with app.app_context():
        fill_queue(clients().state_redis, coupon_id, winners)


def counts(app: Flask, coupon_id: int) -> tuple[int, int, int]:
    """(rows, distinct members in rows, entries still queued)."""
    with app.app_context():
        rows, distinct = db.session.execute(
            sa.select(sa.func.count(), sa.func.count(sa.distinct(MemberCoupon.member_id))).where(
                MemberCoupon.coupon_id == coupon_id
            )
        ).one()
        return rows, distinct, int(clients().state_redis.zcard(keys.queue(coupon_id)))


def kill9_worker_and_scheduler_mid_drain(app: Flask, process_env: dict, tmp_path: Path) -> None:
    """Three rounds of kill -9 mid-drain, then a worker that finishes: every winner exactly once."""
    coupon_id = 7
    fill(app, coupon_id, WINNERS)
    env = dict(process_env, ISSUE_STRATEGY="lua", DRAIN_BATCH="50")
    for round_, threshold in enumerate((WINNERS // 10, WINNERS // 3, WINNERS // 2)):
        worker = start_module("jobs.worker", env, tmp_path / f"worker{round_}.log")
        scheduler = start_module("jobs.scheduler", env, tmp_path / f"scheduler{round_}.log")
        wait_for(lambda t=threshold: counts(app, coupon_id)[0] >= t, 60, f"{threshold} rows", every_s=0.01)
        worker.kill9()
        scheduler.kill9()
        rows, distinct, queued = counts(app, coupon_id)
        assert rows < WINNERS, "the drain finished before the kill: make it slower"
        assert rows == distinct and queued >= WINNERS - rows  # nothing lost, nothing twice, so far
    worker = start_module("jobs.worker", env, tmp_path / "worker.log")
    scheduler = start_module("jobs.scheduler", env, tmp_path / "scheduler.log")
    try:
        wait_for(lambda: counts(app, coupon_id) == (WINNERS, WINNERS, 0), 90, "the restarted worker to finish")
    finally:
        worker.stop()
        scheduler.stop()
    with app.app_context():
        members = set(db.session.scalars(sa.select(MemberCoupon.member_id).where(MemberCoupon.coupon_id == coupon_id)))
    assert members == set(range(1, WINNERS + 1))


def test_kill9_worker_and_scheduler_mid_drain(app: Flask, process_env: dict, tmp_path: Path) -> None:
    kill9_worker_and_scheduler_mid_drain(app, process_env, tmp_path)


@pytest.mark.slow
def test_kill9_worker_and_scheduler_mid_drain_on_cluster(cluster_app: Flask, cluster_env: dict, tmp_path: Path) -> None:
    """The same three kill -9 rounds, with the queue and the drain locks on the cluster."""
    kill9_worker_and_scheduler_mid_drain(cluster_app, cluster_env, tmp_path)
    with cluster_app.app_context():
        assert clients().broker.exists(keys.queue(7)) == 0  # the queue lived on the cluster


def test_drain_is_idempotent_after_a_crash_between_commit_and_removal(app: Flask) -> None:
    """Rows committed but entries left queued (a crash right after commit): no duplicates, queue empties."""
    coupon_id = 8
    fill(app, coupon_id, 30)
    with app.app_context():
        client = clients().state_redis
        entries = client.zrange(keys.queue(coupon_id), 0, 9, withscores=True)
        with db.engine.begin() as conn:  # what a crashed drain had committed
            conn.execute(sa.insert(MemberCoupon), [{"member_id": int(m), "coupon_id": coupon_id} for m, _ in entries])
        assert drain(client, db.engine, coupon_id, batch=7, lock_expire_s=5, max_run_s=10) == 30
    assert counts(app, coupon_id) == (30, 30, 0)


def test_one_drain_per_coupon(app: Flask) -> None:
    """While one drain holds the coupon, another returns at once without touching it."""
    coupon_id = 9
    fill(app, coupon_id, 5)
    with app.app_context():
        import redis_lock

        client = clients().state_redis
        held = redis_lock.Lock(client, keys.drain_lock(coupon_id), expire=5, strict=False)
        assert held.acquire(blocking=False)
        assert drain(client, db.engine, coupon_id, batch=100, lock_expire_s=5, max_run_s=10) == 0
        held.release()
        assert drain(client, db.engine, coupon_id, batch=100, lock_expire_s=5, max_run_s=10) == 5
