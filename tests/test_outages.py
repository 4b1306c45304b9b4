"""Outages answer 503 ``unavailable`` quickly and leave no half state."""

from __future__ import annotations

import time

import pytest
import redis_lock
import sqlalchemy as sa
from flask import Flask

from app import create_app
from app.extensions import clients, db
from strategies import Outcome, keys, state
from strategies.lock import LockStrategy
from support.procs import free_port
from tests.helpers import app_config, bearer, make_members


@pytest.mark.parametrize("strategy", ["lock"])
def test_lock_not_had_in_time_answers_503(app: Flask, strategy: str) -> None:
    app.config["LOCK_WAIT_S"] = 1
    ((_, token),) = make_members(app, 1)
    with app.app_context():
        client = clients().state_redis
        state.register(client, 1, "held", 5, 0, 0)
        holder = redis_lock.Lock(client, keys.issue_lock(1), expire=5, strict=False)
        assert holder.acquire(blocking=False)
    started = time.monotonic()
    resp = app.test_client().post("/coupons/1/download", headers=bearer(token))
    assert (resp.status_code, resp.json["error"]) == (503, "unavailable")
    assert time.monotonic() - started < 3
    holder.release()


def test_failed_commit_is_settled_by_completing_the_row(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    """The commit fails but the database still answers: settling writes the member's row, the unit stays spent."""
    with app.app_context():
        client, engine = clients().state_redis, db.engine
        state.register(client, 1, "flaky", 3, 0, 0)
        strategy = LockStrategy(client, engine, lock_expire_s=5, lock_wait_s=1)

        def broken_commit(self: sa.Connection) -> None:
            raise sa.exc.OperationalError("COMMIT", {}, Exception("server has gone away"))

        monkeypatch.setattr(sa.Connection, "commit", broken_commit)
        assert strategy.issue(1, 42) is Outcome.ISSUED  # settled at once: the truth is known
        monkeypatch.undo()
        assert int(client.hget(keys.coupon(1), "stock")) == 2
        assert not client.smembers(keys.unsettled(1))
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT member_id FROM member_coupon")).scalars().all() == [42]
        assert strategy.issue(1, 42) is Outcome.ALREADY_ISSUED


@pytest.mark.parametrize("strategy", ["lock", "lua"])
def test_redis_unreachable_answers_503_fast(services, migrated, strategy: str) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    app = create_app(app_config(services, strategy, REDIS_URL=dead))
    ((member_id, token),) = make_members(app, 1, prefix=f"r{strategy}")
    client = app.test_client()
    started = time.monotonic()
    resp = client.post("/coupons/1/download", headers=bearer(token))
    assert (resp.status_code, resp.json["error"]) == (503, "unavailable")
    health = client.get("/healthz")
    assert health.status_code == 503 and health.json["redis"] == "down" and health.json["error"] == "unavailable"
    assert time.monotonic() - started < 10
    with app.app_context():
        rows = sa.text("SELECT COUNT(*) FROM member_coupon WHERE member_id = :m")
        assert db.session.scalar(rows, {"m": member_id}) == 0
        db.session.execute(sa.text("DELETE FROM member"))
        db.session.commit()
        db.engine.dispose()
