"""Which database and Redis the suite runs against, and how to reset them.

MariaDB and Redis on this machine by default (a database and a Redis db of the suite's own);
TEST_DATABASE_URL / TEST_REDIS_URL override. If they do not answer, the suite falls back to the
embedded defaults (SQLite and an embedded Redis), unless COUPON_RUSH_REQUIRE_SERVICES=1 (set by
.ci/run), which turns a missing service into a loud failure.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import redis
import sqlalchemy as sa
from sqlalchemy.engine import make_url

DEFAULT_DATABASE_URL = "mysql+pymysql://root@127.0.0.1:3306/coupon_rush_test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"
TABLES = ("member_coupon", "coupon", "member", "revocation")


@dataclass(frozen=True)
class Services:
    """The URLs the app under test gets, and whether they are the embedded fallbacks."""

    database_url: str
    redis_url: str
    embedded: bool


class ServiceMissing(RuntimeError):
    """A required service does not answer."""


def resolve(scratch: Path) -> Services:
    """Real services if they answer (or are required), else the embedded defaults in ``scratch``."""
    required = os.environ.get("COUPON_RUSH_REQUIRE_SERVICES") == "1"
    database_url = os.environ.get("TEST_DATABASE_URL", DEFAULT_DATABASE_URL)
    redis_url = os.environ.get("TEST_REDIS_URL", DEFAULT_REDIS_URL)
    problems = [p for p in (_database_problem(database_url), _redis_problem(redis_url)) if p]
    if not problems:
        return Services(database_url, redis_url, embedded=False)
    if required:
        raise ServiceMissing("; ".join(problems))
    from app import embedded

    return Services(f"sqlite:///{scratch / 'test.sqlite3'}", embedded.ensure_server(scratch), embedded=True)


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
