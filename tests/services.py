"""Which database and Redis the suite runs against, and how to reset them.

MariaDB and Redis on this machine by default (a database and a Redis db of the suite's own);
TEST_DATABASE_URL / TEST_REDIS_URL override. If they do not answer, the suite falls back to the
embedded defaults (SQLite and an embedded Redis), unless COUPON_RUSH_REQUIRE_SERVICES=1 (set by
.ci/run), which turns a missing service into a loud failure.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import redis
import sqlalchemy as sa
from sqlalchemy.engine import make_url

DEFAULT_DATABASE_URL = "mysql+pymysql://root@127.0.0.1:3306/coupon_rush_test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"
TABLES = ("member_coupon", "coupon", "member", "revocation")
STOP_TIMEOUT_S = 10.0  # the embedded Redis flushes its AOF as it stops


@dataclass(frozen=True)
class Services:
    """The URLs the app under test gets, and whether they are the embedded fallbacks."""

    database_url: str
    redis_url: str
    embedded: bool


class ServiceMissing(RuntimeError):
    """A required service does not answer."""


def required() -> bool:
    """Whether a missing service stops the run instead of falling back to the embedded defaults."""
    return os.environ.get("COUPON_RUSH_REQUIRE_SERVICES") == "1"


def given() -> tuple[str, str]:
    """The database and Redis URLs this run was given (TEST_DATABASE_URL / TEST_REDIS_URL, else the defaults)."""
    database_url = os.environ.get("TEST_DATABASE_URL", DEFAULT_DATABASE_URL)
    return database_url, os.environ.get("TEST_REDIS_URL", DEFAULT_REDIS_URL)


def shown(url: str) -> str:
    """``url`` with its password hidden."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    return parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1)).geturl()


def resolve(scratch: Path) -> Services:
    """Real services if they answer (or are required), else the embedded defaults in ``scratch``."""
    database_url, redis_url = given()
    problems = [p for p in (_database_problem(database_url), _redis_problem(redis_url)) if p]
    if not problems:
        return Services(database_url, redis_url, embedded=False)
    if required():
        raise ServiceMissing("; ".join(problems))
    from app import embedded

    return Services(f"sqlite:///{scratch / 'test.sqlite3'}", embedded.ensure_server(scratch), embedded=True)


def release(services: Services, scratch: Path) -> None:
    """Stop the embedded Redis that :func:`resolve` started in ``scratch``; real services are left as they are."""
    if services.embedded:
        stop_embedded(scratch)


def stop_embedded(scratch: Path) -> None:
    """Stop the embedded Redis of ``scratch`` and wait until it has exited."""
    from app import embedded

    embedded.stop_server(scratch)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while (scratch / "redis.pid").exists():  # removed by the server as it exits
        if time.monotonic() > deadline:
            raise RuntimeError(f"the embedded Redis in {scratch} did not stop within {STOP_TIMEOUT_S:.0f} s")
        time.sleep(0.05)


def _database_problem(url: str) -> str | None:
    parsed = make_url(url)
    try:
        if parsed.get_backend_name() in ("mysql", "mariadb"):
            server = sa.create_engine(parsed.set(database=""), isolation_level="AUTOCOMMIT")
            with server.connect() as conn:
                conn.execute(sa.text(f"CREATE DATABASE IF NOT EXISTS `{parsed.database}`"))
            server.dispose()
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        engine.dispose()
    except Exception as exc:
        return f"database {parsed.render_as_string(hide_password=True)} does not answer: {exc}"
    return None


def _redis_problem(url: str) -> str | None:
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except Exception as exc:
        return f"Redis {url} does not answer: {exc}"
    return None


def reset(engine: sa.Engine, client: redis.Redis) -> None:
    """Empty the tables and the suite's Redis db."""
    client.flushdb()
    with engine.begin() as conn:
        for table in TABLES:
            conn.execute(sa.text(f"DELETE FROM {table}"))
