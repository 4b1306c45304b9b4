"""Redis that lost its data: the embedded default survives a restart; missing state is reported and rebuilt."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest
import requests
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from app import recovery
from app.extensions import clients, db
from app.models import MemberCoupon
from jobs.drain import drain
from strategies import state
from support.procs import free_port, wait_for
from tests.helpers import ROOT, bearer, make_members, serves


@pytest.mark.parametrize("strategy", ["lock", "lua"])
def test_missing_state_is_reported_and_rebuilt(
    app: Flask, client: FlaskClient, seller, strategy: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redis loses its data: the coupon answers 503 (never "not found") until rebuild-state restores it."""
    # The commands start make serve's embedded Redis unless REDIS_URL is set: they get the test's.
    monkeypatch.setenv("REDIS_URL", app.config["REDIS_URL"])
    _, seller_token = seller
    coupon_id = client.post("/coupons", json={"name": "lost", "quantity": 4}, headers=bearer(seller_token)).json["id"]
    members = make_members(app, 6)
    for _, token in members[:2]:
        assert client.post(f"/coupons/{coupon_id}/download", headers=bearer(token)).status_code in (201, 202)
    with app.app_context():
        drain(clients().state_redis, db.engine, coupon_id, batch=100, lock_expire_s=5, max_run_s=10)
        clients().state_redis.flushdb()  # the loss: a failover without persistence
        assert recovery.check() == [coupon_id]

    health = client.get("/healthz")
    assert health.status_code == 200 and health.json["coupons_missing_state"] == [coupon_id]
    lost = client.post(f"/coupons/{coupon_id}/download", headers=bearer(members[2][1]))
    assert (lost.status_code, lost.json["error"]) == (503, "unavailable")
    assert client.get(f"/coupons/{coupon_id}", headers=bearer(members[2][1])).status_code == 503
    assert client.get("/coupons/999999", headers=bearer(members[2][1])).status_code == 404  # no row: not found

    checked = app.test_cli_runner().invoke(args=["check-state"])
    assert checked.exit_code == 1 and f"1 open coupons without Redis state: [{coupon_id}]" in checked.output

    result = app.test_cli_runner().invoke(args=["rebuild-state"])
    assert result.exit_code == 0 and f"coupon {coupon_id}: rebuilt" in result.output, result.output
    assert client.get("/healthz").json["coupons_missing_state"] == []
    assert client.get(f"/coupons/{coupon_id}", headers=bearer(members[2][1])).json["remaining"] == 2
    again = app.test_cli_runner().invoke(args=["rebuild-state", str(coupon_id)])
    assert "left as it was" in again.output  # never overwrites
    assert app.test_cli_runner().invoke(args=["check-state"]).exit_code == 0
    assert "every open coupon has its Redis state" in app.test_cli_runner().invoke(args=["rebuild-state"]).output

    answers = [client.post(f"/coupons/{coupon_id}/download", headers=bearer(t)).status_code for _, t in members]
    won = 201 if strategy == "lock" else 202
    # The first two have their rows (and are winners again), two units remain, then sold out.
    assert answers[:2] == [409, 409] and answers[2:4] == [won, won] and answers[4:] == [410, 410], answers
    with app.app_context():
        drain(clients().state_redis, db.engine, coupon_id, batch=100, lock_expire_s=5, max_run_s=10)
        rows = db.session.scalars(sa.select(MemberCoupon.member_id).where(MemberCoupon.coupon_id == coupon_id)).all()
        assert sorted(rows) == sorted(m for m, _ in members[:4])
        assert state.stock(clients().state_redis, coupon_id) == 0


@contextmanager
def launcher(instance: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m app.launcher`` (make serve's path) on embedded defaults in ``instance``."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "REDIS_CLUSTER_URL")}
    env.update(INSTANCE_PATH=str(instance), PYTHONWARNINGS="ignore", DRAIN_INTERVAL_MS="50")
    log = open(instance / f"launcher-{port}.log", "ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.launcher", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: proc.poll() is not None or serves(f"{base}/healthz"), 60, "the launcher's API")
        assert proc.poll() is None, (instance / f"launcher-{port}.log").read_text()[-3000:]
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            proc.wait(30)
        log.close()


def kill9_everything(proc: subprocess.Popen[bytes], instance: Path) -> None:
    """kill -9 of the launcher, every process under it and the embedded Redis, each by its pid, all at once."""
    victims = [p.pid for p in psutil.Process(proc.pid).children(recursive=True)]
    victims += [proc.pid, int((instance / "redis.pid").read_text())]  # the Redis daemon is nobody's child
    for pid in victims:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    proc.wait(10)
    wait_for(lambda: not any(_alive(pid) for pid in victims), 10, "every process to die")


def test_embedded_default_survives_kill9_of_everything(tmp_path: Path) -> None:
    """Winners pending when everything dies are drained after a restart; the coupon sells what remains."""
    port, quantity = free_port(), 12
    with launcher(tmp_path, port) as first:
        base = f"http://127.0.0.1:{port}"
        seller = _account(base, "shop", role="seller", instance=tmp_path)
        coupon_id = requests.post(
            f"{base}/coupons", json={"name": "survivor", "quantity": quantity}, headers=bearer(seller)
        ).json()["id"]
        tokens = [_account(base, f"member{i}") for i in range(quantity + 1)]
        answers = [requests.post(f"{base}/coupons/{coupon_id}/download", headers=bearer(t)) for t in tokens[:5]]
        assert [a.status_code for a in answers] == [202] * 5
        kill9_everything(first, tmp_path)

    with launcher(tmp_path, port):
        wait_for(lambda: len(_rows(tmp_path, coupon_id)) == 5, 30, "the five winners to be drained")
        more = [requests.post(f"{base}/coupons/{coupon_id}/download", headers=bearer(t)) for t in tokens[5:]]
        assert [a.status_code for a in more] == [202] * (quantity - 5) + [410]
        assert requests.post(f"{base}/coupons/{coupon_id}/download", headers=bearer(tokens[0])).status_code == 409
        wait_for(lambda: len(_rows(tmp_path, coupon_id)) == quantity, 30, "every winner to be drained")
    rows = _rows(tmp_path, coupon_id)
    assert len(set(rows)) == len(rows) == quantity
    assert not (tmp_path / "redis.sock").exists(), "the embedded Redis outlived the launcher"


def _account(base: str, name: str, role: str = "member", instance: Path | None = None) -> str:
    """A signed-in account: members sign up; a seller is made with the CLI, as the README says."""
    if role == "seller":
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
        env.update(INSTANCE_PATH=str(instance))
        cmd = [sys.executable, "-m", "flask", "--app", "wsgi", "create-user", name, "--password", "pw", "--role", role]
        done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    else:
        assert requests.post(f"{base}/auth/signup", json={"username": name, "password": "pw"}).status_code == 201
    return str(requests.post(f"{base}/auth/login", json={"username": name, "password": "pw"}).json()["access_token"])


def _rows(instance: Path, coupon_id: int) -> list[int]:
    with sqlite3.connect(instance / "coupon_rush.sqlite3", timeout=30) as conn:
        return [r[0] for r in conn.execute("SELECT member_id FROM member_coupon WHERE coupon_id = ?", (coupon_id,))]


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
