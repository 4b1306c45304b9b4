"""Drains and processes under faults: the drain lock outlives a slow batch, Redis refusing writes, bad settings."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path

import pytest
import redis
import requests
import sqlalchemy as sa
from flask import Flask

from app import create_app
from app.config import ConfigError
from app.extensions import clients, db
from jobs.drain import drain
from strategies import keys, state
from support.procs import Processes, start_gunicorn, start_module, wait_for
from support.queue import fill_queue
from support.redis_servers import RedisServer
from tests.helpers import app_config, bearer, make_members, rows_of

BLOCKED_INSERTS = sa.text(
    "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE 'INSERT IGNORE INTO member_coupon%'"
)


def test_drain_lock_is_renewed_while_a_batch_is_blocked(app: Flask, services) -> None:
    """A drain stuck 3 s in its INSERT (lock expiry 1 s) still holds the coupon: a second drain starts nothing."""
    if not services.database_url.startswith("mysql"):
        pytest.skip("LOCK TABLES needs MariaDB")
    with app.app_context():
        client, engine = clients().state_redis, db.engine
    fill_queue(client, 1, 20)
    drain_lock = f"lock:{keys.drain_lock(1)}"  # python-redis-lock's name for it
    locker = sa.create_engine(services.database_url, poolclass=sa.pool.NullPool).connect()
    locker.exec_driver_sql("LOCK TABLES member_coupon WRITE")
    pool = ThreadPoolExecutor(2)
    try:
        first = pool.submit(drain, client, engine, 1, 100, 1, 30)
        wait_for(lambda: client.exists(drain_lock), 10, "the first drain to take its lock")
        with engine.connect() as conn:
            wait_for(lambda: conn.execute(BLOCKED_INSERTS).scalar(), 10, "the first drain to block in its INSERT")

        def second_drains() -> list[int]:
            moved, until = [], time.monotonic() + 3  # three lock expiries
            while time.monotonic() < until:
                moved.append(drain(client, engine, 1, 100, 1, 30))
                time.sleep(0.1)  # pacing, not synchronisation: each try must find the coupon held
            return moved

        seconds = pool.submit(second_drains)
        try:
            assert set(seconds.result(timeout=8)) == {0}
        except FutureTimeout:
            pytest.fail("a second drain took the lock and blocked beside the first: the lock was not renewed")
        assert client.exists(drain_lock), "the first drain still holds its lock after three expiries"
    finally:
        locker.exec_driver_sql("UNLOCK TABLES")
        locker.close()
        pool.shutdown(wait=True)
    assert first.result(timeout=30) == 20
    assert sorted(rows_of(engine, 1)) == list(range(1, 21))
    assert client.zcard(keys.queue(1)) == 0


def refuse_writes(client: redis.Redis) -> None:
    """Every write answers OOM (a script's write included)."""
    client.config_set("maxmemory-policy", "noeviction")
    client.config_set("maxmemory", 1)


def test_scheduler_and_worker_outlive_redis_refusing_writes(
    app: Flask, services, process_env: dict, tmp_path: Path
) -> None:
    """OOM errors are logged and retried by both processes; once Redis takes writes, the winner is drained."""
    with Processes() as procs:
        server = procs.add(RedisServer(tmp_path / "redis", appendfsync=None).start())
        private = server.client()
        fill_queue(private, 1, 3)
        private.sadd(keys.DRAIN_DUE, 1)  # as the API notes a win
        refuse_writes(private)
        env = dict(process_env, REDIS_URL=server.url)
        scheduler = procs.add(start_module("jobs.scheduler", env, tmp_path / "scheduler.log"))
        worker = procs.add(start_module("jobs.worker", env, tmp_path / "worker.log"))
        for proc in (scheduler, worker):  # logged and retried, or (the failure) died of it
            wait_for(lambda p=proc: "Redis error" in p.output() or p.popen.poll() is not None, 30, "an OOM met")
            assert proc.popen.poll() is None, f"a Redis error stopped {proc.log.name}:\n{proc.output()[-600:]}"
        assert "OutOfMemoryError" in scheduler.output() and "OutOfMemoryError" in worker.output()
        private.config_set("maxmemory", 0)
        with app.app_context():
            engine = db.engine
        wait_for(lambda: sorted(rows_of(engine, 1)) == [1, 2, 3], 30, "the three winners' rows")
        assert scheduler.popen.poll() is None and worker.popen.poll() is None
        for proc in (scheduler, worker):
            proc.kill9()


def assert_unavailable(resp: requests.Response) -> None:
    assert (resp.status_code, resp.json()["error"]) == (503, "unavailable"), resp.text


def test_redis_refusing_writes_answers_503(app: Flask, seller, process_env: dict, tmp_path: Path) -> None:
    """OOM under noeviction, then READONLY on a replica: downloads and registrations answer 503, never 500."""
    (_, token_a), (_, token_b) = make_members(app, 2)
    shop = bearer(seller[1])
    with Processes() as procs:
        server = procs.add(RedisServer(tmp_path / "redis", appendfsync=None).start())
        primary = procs.add(RedisServer(tmp_path / "primary", appendfsync=None).start())
        private = server.client()
        api, base = start_gunicorn(dict(process_env, REDIS_URL=server.url), tmp_path / "gunicorn.log", 1, 4)
        procs.add(api)
        made = requests.post(f"{base}/coupons", json={"name": "full", "quantity": 5}, headers=shop, timeout=10)
        assert made.status_code == 201, made.text
        coupon_id = made.json()["id"]

        refuse_writes(private)
        assert_unavailable(requests.post(f"{base}/coupons/{coupon_id}/download", headers=bearer(token_a), timeout=10))
        assert_unavailable(
            requests.post(f"{base}/coupons", json={"name": "oom", "quantity": 1}, headers=shop, timeout=10)
        )
        private.config_set("maxmemory", 0)

        # The replica takes its primary's data: give the primary the coupon so the download reaches its write.
        state.register(primary.client(), coupon_id, "full", 5, 0, 0)
        private.replicaof("127.0.0.1", primary.port)
        wait_for(lambda: private.info("replication").get("master_link_status") == "up", 30, "the replica's sync")
        wait_for(lambda: private.exists(keys.coupon(coupon_id)), 10, "the coupon on the replica")
        assert_unavailable(requests.post(f"{base}/coupons/{coupon_id}/download", headers=bearer(token_b), timeout=10))
        assert_unavailable(
            requests.post(f"{base}/coupons", json={"name": "ro", "quantity": 1}, headers=shop, timeout=10)
        )
        assert "Traceback" not in api.output()
        api.kill9()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DRAIN_MAX_RUN_S", 0),
        ("DRAIN_LOCK_EXPIRE_S", 0),
        ("LOCK_EXPIRE_S", 0),
        ("REDIS_SOCKET_TIMEOUT_S", 0),
        ("DB_POOL_TIMEOUT_S", -1),
    ],
)
def test_settings_that_cannot_work_are_refused(services, name: str, value: int) -> None:
    with pytest.raises(ConfigError, match=f"{name} must be at least 1"):
        create_app(app_config(services, **{name: value}))
