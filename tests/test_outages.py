"""Outages answer 503 ``unavailable`` quickly and leave no half state."""

from __future__ import annotations

import time

import pytest
import redis_lock
import sqlalchemy as sa
from flask import Flask

from app import create_app
from app.extensions import clients, db
from experiments.procs import free_port
from strategies import Unavailable, keys, state
from strategies.lock import LockStrategy
from tests.conftest import app_config, bearer, make_members


@pytest.mark.parametrize("strategy", ["lock"])
def test_lock_not_had_in_time_answers_503(app: Flask, strategy: str) -> None:
    app.config["LOCK_WAIT_S"] = 1
    ((_, token),) = make_members(app, 1)
    with app.app_context():
        client = clients().issuance
        state.register(client, 1, "held", 5, 0, 0)
        holder = redis_lock.Lock(client, keys.issue_lock(1), expire=5, strict=False)
        assert holder.acquire(blocking=False)
    started = time.monotonic()
    resp = app.test_client().post("/coupons/1/download", headers=bearer(token))
    assert (resp.status_code, resp.json["error"]) == (503, "unavailable")
    assert time.monotonic() - started < 3
    holder.release()


def test_failed_commit_gives_the_unit_back(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    """The commit fails (the database went away): the row is absent, so the stock unit returns."""
    with app.app_context():
        client, engine = clients().issuance, db.engine
        state.register(client, 1, "flaky", 3, 0, 0)
        strategy = LockStrategy(client, engine, lock_expire_s=5, lock_wait_s=1)

        def broken_commit(self: sa.Connection) -> None:
            raise sa.exc.OperationalError("COMMIT", {}, Exception("server has gone away"))

        monkeypatch.setattr(sa.Connection, "commit", broken_commit)
        with pytest.raises(Unavailable):
            strategy.issue(1, 42)
        monkeypatch.undo()
        assert int(client.hget(keys.coupon(1), "stock")) == 3
        with engine.connect() as conn:
            assert conn.scalar(sa.text("SELECT COUNT(*) FROM member_coupon")) == 0


@pytest.mark.parametrize("strategy", ["lock", "lua"])
def test_redis_unreachable_answers_503_fast(services, migrated, strategy: str) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    app = create_app(app_config(services, strategy, REDIS_URL=dead))
    ((_, token),) = make_members(app, 1, prefix=f"r{strategy}")
    client = app.test_client()
    started = time.monotonic()
    resp = client.post("/coupons/1/download", headers=bearer(token))
    assert (resp.status_code, resp.json["error"]) == (503, "unavailable")
    health = client.get("/healthz")
    assert health.status_code == 503 and health.json["redis"] == "down" and health.json["error"] == "unavailable"
    assert time.monotonic() - started < 10
    with app.app_context():
        assert db.session.scalar(sa.text("SELECT COUNT(*) FROM member_coupon")) == 0
        db.session.execute(sa.text("DELETE FROM member"))
        db.session.commit()
        db.engine.dispose()
