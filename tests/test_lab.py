"""The lab end to end at toy scale, and its audit catching what it must catch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import requests
from flask import Flask

from app.extensions import clients, db
from experiments import lab
from experiments.engine import network, stack
from experiments.engine.audit import audit
from experiments.engine.runs import progress_line
from experiments.engine.stack import service
from jobs.drain import drain
from support.procs import ROOT, wait_for
from support.queue import fill_queue
from tests.helpers import bearer, make_members


@pytest.mark.slow
def test_the_lab_runs_both_strategies_and_the_ceiling(tmp_path: Path) -> None:
    """As `make run` runs it: embedded SQLite and Redis, which it stops when done."""
    args = [
        "--demo",
        "--users",
        "20",
        "--duration",
        "3",
        "--quantity",
        "30",
        "--members",
        "300",
        "--drain-winners",
        "300",
        "--out",
        str(tmp_path / "reports"),
    ]
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "REDIS_CLUSTER_URL")}
    env.update(INSTANCE_PATH=str(tmp_path / "instance"), PYTHONWARNINGS="ignore")
    done = subprocess.run(
        [sys.executable, "-m", "experiments.lab", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert not (tmp_path / "instance" / "redis.sock").exists(), "the embedded Redis outlived the lab"
    (run_dir,) = (tmp_path / "reports").iterdir()
    results = json.loads((run_dir / "results.json").read_text())
    runs = {r["strategy"]: r for r in results["runs"]}
    assert set(runs) == {"lock", "lua", "read"}
    for strategy in ("lock", "lua"):
        assert runs[strategy]["audit"]["ok"], runs[strategy]["audit"]
        assert runs[strategy]["winners"] == 30 and runs[strategy]["requests"] > 30
    # The lag is clamped at 0, so bound it from above: the lab waits at most 120 s for the drain, and a
    # mix of time bases (monotonic against epoch) would show as a lag far beyond that.
    drain = runs["lua"]["drain"]
    assert 0 <= drain["lag_s"] < 120 and drain["rows_per_s"] > 0, drain
    assert runs["lock"]["drain"] is None  # the lock strategy writes its rows itself: nothing to drain
    assert {b["batch"] for b in results["drain_benchmark"]} == {100, 1000, 5000}
    assert (run_dir / "report.md").exists() and (run_dir / "tps.png").exists()
    assert (run_dir / "report.html").exists() and "live view: http://127.0.0.1:" in done.stdout
    for run in runs.values():
        assert run["api_cpu_us_per_request"] > 0 and run["costs"]["stock"]["api_us"] > 0, run["costs"]
        assert run["costs"]["stock"]["redis_us"] > 0 and run["costs"]["stock"]["loadgen_us"] > 0
    assert runs["lua"]["costs"]["sold_out"]["evalsha_us_per_call"] > 0
    hold = runs["lock"]["costs"]["lock_hold"]
    assert hold["samples"] >= 1 and 0 < hold["p50_ms"] <= hold["p99_ms"] and hold["ceiling_tps"] > 0
    assert results["packages"]["requirements_dev_lock_sha256"] and results["machine"]["kernel"]
    assert results["config"]["database_version"].startswith("sqlite") and results["config"]["settings"]["repeat"] == 1
    assert "lua/lock" in done.stdout and "audit" in done.stdout


def test_audit_flags_winners_not_yet_persisted_and_askers_missing(app: Flask) -> None:
    with app.app_context():
        client, engine = clients().state_redis, db.engine
        fill_queue(client, 5, 10)  # members 1..10 won
        report = audit(client, engine, "lua", 5, 10, asked=set(range(1, 11)), won_responses=10, failures=0)
        assert not report.ok
        assert not report.checks["rows == winners"] and not report.checks["queue empty"]
        drain(client, engine, 5, batch=4, lock_expire_s=5, max_run_s=10)
        assert audit(client, engine, "lua", 5, 10, asked=set(range(1, 11)), won_responses=10, failures=0).ok
        partial = audit(client, engine, "lua", 5, 10, asked=set(range(1, 6)), won_responses=10, failures=0)
        assert not partial.checks["only members who asked"]
        assert not audit(client, engine, "lua", 5, 10, set(range(1, 11)), won_responses=9, failures=0).ok
        # Member 10's answer never came: it may have won, and the audit allows for that and no more.
        unknown = audit(client, engine, "lua", 5, 10, set(range(1, 10)), won_responses=9, failures=0, in_flight={10})
        assert unknown.ok and unknown.expected_winners == "9-10"
        assert not audit(
            client, engine, "lua", 5, 10, set(range(1, 10)), won_responses=8, failures=0, in_flight={10}
        ).ok


def test_an_unknown_strategy_is_refused_before_anything_runs(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        lab.parse(["--strategies", "lock,redlock"])
    assert exited.value.code == 2
    assert "unknown strategy redlock: choose from lock, lua" in capsys.readouterr().err
    assert lab.parse(["--strategies", "lua"]).strategies == ["lua"]
    assert lab.parse([]).strategies == ["lock", "lua"]


def test_repeats_interleave_so_drift_favours_no_strategy() -> None:
    assert network.order(["lock", "lua", "read"], 3, [0.0]) == [
        ("lock", 0.0, 0),
        ("lua", 0.0, 0),
        ("read", 0.0, 0),
        ("read", 0.0, 1),
        ("lua", 0.0, 1),
        ("lock", 0.0, 1),
        ("lock", 0.0, 2),
        ("lua", 0.0, 2),
        ("read", 0.0, 2),
    ]


def test_progress_counts_the_seconds_of_load_and_none_past_the_end() -> None:
    lines = [progress_line("lua ×1", t + 0.6, 8, 3) for t in range(12)]  # an 8 s run, Locust stopping after
    assert [line for line in lines if line] == ["   lua ×1:   5/8 s, rows persisted 3"]
    assert progress_line("lock ×1", 60.2, 60, 9) == "   lock ×1:  60/60 s, rows persisted 9"


def test_the_progress_clock_starts_when_the_load_does(tmp_path: Path) -> None:
    started = tmp_path / "load-started"
    assert stack._began(started) is None
    started.write_text("")  # the master is writing it
    assert stack._began(started) is None
    started.write_text(repr(time.time() - 5.0))  # Locust's start-up, however long, is not counted
    seen: list[float] = []
    halt = stack._ticker(seen.append, started)
    try:
        wait_for(lambda: bool(seen), 30, "a progress tick")
    finally:
        halt()
    assert 5.0 <= seen[0] < 30.0


def test_usage_names_the_command_and_shows_defaults() -> None:
    usage = lab.parser().format_help()
    assert usage.startswith("usage: python -m experiments.lab") and "(default: 1600)" in usage
    demo = " ".join(usage.split())  # argparse wraps the help at the terminal's width
    assert "a short run: --users 200 --duration 8 --quantity 500 --members 5000 --locust-workers 1" in demo
    assert "{'users'" not in usage


def test_granian_serves_the_api_the_lab_compares(app: Flask, process_env: dict[str, str], tmp_path: Path) -> None:
    """--server granian: the same app, workers and threads, through real HTTP; a rush's download and read."""
    ((_, seller),) = make_members(app, 1, role="seller", prefix="seller")
    ((_, member),) = make_members(app, 1)
    env = dict(process_env, WEB_WORKERS="2", WEB_THREADS="4")
    with service(env, 1, tmp_path, drain=False, server="granian") as running:
        (base,) = running.hosts
        server = psutil.Process(running.pids[0])
        assert "granian" in server.cmdline() and len(server.children(recursive=True)) >= 2  # and its two workers
        coupon = requests.post(f"{base}/coupons", json={"name": "g", "quantity": 1}, headers=bearer(seller), timeout=10)
        assert coupon.status_code == 201, coupon.text
        url = f"{base}/coupons/{coupon.json()['id']}"
        won = requests.post(f"{url}/download", headers=bearer(member), timeout=10)
        assert won.status_code == 202 and won.json()["status"] == "pending", won.text
        again = requests.post(f"{url}/download", headers=bearer(member), timeout=10)
        assert again.status_code == 409 and again.json()["error"] == "already_issued", again.text
        read = requests.get(url, headers=bearer(member), timeout=10)
        assert read.status_code == 200 and read.json()["remaining"] == 0, read.text
    assert lab.parse(["--server", "granian"]).server == "granian" and lab.parse([]).server == "gunicorn"
