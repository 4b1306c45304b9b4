"""Hosts whose clocks are off by minutes, and a drain that commits between a member's two reads."""

from __future__ import annotations

import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from app.extensions import clients, db
from jobs.drain import drain
from strategies import keys, state
from support.procs import Proc, Processes, start_gunicorn, start_module, wait_for
from tests.conftest import bearer, make_members

SKEW_S = 300
ROWS = sa.text("SELECT member_id FROM member_coupon WHERE coupon_id = :c")


def skewed(args: list[str], offset: str) -> list[str]:
    """``args`` run under faketime with the wall clock shifted by ``offset`` ("+300s")."""
    return ["faketime", "-f", offset, *args]


def skewed_env(env: dict[str, str]) -> dict[str, str]:
    """The environment of a skewed process: the monotonic clock is shifted too.

    Shifted by a constant, it still runs at the true rate, so deadlines keep their length. Not
    FAKETIME_DONT_FAKE_MONOTONIC=1: with it, libfaketime 0.9.10 fails Python 3.11's time.sleep
    (clock_nanosleep on CLOCK_MONOTONIC with TIMER_ABSTIME) with EINVAL.
    """
    return {k: v for k, v in env.items() if k != "FAKETIME_DONT_FAKE_MONOTONIC"}


def register(client: FlaskClient, seller_token: str, **window: str) -> int:
    body = {"name": "skew", "quantity": 5, **window}
    resp = client.post("/coupons", json=body, headers=bearer(seller_token))
    assert resp.status_code == 201, resp.data
    return int(resp.json["id"])


def rows_of(app: Flask, coupon_id: int) -> list[int]:
    with app.app_context():
        return [int(m) for m in db.session.execute(ROWS, {"c": coupon_id}).scalars()]


def test_scheduler_ahead_of_redis_still_drains_an_open_coupon(
    app: Flask, client: FlaskClient, seller, process_env: dict, tmp_path: Path
) -> None:
    """A scheduler host 5 minutes ahead must not take a coupon ending in 2 minutes for ended."""
    ((member, token),) = make_members(app, 1)
    with app.app_context():
        redis_now = datetime.fromtimestamp(state.now_ms(clients().state_redis) / 1000, UTC)
        broker = clients().broker
    ends_at = (redis_now + timedelta(seconds=120)).isoformat()
    coupon_id = register(client, seller[1], ends_at=ends_at)
    with Processes() as procs:
        scheduler_args = skewed([sys.executable, "-m", "jobs.scheduler"], f"+{SKEW_S}s")
        scheduler = procs.add(Proc(scheduler_args, skewed_env(process_env), tmp_path / "scheduler.log"))
        worker = procs.add(start_module("jobs.worker", process_env, tmp_path / "worker.log"))
        beats: set[bytes] = set()

        def ticked_a_few_times() -> bool:
            beat = broker.get(keys.SCHEDULER_HEARTBEAT)
            if beat is not None:
                beats.add(beat)
            return len(beats) >= 5

        wait_for(ticked_a_few_times, 30, "the skewed scheduler to tick a few times")
        assert float(min(beats)) < redis_now.timestamp() + 60, "the heartbeat is by Redis's clock, not the host's"
        resp = client.post(f"/coupons/{coupon_id}/download", headers=bearer(token))
        assert resp.status_code == 202, resp.data
        wait_for(lambda: rows_of(app, coupon_id) == [member], 30, "the winner's row, drained by the skewed scheduler")
        for proc in (scheduler, worker):  # done with them: no graceful stop to wait for
            proc.kill9()


@pytest.mark.parametrize("strategy", ["lock"])
def test_lock_host_behind_redis_opens_the_window_at_registration(
    app: Flask, client: FlaskClient, seller, process_env: dict, tmp_path: Path, strategy: str
) -> None:
    """An API host 5 minutes behind answers 201 for a coupon registered (on another host) to open now."""
    make_members(app, 1, prefix="late")
    coupon_id = register(client, seller[1])
    with Processes() as procs:
        env = dict(process_env, ISSUE_STRATEGY=strategy)
        server, base = start_gunicorn(
            skewed_env(env), tmp_path / "gunicorn.log", workers=1, threads=4, prefix=skewed([], f"-{SKEW_S}s")
        )
        procs.add(server)
        # Logged in on the skewed host: its tokens carry its own clock, as they would in production.
        login = requests.post(f"{base}/auth/login", json={"username": "late0", "password": "password"}, timeout=10)
        assert login.status_code == 200, login.text
        headers = bearer(login.json()["access_token"])
        resp = requests.post(f"{base}/coupons/{coupon_id}/download", headers=headers, timeout=10)
    assert resp.status_code == 201, resp.text


def test_member_list_shows_a_winner_drained_between_its_reads(app: Flask, client: FlaskClient, seller) -> None:
    """The drain commits the member's row right after the list's SELECT: the coupon is still listed."""
    ((member, token),) = make_members(app, 1)
    coupon_id = register(client, seller[1])
    assert client.post(f"/coupons/{coupon_id}/download", headers=bearer(token)).status_code == 202
    with app.app_context():
        redis_client, engine = clients().state_redis, db.engine
    moved: list[int] = []
    fired = threading.Event()

    def drain_now() -> None:
        moved.append(drain(redis_client, engine, coupon_id, batch=100, lock_expire_s=5, max_run_s=10))

    def after_select(_conn, _cursor, statement: str, *_args: object) -> None:
        if fired.is_set() or not statement.lstrip().upper().startswith("SELECT") or "member_coupon" not in statement:
            return
        fired.set()
        worker = threading.Thread(target=drain_now)
        worker.start()
        worker.join(15)

    sa.event.listen(engine, "after_cursor_execute", after_select)
    try:
        resp = client.get("/members/me/coupons", headers=bearer(token))
    finally:
        sa.event.remove(engine, "after_cursor_execute", after_select)
    assert moved == [1], "the drain must have committed during the request"
    assert resp.status_code == 200, resp.data
    assert [c["coupon_id"] for c in resp.json] == [coupon_id]
    assert rows_of(app, coupon_id) == [member]
