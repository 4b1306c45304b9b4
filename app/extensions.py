"""Extension objects, unbound until ``init_app``; Redis clients and the strategy, one per process."""

from __future__ import annotations

import logging
import os
from functools import wraps
from typing import Any, cast

import redis
from flask import Flask, Response, current_app
from flask_jwt_extended import JWTManager
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase

import strategies
from app.adapters import move_limiter_hooks
from strategies import tables

log = logging.getLogger(__name__)


class Base(DeclarativeBase):
    """Declarative base of the models, on the one schema of strategies/tables.py."""

    metadata = tables.metadata


db = SQLAlchemy(model_class=Base)
migrate = Migrate()
jwt = JWTManager()
# Only /auth/login is limited (app/auth.py), no default limits. Its counts live in the Redis at
# REDIS_URL so that every worker and host shares them. One app per process owns it (the last init_app).
limiter = Limiter(key_func=get_remote_address, key_prefix="login_limits")


class Clients:
    """This process's Redis clients and strategy, built on first use after any fork."""

    def __init__(self, app: Flask) -> None:
        self._config = app.config
        self._app = app
        self._pid = -1
        self._state_redis: Any = None
        self._broker: redis.Redis | None = None
        self._strategy: strategies.IssueStrategy | None = None

    def _check_pid(self) -> None:
        if self._pid != os.getpid():  # a forked child must not share its parent's sockets
            self._pid = os.getpid()
            self._state_redis = self._broker = self._strategy = None

    @property
    def broker(self) -> redis.Redis:
        """The standalone Redis at REDIS_URL: RQ's broker, and issuance state without a cluster."""
        self._check_pid()
        if self._broker is None:
            self._broker = redis.Redis.from_url(
                self._config["REDIS_URL"],
                max_connections=self._config["REDIS_POOL_SIZE"],
                socket_timeout=self._config["REDIS_SOCKET_TIMEOUT_S"],
                socket_connect_timeout=2,
                health_check_interval=30,
            )
        return self._broker

    @property
    def state_redis(self) -> Any:
        """The Redis that holds coupon state: the cluster at REDIS_CLUSTER_URL, else the broker's Redis."""
        self._check_pid()
        if self._state_redis is None:
            url = self._config["REDIS_CLUSTER_URL"]
            if url:
                self._state_redis = redis.RedisCluster.from_url(
                    url,
                    max_connections=self._config["REDIS_POOL_SIZE"],
                    socket_timeout=self._config["REDIS_SOCKET_TIMEOUT_S"],
                    socket_connect_timeout=2,
                )
            else:
                self._state_redis = self.broker
        return self._state_redis

    @property
    def strategy(self) -> strategies.IssueStrategy:
        """The strategy ISSUE_STRATEGY names, with its scripts registered on this process's client."""
        self._check_pid()
        if self._strategy is None:
            with self._app.app_context():
                engine = db.engine
            self._strategy = strategies.build(
                self._config["ISSUE_STRATEGY"],
                client=self.state_redis,
                engine=engine,
                lock_expire_s=self._config["LOCK_EXPIRE_S"],
                lock_wait_s=self._config["LOCK_WAIT_S"],
            )
        return self._strategy


def init_limiter(app: Flask) -> None:
    """Point the login limiter at the broker Redis; redis+unix:// is how limits spells a socket."""
    url = app.config["REDIS_URL"]
    app.config.setdefault("RATELIMIT_STORAGE_URI", f"redis+{url}" if url.startswith("unix://") else url)
    app.config.setdefault(
        "RATELIMIT_STORAGE_OPTIONS",
        {"socket_timeout": app.config["REDIS_SOCKET_TIMEOUT_S"], "socket_connect_timeout": 2},
    )
    limiter.init_app(app)
    # Only /auth/login is limited: the limiter's hooks run for the auth blueprint alone, and the
    # download path pays nothing for them. An error in an after_request hook bypasses the error
    # handlers, so the hook that counts a failed login answers 503 itself when Redis fails.
    move_limiter_hooks(app, limiter, "auth", wrap_after=_unavailable_on_redis_error)


def _unavailable_on_redis_error(hook: Any) -> Any:
    """The limiter's after_request hook (it writes a failed login's count), answering 503 if Redis fails.

    An error raised in an after_request hook bypasses the error handlers and becomes a 500.
    """

    @wraps(hook)
    def counted(response: Response) -> Response:
        try:
            return cast(Response, hook(response))
        except redis.RedisError as exc:
            from app.errors import UNAVAILABLE_MESSAGE, error_response

            log.warning("answering 503: the failed login could not be counted: %s: %s", type(exc).__name__, exc)
            unavailable, status = error_response(503, "unavailable", UNAVAILABLE_MESSAGE)
            unavailable.status_code = status
            return unavailable

    return counted


def init_clients(app: Flask) -> None:
    """Attach this app's per-process clients."""
    app.extensions["coupon_rush"] = Clients(app)


def clients() -> Clients:
    """The current app's clients."""
    found: Clients = current_app.extensions["coupon_rush"]
    return found
