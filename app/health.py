"""Liveness of the service's dependencies."""

from __future__ import annotations

import logging
from collections.abc import Callable

import sqlalchemy as sa
from flask import Blueprint, Response, jsonify

from app.extensions import clients, db

bp = Blueprint("health", __name__)
log = logging.getLogger(__name__)


@bp.get("/healthz")
def healthz() -> tuple[Response, int]:
    """200 when Redis and the database answer, else 503 naming what does not."""
    checks = {
        "redis": _check(lambda: clients().state_redis.ping()),
        "database": _check(lambda: db.session.execute(sa.text("SELECT 1"))),
    }
    if checks["redis"] and clients().state_redis is not clients().broker:
        checks["broker"] = _check(lambda: clients().broker.ping())
    healthy = all(checks.values())
    body = {name: "ok" if ok else "down" for name, ok in checks.items()}
    if not healthy:
        body.update(error="unavailable", message="A dependency does not answer.")
    return jsonify(body), 200 if healthy else 503


def _check(probe: Callable[[], object]) -> bool:
    try:
        probe()
        return True
    except Exception as exc:
        log.warning("health check failed: %s", exc)
        db.session.rollback()
        return False
