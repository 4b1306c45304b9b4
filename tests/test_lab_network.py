"""The lab at an RTT between tiers, for real: MariaDB and Redis, lock and lua, loopback and 1 ms."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from flask import Flask

from support.procs import ROOT


def test_the_lab_runs_at_each_rtt_and_counts_the_round_trips(
    app: Flask, process_env: dict[str, str], tmp_path: Path
) -> None:
    if not process_env["DATABASE_URL"].startswith("mysql"):
        pytest.skip("the database's round trips are PyMySQL's: needs MariaDB")
    # A stock that lasts seconds at both RTTs (the lock issues ~150 a second at loopback, ~60 at 1 ms): a phase's
    # round trips are counted from each process's lines, 0.25 s apart, so a phase of a fraction of a second
    # would be mostly its edges' interpolation.
    args = ["--strategies", "lock,lua", "--no-read", "--rtt-ms", "0,1", "--users", "20", "--duration", "8"]
    args += ["--quantity", "300", "--members", "1000", "--locust-workers", "1", "--drain-winners", "0", "--no-live"]
    done = subprocess.run(
        [sys.executable, "-m", "experiments.lab", *args, "--out", str(tmp_path)],
        cwd=ROOT,
        env=process_env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (run_dir,) = tmp_path.iterdir()
    results = json.loads((run_dir / "results.json").read_text())
    runs = {(r["strategy"], r["rtt_ms"]): r for r in results["runs"]}
    assert set(runs) == {("lock", 0.0), ("lua", 0.0), ("lock", 1.0), ("lua", 1.0)}
    assert results["config"]["rtt_ms"] == [0.0, 1.0]
    for (_, rtt), run in runs.items():
        stock, after = run["round_trips"]["stock"], run["round_trips"]["sold_out"]
        assert run["audit"]["ok"], run["audit"]
        # Every request asks Redis at least once (counted over the longer phase: a phase's edges are
        # interpolated between the processes' lines, 0.25 s apart); Redis counts every command a round trip
        # carried. MariaDB's statement counters leave out the pool's pings, so they are not compared.
        assert after["redis"]["round_trips"] >= 0.9 and stock["redis"]["round_trips"] > 0
        assert after["redis"]["commands"] >= after["redis"]["round_trips"]
        assert stock["database"]["statements"] >= 0 and stock["database"]["round_trips"] >= 0
        assert run["predicted_tps_while_stock"] > 0
        delivered = stock["delay"]["delivered_rtt_ms"]
        assert delivered is None if rtt == 0 else delivered >= 0.8 * rtt, stock
    for rtt in (0.0, 1.0):
        lock = runs["lock", rtt]["round_trips"]["stock"]
        # Inside the hold: the unsettled notes, the stock, the pre-ping, the SELECT, the INSERT, the stock
        # script, the COMMIT, the note's removal, the release; then the hand-over.
        assert lock["database"]["round_trips"] >= 3 and lock["database"]["statements"] > 0, lock
        assert lock["lock_chain"] >= 8, lock
    # The hold's round trips, as the probe counted them, are the chain's less the hand-over.
    hold = runs["lock", 1.0]["costs"]["lock_hold"]
    assert hold["round_trips"] == pytest.approx(runs["lock", 1.0]["round_trips"]["stock"]["lock_chain"] - 1, abs=0.01)
    report = (run_dir / "report.md").read_text()
    assert "## Round trips per request, per tier" in report and "## Results (RTT 1 ms)" in report
    assert "## Predicted against measured, by RTT" in report and "RTT 1 ms:" in done.stdout
