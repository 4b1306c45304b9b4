"""What the background processes get from the service: one small object, the way jobs/ reaches the app.

The worker, the scheduler and the drain job need the two Redis clients, a database engine and
the drain's settings, nothing else of Flask's. :func:`start` sets a process up (its logging, its
app, created once) and :func:`current` hands out a :class:`Background`, from the app whose
context is pushed (tests) or else this process's own. Each call reads the clients afresh, so a
forked child gets its own sockets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis
import sqlalchemy as sa
from flask import Flask, current_app, has_app_context

from app import create_app
from app.extensions import clients, db
from app.logs import configure as configure_logging

_app: Flask | None = None  # this process's app, when no context is pushed


@dataclass(frozen=True)
class DrainSettings:
    """The drain's settings, in their units."""

    queue: str  # RQ queue the drain jobs go to
    batch: int  # rows per INSERT
    interval_ms: int  # the scheduler's tick
    lock_expire_s: int  # how long one job may hold a coupon's drain without renewing it
    max_run_s: int  # how long one job drains before it leaves the rest to the next


@dataclass(frozen=True)
class Background:
    """A background process's share of the service."""

    state_redis: Any  # coupon state: a Redis, or a RedisCluster
    broker: redis.Redis  # RQ's broker and the scheduler's markers
    engine: sa.Engine
    drain: DrainSettings


def start(process: str) -> Background:
    """Set up a background process named ``process`` (its logging, then its app); its Background."""
    configure_logging(process)
    return current()


def current() -> Background:
    """The Background of the pushed app context (tests), else of this process's app (created once)."""
    if has_app_context():
        return _of(current_app._get_current_object())  # type: ignore[attr-defined]
    global _app
    if _app is None:
        _app = create_app()
    with _app.app_context():
        return _of(_app)


def _of(app: Flask) -> Background:
    found = clients()
    cfg = app.config
    return Background(
        state_redis=found.state_redis,
        broker=found.broker,
        engine=db.engine,
        drain=DrainSettings(
            queue=cfg["DRAIN_QUEUE"],
            batch=cfg["DRAIN_BATCH"],
            interval_ms=cfg["DRAIN_INTERVAL_MS"],
            lock_expire_s=cfg["DRAIN_LOCK_EXPIRE_S"],
            max_run_s=cfg["DRAIN_MAX_RUN_S"],
        ),
    )
