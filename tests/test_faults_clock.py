"""Hosts whose clocks are off by minutes: windows and drains still go by Redis's clock."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient

from app.extensions import clients
from strategies import keys, state
from support.procs import Proc, Processes, start_gunicorn, start_module, wait_for
from tests.helpers import bearer, make_members, new_coupon, rows_of

SKEW_S = 300


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


def test_scheduler_ahead_of_redis_still_drains_an_open_coupon(
    app: Flask, client: FlaskClient, seller, process_env: dict, tmp_path: Path
) -> None:
    """A scheduler host 5 minutes ahead must not take a coupon ending in 2 minutes for ended."""
    ((member, token),) = make_members(app, 1)
    with app.app_context():
        redis_now = datetime.fromtimestamp(state.now_ms(clients().state_redis) / 1000, UTC)
        broker = clients().broker
    ends_at = (redis_now + timedelta(seconds=120)).isoformat()
    coupon_id = new_coupon(client, seller[1], ends_at=ends_at)["id"]
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
    coupon_id = new_coupon(client, seller[1])["id"]
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
