"""A log-in whose Redis fails after the limiter's check, before the failure is counted: 503, never a 500."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import requests
from flask import Flask

from support.procs import Proc, start_gunicorn
from support.redis_servers import RedisServer, running_redis
from tests.helpers import make_members

SOCKET_TIMEOUT_S = 3


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own: it is paused and starved, never the suite's."""
    with running_redis(tmp_path / "redis", appendfsync=None) as server:
        yield server


@pytest.fixture
def api(
    app: Flask, process_env: dict[str, str], private_redis: RedisServer, tmp_path: Path
) -> Iterator[tuple[str, Proc]]:
    """gunicorn on the private Redis, with a short socket timeout; its base URL and process."""
    env = dict(
        process_env,
        REDIS_URL=private_redis.url,
        REDIS_SOCKET_TIMEOUT_S=str(SOCKET_TIMEOUT_S),
        LOCK_EXPIRE_S="2",
        LOCK_WAIT_S="1",
    )
    proc, base = start_gunicorn(env, tmp_path / "gunicorn.log", workers=1, threads=4)
    try:
        yield base, proc
    finally:
        proc.stop()


def _login(base: str, password: str) -> requests.Response:
    return requests.post(f"{base}/auth/login", json={"username": "m0", "password": password}, timeout=60)


def _pause_writes(server: RedisServer) -> None:
    """CLIENT PAUSE WRITE: reads answer (the limiter's check passes), every write waits (its count does not)."""
    with server.client() as admin:
        admin.execute_command("CLIENT", "PAUSE", str(4 * SOCKET_TIMEOUT_S * 1000), "WRITE")


def _refuse_writes(server: RedisServer) -> None:
    """maxmemory 1 under noeviction: reads answer, every write is refused with OOM."""
    with server.client() as admin:
        admin.config_set("maxmemory-policy", "noeviction")
        admin.config_set("maxmemory", 1)


@pytest.mark.parametrize("fault", [_pause_writes, _refuse_writes], ids=["paused", "refusing"])
def test_redis_failing_after_the_check_answers_503(
    app: Flask, api: tuple[str, Proc], private_redis: RedisServer, fault: object
) -> None:
    make_members(app, 1)
    base, proc = api
    assert _login(base, "password").status_code == 200  # warm: a connection in the limiter's pool
    fault(private_redis)  # type: ignore[operator]
    try:
        assert _login(base, "password").status_code == 200  # a success writes nothing: still served
        start = time.monotonic()
        failed = _login(base, "wrong")
        took = time.monotonic() - start
    finally:
        with private_redis.client() as admin:
            admin.execute_command("CLIENT", "UNPAUSE")
            admin.config_set("maxmemory", 0)
    assert failed.status_code == 503, failed.text[:300]
    assert failed.json() == {"error": "unavailable", "message": failed.json()["message"]}
    assert failed.headers.get("X-Request-ID")
    # One socket timeout and redis-py's retries at most, not a 500 after them.
    assert took < 8 * SOCKET_TIMEOUT_S, took
    assert "the failed login could not be counted" in proc.output()
    # Redis back: the next failure is counted and answered as usual.
    resp = _login(base, "wrong")
    assert resp.status_code == 401, resp.text


def test_redis_gone_before_the_check_answers_503(app: Flask, api: tuple[str, Proc], private_redis: RedisServer) -> None:
    make_members(app, 1)
    base, _ = api
    private_redis.kill9()
    resp = _login(base, "wrong")
    assert (resp.status_code, resp.json()["error"]) == (503, "unavailable"), resp.text[:300]
    with pytest.raises(redis.ConnectionError):
        private_redis.client().ping()
