"""Starting the service: bad config stops it at once; the launcher runs everything embedded."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from app import create_app
from app.config import ConfigError
from support.procs import free_port, wait_for
from tests.helpers import ROOT, app_config, serves


def test_unknown_strategy_stops_create_app(services) -> None:
    with pytest.raises(ConfigError, match="ISSUE_STRATEGY must be one of lock, lua; got 'fifo'"):
        create_app(app_config(services, strategy="fifo"))


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("ISSUE_STRATEGY", "fifo", "ISSUE_STRATEGY must be one of lock, lua"),
        ("DRAIN_LOCK_EXPIRE_S", "0", "DRAIN_LOCK_EXPIRE_S must be at least 1"),  # 0 reads as "never expires"
    ],
)
def test_a_setting_that_cannot_work_stops_gunicorn_at_start(
    process_env: dict, name: str, value: str, message: str
) -> None:
    env = dict(process_env, **{name: value}, PORT=str(free_port()), WEB_WORKERS="1")
    done = subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert message in done.stderr


@pytest.mark.parametrize("secret", [None, "coupon-rush-development-secret-change-me"])
def test_production_refuses_the_development_secret(services, secret) -> None:
    with pytest.raises(ConfigError, match="JWT_SECRET_KEY"):
        create_app(app_config(services, APP_ENV="production", JWT_SECRET_KEY=secret))


def test_bad_integer_setting(monkeypatch) -> None:
    monkeypatch.setenv("DRAIN_BATCH", "lots")
    with pytest.raises(ConfigError, match="DRAIN_BATCH must be an integer"):
        create_app()


def test_launcher_runs_everything_embedded_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    """The quickstart: nothing configured, SQLite and an embedded Redis, a winner persisted, Ctrl-C."""
    port = free_port()
    # As `make run` starts it: no service URLs, and the venv not activated (no venv bin on PATH).
    venv_bin = str(Path(sys.executable).parent)
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "REDIS_CLUSTER_URL")}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != venv_bin)
    env.update(INSTANCE_PATH=str(tmp_path), PYTHONWARNINGS="ignore", DRAIN_INTERVAL_MS="50")
    launcher = subprocess.Popen(
        [sys.executable, "-m", "app.launcher", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: launcher.poll() is not None or serves(f"{base}/healthz"), 60, "the launcher's API")
        assert launcher.poll() is None, launcher.communicate()[0].decode(errors="replace")[-3000:]
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "flask",
                "--app",
                "wsgi",
                "create-user",
                "shop",
                "--password",
                "pw",
                "--role",
                "seller",
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
        )
        assert done.returncode == 0, done.stderr
        seller = requests.post(f"{base}/auth/login", json={"username": "shop", "password": "pw"}).json()
        coupon = requests.post(
            f"{base}/coupons",
            json={"name": "demo", "quantity": 1},
            headers={"Authorization": f"Bearer {seller['access_token']}"},
        ).json()
        requests.post(f"{base}/auth/signup", json={"username": "ann", "password": "pw"})
        token = requests.post(f"{base}/auth/login", json={"username": "ann", "password": "pw"}).json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        assert requests.post(f"{base}/coupons/{coupon['id']}/download", headers=auth).status_code == 202
        wait_for(
            lambda: requests.get(f"{base}/members/me/coupons", headers=auth).json()[0]["status"] == "issued",
            30,
            "the drain to persist the winner",
        )
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGINT)  # what Ctrl-C sends to the foreground group
        output = launcher.communicate(timeout=30)[0].decode(errors="replace")
    assert launcher.returncode in (0, 130, -signal.SIGINT), output[-3000:]
    assert not (tmp_path / "redis.sock").exists(), "the embedded Redis outlived the launcher"
