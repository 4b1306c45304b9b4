"""Configuration read from the environment, with explicit casts and units in the names."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from strategies import STRATEGIES

DEV_JWT_SECRET = "coupon-rush-development-secret-change-me"  # noqa: S105 - refused in production
APP_ENVS = ("development", "production")
MIN_SECRET_BYTES = 32  # HS256: a key shorter than the hash's 32 bytes weakens it (RFC 7518 3.2)


# Settings that must be at least 1 (each in its own unit).
POSITIVE = (
    "LOCK_EXPIRE_S",
    "LOCK_WAIT_S",
    "DRAIN_BATCH",
    "DRAIN_INTERVAL_MS",
    "DRAIN_LOCK_EXPIRE_S",
    "DRAIN_MAX_RUN_S",
    "REDIS_POOL_SIZE",
    "REDIS_SOCKET_TIMEOUT_S",
    "DB_POOL_SIZE",
    "DB_POOL_TIMEOUT_S",
    "MAX_CONTENT_LENGTH",
    "JWT_ACCESS_TOKEN_EXPIRES_S",  # tokens always expire
)


LOG_FORMATS = ("text", "json")


class ConfigError(RuntimeError):
    """The configuration cannot run; raised at start, never at the first request."""


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None


def _flag(env: Mapping[str, str], name: str) -> bool:
    return env.get(name, "").strip().lower() in ("1", "true", "yes")


class Config:
    """Every setting of the service; read once from the environment at start."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        self.APP_ENV = env.get("APP_ENV", "development")
        self.LOG_FORMAT = env.get("LOG_FORMAT") or "text"  # text or json (app/logs.py)
        self.ISSUE_STRATEGY = env.get("ISSUE_STRATEGY", "lua")
        self.SQLALCHEMY_DATABASE_URI = env.get("DATABASE_URL") or None  # None: SQLite in instance/
        self.REDIS_URL = env.get("REDIS_URL") or None  # None: embedded Redis in instance/
        self.REDIS_CLUSTER_URL = env.get("REDIS_CLUSTER_URL") or None
        self.JWT_SECRET_KEY = env.get("JWT_SECRET_KEY") or None  # None: development secret
        self.JWT_ACCESS_TOKEN_EXPIRES_S = _int(env, "JWT_ACCESS_TOKEN_EXPIRES_S", 24 * 3600)
        # The lock strategy: how long a holder may keep the coupon lock, how long a request waits.
        self.LOCK_EXPIRE_S = _int(env, "LOCK_EXPIRE_S", 5)
        self.LOCK_WAIT_S = _int(env, "LOCK_WAIT_S", 3)
        # The drain: rows per INSERT, scheduler cadence, how long one job may hold a coupon's drain.
        self.DRAIN_BATCH = _int(env, "DRAIN_BATCH", 1000)
        self.DRAIN_INTERVAL_MS = _int(env, "DRAIN_INTERVAL_MS", 100)
        self.DRAIN_LOCK_EXPIRE_S = _int(env, "DRAIN_LOCK_EXPIRE_S", 10)
        self.DRAIN_MAX_RUN_S = _int(env, "DRAIN_MAX_RUN_S", 30)
        self.DRAIN_QUEUE = env.get("DRAIN_QUEUE", "drain")
        # Pools are per process: size them to the threads of one gunicorn worker.
        self.REDIS_POOL_SIZE = _int(env, "REDIS_POOL_SIZE", 64)
        self.REDIS_SOCKET_TIMEOUT_S = _int(env, "REDIS_SOCKET_TIMEOUT_S", 10)
        self.DB_POOL_SIZE = _int(env, "DB_POOL_SIZE", 20)
        self.DB_POOL_TIMEOUT_S = _int(env, "DB_POOL_TIMEOUT_S", 5)
        self.MAX_CONTENT_LENGTH = _int(env, "MAX_CONTENT_LENGTH_BYTES", 64 * 1024)
        # No OPTIONS answers (no CORS here): an OPTIONS request gets the JSON 405 with its Allow header.
        self.PROVIDE_AUTOMATIC_OPTIONS = False
        # Failed logins allowed per username and per client address (Flask-Limiter's notation).
        self.LOGIN_FAILURES_PER_USERNAME = env.get("LOGIN_FAILURES_PER_USERNAME") or "5 per minute"
        self.LOGIN_FAILURES_PER_ADDRESS = env.get("LOGIN_FAILURES_PER_ADDRESS") or "30 per minute"
        # Proxies in front whose X-Forwarded-For is trusted for the client address (1 behind our nginx).
        self.PROXY_HOPS = _int(env, "PROXY_HOPS", 0)
        # Production refuses a Redis without persistence unless the operator accepts losing winners.
        self.ACCEPT_REDIS_DATA_LOSS = _flag(env, "ACCEPT_REDIS_DATA_LOSS")
        # A managed Redis may refuse CONFIG GET: then the operator vouches for noeviction and persistence.
        self.ACCEPT_UNVERIFIED_REDIS = _flag(env, "ACCEPT_UNVERIFIED_REDIS")

    def as_dict(self) -> dict[str, Any]:
        """The settings as a mapping for ``app.config.update``."""
        return {k: v for k, v in vars(self).items() if k.isupper()}


def validate(config: Mapping[str, Any]) -> None:
    """Refuse a configuration that cannot work, with a message that says what to change."""
    if config["ISSUE_STRATEGY"] not in STRATEGIES:
        raise ConfigError(f"ISSUE_STRATEGY must be one of {', '.join(STRATEGIES)}; got {config['ISSUE_STRATEGY']!r}")
    if config["LOG_FORMAT"] not in LOG_FORMATS:
        raise ConfigError(f"LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}; got {config['LOG_FORMAT']!r}")
    if config["APP_ENV"] not in APP_ENVS:
        raise ConfigError(f"APP_ENV must be one of {', '.join(APP_ENVS)}; got {config['APP_ENV']!r}")
    if config["APP_ENV"] == "production":
        validate_production(config)
    # Zero or less cannot work: python-redis-lock reads an expiry of 0 as "never expires", a drain
    # with no time to run drains nothing, a timeout of 0 fails every call.
    for name in POSITIVE:
        if config[name] < 1:
            variable = "MAX_CONTENT_LENGTH_BYTES" if name == "MAX_CONTENT_LENGTH" else name
            raise ConfigError(f"{variable} must be at least 1, got {config[name]}")
    if config["LOCK_WAIT_S"] > config["LOCK_EXPIRE_S"]:
        raise ConfigError("LOCK_WAIT_S must not exceed LOCK_EXPIRE_S (python-redis-lock refuses it)")
    if config["LOCK_EXPIRE_S"] >= config["REDIS_SOCKET_TIMEOUT_S"]:
        raise ConfigError("REDIS_SOCKET_TIMEOUT_S must exceed LOCK_EXPIRE_S: lock waiters block in BLPOP")
    if config["PROXY_HOPS"] < 0:
        raise ConfigError(f"PROXY_HOPS must be 0 or more, got {config['PROXY_HOPS']}")
    for name in ("LOGIN_FAILURES_PER_USERNAME", "LOGIN_FAILURES_PER_ADDRESS"):
        _check_rate(name, config[name])


def _check_rate(name: str, value: str) -> None:
    from limits import parse_many

    try:
        parse_many(value)
    except ValueError:
        raise ConfigError(f"{name} must be a rate such as '5 per minute', got {value!r}") from None


def validate_production(config: Mapping[str, Any]) -> None:
    """No development secret and no embedded services in production: each refusal names what to set."""
    secret = config["JWT_SECRET_KEY"]
    if secret in (None, DEV_JWT_SECRET):
        raise ConfigError("APP_ENV=production needs JWT_SECRET_KEY set to a secret of your own")
    if len(secret.encode()) < MIN_SECRET_BYTES:
        raise ConfigError(f"APP_ENV=production needs a JWT_SECRET_KEY of at least {MIN_SECRET_BYTES} bytes")
    if not config["SQLALCHEMY_DATABASE_URI"]:
        raise ConfigError("APP_ENV=production needs DATABASE_URL: no embedded SQLite in production")
    if not config["REDIS_URL"]:
        # RQ's broker lives there even when issuance state is on REDIS_CLUSTER_URL.
        raise ConfigError("APP_ENV=production needs REDIS_URL (RQ's broker): no embedded Redis in production")


def validate_redis(where: str, settings: Mapping[str, str], accept_data_loss: bool) -> None:
    """Refuse a Redis that can lose accepted winners: ``settings`` are its CONFIG GET answers."""
    policy = settings.get("maxmemory-policy", "")
    if policy != "noeviction":
        raise ConfigError(
            f"the Redis at {where} runs maxmemory-policy {policy!r}, which evicts keys (accepted winners among "
            "them): set maxmemory-policy noeviction"
        )
    persistent = settings.get("appendonly", "no") == "yes" or bool(settings.get("save", "").strip())
    if not persistent and not accept_data_loss:
        raise ConfigError(
            f"the Redis at {where} has no persistence (appendonly no, save ''): a crash loses accepted winners; "
            "turn on appendonly yes (or RDB save points), or set ACCEPT_REDIS_DATA_LOSS=1 to accept that loss"
        )
