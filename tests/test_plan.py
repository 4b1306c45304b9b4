"""The capacity plan on synthetic costs: each tier's bound, the one that binds, the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from experiments.reports import plan
from tests.lab_results import costs, make_results, make_run


@pytest.fixture
def results() -> dict[str, Any]:
    """lock: API 1 ms a request, a lock held 4 ms; lua: API 1 ms, Redis 50 us."""
    return make_results(
        make_run("lock", 1, 300.0, 200.0, costs=costs(1000.0, 100.0, hold_ms=4.0), api_cpu_us_per_request=1000.0),
        make_run("lua", 1, 1800.0, 1800.0, costs=costs(1000.0, 50.0), api_cpu_us_per_request=1000.0),
        make_run("read", 1, 2000.0, None),
    )


def test_the_lowest_bound_binds(results: dict[str, Any]) -> None:
    runs = plan.strategies(results)
    lock = plan.predict(runs["lock"], "stock", api_cores=4)
    assert lock.binding == "lock serialisation" and lock.tps == pytest.approx(250.0)
    assert lock.bounds["API CPU"] == pytest.approx(4000.0)
    after = plan.predict(runs["lock"], "sold_out", api_cores=4)
    assert after.binding == "API CPU" and "lock serialisation" not in after.bounds
    lua = plan.predict(runs["lua"], "stock", api_cores=40)
    assert lua.binding == "Redis (one core per coupon)" and lua.tps == pytest.approx(20_000.0)


def test_more_servers_raise_the_api_bound_only(results: dict[str, Any]) -> None:
    lua = plan.strategies(results)["lua"]
    assert plan.predict(lua, "stock", 4).tps == pytest.approx(2 * plan.predict(lua, "stock", 2).tps)


def test_the_study_setups_are_planned_beside_its_figures(results: dict[str, Any]) -> None:
    text = "\n".join(plan.study_lines(results))
    assert "2 API servers × 2 vCPU" in text and "4 API servers × 2 vCPU" in text
    assert "145.2" in text and "597.7" in text and "929.7" in text and "JVM" in text


def test_predicted_beside_measured(results: dict[str, Any]) -> None:
    """Unpinned, every tier shares the 2 cores: 2 s / (API 1,000 + Redis 50 + load generator 300 us)."""
    lines = plan.measured_lines(results)
    assert any(
        line.startswith("- lua ×1 while stock remained: predicted 1,482 TPS (CPU shared by every tier)")
        for line in lines
    )


def test_predicted_with_the_api_pinned(results: dict[str, Any]) -> None:
    """Pinned to its own core, the API's cost alone bounds it: 1 core / 1,000 us."""
    results["config"]["api_cpus"] = [0]
    lines = plan.measured_lines(results)
    assert any(line.startswith("- lua ×1 while stock remained: predicted 1,000 TPS (API CPU)") for line in lines)


def test_no_costs_no_plan() -> None:
    assert plan.study_lines(make_results(make_run("lua", 1, 900.0, 900.0))) == []


def test_command_line(results: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "results.json").write_text(json.dumps(results))
    assert plan.main([str(tmp_path), "--api-servers", "2", "--api-cores", "2", "--users", "1600", "--rtt-ms", "0"]) == 0
    out = capsys.readouterr().out
    assert "lock while stock remained: 250 TPS, bound by lock serialisation" in out
    assert "1,600 users at that rate wait" in out and "The study's setups" in out


def test_help_shows_a_default_only_where_there_is_one(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        plan.main(["--help"])
    assert exited.value.code == 0
    usage = " ".join(capsys.readouterr().out.split())  # argparse wraps the help at the terminal's width
    assert "API servers in the target setup --api-cores" in usage  # no "(default: None)" between them
    assert "CPU cores of each API server --db-cores" in usage and "(default: 2)" in usage
    assert usage.count("(default: None)") == 1 and "(None: not printed) (default: None)" in usage  # --users
