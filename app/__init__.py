"""coupon-rush: first-come-first-served coupon issuance behind one download endpoint."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import redis
import sqlalchemy as sa
from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from app.config import DEV_JWT_SECRET, Config, ConfigError, validate, validate_redis

log = logging.getLogger(__name__)


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app from the environment, with ``config`` overriding it (tests)."""
    # INSTANCE_PATH moves the embedded SQLite file and Redis socket (tests, several checkouts).
    app = Flask(__name__, instance_path=os.environ.get("INSTANCE_PATH") or None, instance_relative_config=True)
    app.config.update(Config().as_dict())
    if config:
        app.config.update(config)
    validate(app.config)
    resolve_services(app)
    if app.config["APP_ENV"] == "production":
        check_redis_durability(app)
    register_extensions(app)
    register_blueprints(app)
    register_error_handlers(app)
    register_commands(app)
    return app


def resolve_services(app: Flask) -> None:
    """Fill in the embedded defaults: an SQLite file and a Redis server in the instance folder."""
    instance = Path(app.instance_path)
    instance.mkdir(parents=True, exist_ok=True)
    if not app.config["SQLALCHEMY_DATABASE_URI"]:
        app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{instance / 'coupon_rush.sqlite3'}"
    if not app.config["REDIS_URL"]:
        # Only the address: the entry points that want it started say so (embedded.serving()).
        # Imported here so that `python -m app.embedded` does not find itself imported already.
        from app import embedded

        app.config["REDIS_URL"] = embedded.socket_url(instance)
    if not app.config["JWT_SECRET_KEY"]:
        log.warning("JWT_SECRET_KEY is not set: using the development secret (refused in production)")
        app.config["JWT_SECRET_KEY"] = DEV_JWT_SECRET
    app.config["JWT_ACCESS_TOKEN_EXPIRES"] = timedelta(seconds=app.config["JWT_ACCESS_TOKEN_EXPIRES_S"])
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        # Several processes share the file: wait for a writer rather than fail at once.
        app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {"connect_args": {"timeout": 30}}
    else:
        app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {
            "pool_size": app.config["DB_POOL_SIZE"],
            "max_overflow": 0,
            "pool_timeout": app.config["DB_POOL_TIMEOUT_S"],
            "pool_pre_ping": True,
            "pool_recycle": 3600,
            # The Session and every Connection roll back what they began when they close, so the
            # pool's own ROLLBACK on check-in was a second round trip on every request that used
            # the database (the lock strategy's issue, the drain, the views' reads).
            "pool_reset_on_return": None,
        }
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith(("mysql", "mariadb")):
        # PyMySQL's default today, and the schema's (migration 0003) whatever the URL says.
        app.config["SQLALCHEMY_ENGINE_OPTIONS"]["connect_args"] = {"charset": "utf8mb4"}


def check_redis_durability(app: Flask) -> None:
    """Production: refuse a Redis that evicts keys or forgets them on a crash (one connection at start)."""
    options: dict[str, Any] = {"decode_responses": True, "socket_connect_timeout": 5, "socket_timeout": 5}
    targets = [("REDIS_URL", redis.Redis.from_url(app.config["REDIS_URL"], **options))]
    if app.config["REDIS_CLUSTER_URL"]:
        try:
            cluster = redis.RedisCluster.from_url(app.config["REDIS_CLUSTER_URL"], **options)
        except (redis.RedisError, redis.exceptions.RedisClusterException) as exc:
            raise ConfigError(f"cannot reach the Redis at REDIS_CLUSTER_URL to check its settings: {exc}") from None
        targets += [(f"REDIS_CLUSTER_URL ({n.name})", cluster.get_redis_connection(n)) for n in cluster.get_primaries()]
    for where, client in targets:
        try:
            settings = _redis_settings(where, client, app.config["ACCEPT_UNVERIFIED_REDIS"])
        finally:
            client.close()
        if settings is not None:
            validate_redis(where, settings, app.config["ACCEPT_REDIS_DATA_LOSS"])


def _redis_settings(where: str, client: redis.Redis, accept_unverified: bool) -> dict[str, str] | None:
    """The Redis's eviction and persistence settings; None if CONFIG GET is refused and that is accepted."""
    try:
        settings: dict[str, str] = {}
        for name in ("maxmemory-policy", "appendonly", "save"):
            settings.update({str(k): str(v) for k, v in client.config_get(name).items()})
        return settings
    except redis.ResponseError as exc:  # a managed Redis may rename CONFIG or deny it to this user
        if accept_unverified:
            log.warning(
                "cannot read the settings of the Redis at %s (%s): trusting ACCEPT_UNVERIFIED_REDIS", where, exc
            )
            return None
        raise ConfigError(
            f"cannot check the Redis at {where}: CONFIG GET was refused ({exc}); allow it for this user, or set "
            "ACCEPT_UNVERIFIED_REDIS=1 once you have made sure it runs maxmemory-policy noeviction with persistence"
        ) from None
    except redis.RedisError as exc:
        raise ConfigError(f"cannot reach the Redis at {where} to check its settings: {exc}") from None


def register_extensions(app: Flask) -> None:
    """Bind the database, migrations, JWT, the login limiter and the per-process clients."""
    from app import metrics, request_id, revocation_view
    from app.auth import init_token_verifier
    from app.extensions import db, init_clients, init_limiter, jwt, migrate

    db.init_app(app)
    migrate.init_app(
        app, db, directory=str(Path(__file__).resolve().parent.parent / "migrations"), render_as_batch=True
    )
    jwt.init_app(app)
    init_token_verifier(app)
    revocation_view.init_app(app)
    init_limiter(app)
    init_clients(app)
    request_id.init_app(app)
    metrics.init_app(app)
    if app.config["PROXY_HOPS"]:  # the client address the login limiter counts, as nginx states it
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=app.config["PROXY_HOPS"])  # type: ignore[method-assign]
    with app.app_context():
        if db.engine.dialect.name == "sqlite":
            sa.event.listen(db.engine, "connect", _sqlite_wal)


def _sqlite_wal(dbapi_conn: Any, _record: Any) -> None:
    """WAL lets the API read while the drain writes."""
    dbapi_conn.execute("PRAGMA journal_mode=WAL")
    dbapi_conn.execute("PRAGMA busy_timeout=30000")


def register_blueprints(app: Flask) -> None:
    """Mount the API, its ids in paths read by one converter."""
    from app import auth, coupons, docs, health, members, openapi, sellers
    from app.ids import IdConverter

    app.url_map.converters["id"] = IdConverter
    for module in (auth, coupons, members, sellers, health, openapi, docs):
        app.register_blueprint(module.bp)


def register_error_handlers(app: Flask) -> None:
    """One JSON shape for every error."""
    from app.errors import register_error_handlers as register

    register(app)


def register_commands(app: Flask) -> None:
    """The ``flask`` CLI commands."""
    from app import recovery
    from app.commands import register_commands as register

    register(app)
    recovery.register_commands(app)
