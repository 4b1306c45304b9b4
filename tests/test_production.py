"""Misconfiguration fails closed: APP_ENV, token lifetime, and production's secret, services and Redis."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from app import create_app
from app.config import ConfigError
from support.procs import free_port, start_gunicorn
from support.redis_servers import RedisServer
from tests import services as svc
from tests.helpers import ROOT, app_config

LONG_SECRET = "a-production-secret-of-at-least-32-bytes"  # noqa: S105


@pytest.fixture
def durable_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A private redis-server with AOF (appendfsync always) and noeviction."""
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


def production(services: svc.Services, redis_url: str | None, **extra: object) -> dict:
    return app_config(services, APP_ENV="production", JWT_SECRET_KEY=LONG_SECRET, REDIS_URL=redis_url, **extra)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"APP_ENV": "prod"}, "APP_ENV must be one of development, production; got 'prod'"),
        ({"JWT_ACCESS_TOKEN_EXPIRES_S": 0}, "JWT_ACCESS_TOKEN_EXPIRES_S must be at least 1, got 0"),
        ({"LOGIN_FAILURES_PER_USERNAME": "lots"}, "LOGIN_FAILURES_PER_USERNAME must be a rate such as '5 per minute'"),
        ({"PROXY_HOPS": -1}, "PROXY_HOPS must be 0 or more, got -1"),
    ],
)
def test_bad_settings_stop_create_app(services: svc.Services, extra: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        create_app(app_config(services, **extra))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"JWT_SECRET_KEY": "short-secret"}, "APP_ENV=production needs a JWT_SECRET_KEY of at least 32 bytes"),
        ({"SQLALCHEMY_DATABASE_URI": None}, "APP_ENV=production needs DATABASE_URL: no embedded SQLite in production"),
        ({"REDIS_URL": None}, r"APP_ENV=production needs REDIS_URL \(RQ's broker\): no embedded Redis in production"),
    ],
)
def test_production_refuses_embedded_defaults_and_short_secrets(
    services: svc.Services, durable_redis: RedisServer, extra: dict, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        create_app({**production(services, durable_redis.url), **extra})


def test_production_starts_on_a_durable_redis(services: svc.Services, durable_redis: RedisServer) -> None:
    assert create_app(production(services, durable_redis.url)).config["APP_ENV"] == "production"


def test_production_refuses_a_redis_that_evicts(services: svc.Services, durable_redis: RedisServer) -> None:
    durable_redis.client().config_set("maxmemory-policy", "allkeys-lru")
    with pytest.raises(ConfigError, match="runs maxmemory-policy 'allkeys-lru', which evicts keys"):
        create_app(production(services, durable_redis.url))


def test_production_refuses_a_redis_without_persistence_unless_accepted(services: svc.Services, tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis", appendfsync=None).start()
    try:
        with pytest.raises(ConfigError, match="has no persistence .* or set ACCEPT_REDIS_DATA_LOSS=1"):
            create_app(production(services, server.url))
        create_app(production(services, server.url, ACCEPT_REDIS_DATA_LOSS=True))
        server.client().config_set("save", "3600 1")  # RDB snapshots count as persistence
        create_app(production(services, server.url))
    finally:
        server.stop()


def test_production_refuses_a_redis_it_cannot_check(services: svc.Services, durable_redis: RedisServer) -> None:
    durable_redis.client().acl_setuser(
        "app", enabled=True, passwords=["+pw"], keys=["*"], commands=["+@all", "-config"]
    )
    url = durable_redis.url.replace("redis://", "redis://app:pw@")
    with pytest.raises(ConfigError, match="CONFIG GET was refused .* ACCEPT_UNVERIFIED_REDIS=1"):
        create_app(production(services, url))
    create_app(production(services, url, ACCEPT_UNVERIFIED_REDIS=True))
    with pytest.raises(ConfigError, match="cannot reach the Redis at REDIS_URL"):
        create_app(production(services, f"redis://127.0.0.1:{free_port()}/0"))


def test_production_gunicorn_refuses_or_serves(
    process_env: dict[str, str], durable_redis: RedisServer, tmp_path: Path
) -> None:
    env = dict(process_env, APP_ENV="production", JWT_SECRET_KEY=LONG_SECRET, REDIS_URL=durable_redis.url)
    for bad, message in (
        ({"APP_ENV": "prod"}, "APP_ENV must be one of development, production; got 'prod'"),
        ({"JWT_ACCESS_TOKEN_EXPIRES_S": "0"}, "JWT_ACCESS_TOKEN_EXPIRES_S must be at least 1, got 0"),
    ):
        done = subprocess.run(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
            cwd=ROOT,
            env=dict(env, **bad, PORT=str(free_port()), WEB_WORKERS="1"),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode != 0 and message in done.stderr, done.stderr[-2000:]
    proc, base = start_gunicorn(env, tmp_path / "gunicorn.log", workers=1, threads=2)
    try:
        assert requests.get(f"{base}/healthz", timeout=5).status_code == 200
    finally:
        proc.stop()
