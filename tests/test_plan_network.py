"""The plan with the network: the lock's chain and the thread pool at an RTT, the round trips counted per phase."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest

from experiments.engine import network
from experiments.engine.costs import Sample
from experiments.engine.results import Costs, LockHold
from experiments.reports import network_sections, plan, rtt_plot
from support.delay import Counts, counts_at, read_stats
from tests.lab_results import costs, make_results, make_run


def trips(redis: float, database: float, delivered: float | None = None, chain: float | None = None) -> dict:
    """A run's round_trips as the lab records them, the same in both phases."""
    phase: dict[str, Any] = {
        "requests": 900,
        "redis": {"round_trips": redis, "commands": redis * 3, "round_trip_ms": 0.1},
        "database": {"round_trips": database, "statements": database * 2, "round_trip_ms": 0.2},
        "drain": {"redis_round_trips": 0.1, "database_round_trips": 0.0},
        "delay": {"delivered_rtt_ms": delivered, "cpu_us_per_request": 3.0},
    }
    stock = dict(phase, **({"lock_chain": chain} if chain is not None else {}))
    return {"stock": stock, "sold_out": dict(phase)}


def lock_run(rtt: float, delivered: float | None, hold_ms: float, tps: float) -> dict[str, Any]:
    """A lock run: API 1 ms a request, 9 round trips in the hold (10 in the chain), a hold of ``hold_ms``."""
    return make_run(
        "lock",
        1,
        tps,
        tps,
        costs=costs(1000.0, 100.0, hold_ms=hold_ms),
        api_cpu_us_per_request=1000.0,
        rtt_ms=rtt,
        round_trips=trips(5, 4, delivered, chain=10),
    )


@pytest.fixture
def results() -> dict[str, Any]:
    """lock at loopback (a hold of 5 ms) and at 1 ms (14 ms: 5 ms local + 9 x 1 ms); lua, one round trip."""
    lua = {"costs": costs(1000.0, 50.0), "api_cpu_us_per_request": 1000.0, "round_trips": trips(1, 0)}
    found = make_results(
        lock_run(0, None, 5.0, 190.0),
        lock_run(1, 1.0, 14.0, 48.0),
        make_run("lua", 1, 1800.0, 1800.0, rtt_ms=0, **lua),
        make_run("lua", 1, 1700.0, 1700.0, rtt_ms=1, **dict(lua, round_trips=trips(1, 0, 1.0))),
    )
    found["config"].update(web_workers=4, web_threads=16)
    return found


def test_the_lock_chain_is_its_local_time_plus_its_round_trips_at_the_rtt(results: dict[str, Any]) -> None:
    at_one = [r for r in results["runs"] if r["strategy"] == "lock" and r["rtt_ms"] == 1]
    # The run at 1 ms: local 14 - 9 x 1 = 5 ms; at 0.5 ms the chain is 5 + 10 x 0.5 = 10 ms.
    assert plan.lock_chain(at_one, 0.5) == pytest.approx(10.0)
    p = plan.predict(at_one, "stock", api_cores=4, rtt_ms=2.0)
    assert p.binding == "lock serialisation" and p.tps == pytest.approx(1000 / 25, abs=0.1)
    both = plan.strategies(results)["lock"]  # loopback's run agrees: the same local time
    assert plan.lock_chain(both, 0.5) == pytest.approx(10.0)
    assert "lock serialisation" not in plan.predict(at_one, "sold_out", api_cores=4, rtt_ms=2.0).bounds


def test_a_report_without_round_trips_takes_the_chain_as_counted_today() -> None:
    old = [make_run("lock", 1, 200.0, 200.0, costs=costs(1000.0, 100.0, hold_ms=4.0))]
    assert plan.lock_chain(old, 0.0) == pytest.approx(4.0)
    assert plan.lock_chain(old, 1.0) == pytest.approx(4.0 + plan.LOCK_CHAIN_ROUND_TRIPS * 1.0)
    assert plan.lock_chain([make_run("lua", 1, 1.0, 1.0)], 1.0) is None


def test_the_thread_pool_bound_is_littles_law(results: dict[str, Any]) -> None:
    lua = plan.strategies(results)["lua"]
    p = plan.predict(lua, "stock", api_cores=400, rtt_ms=4.0, threads=64)
    # 64 threads / (1 ms of API time + 1 round trip x 4 ms)
    assert p.binding == "API threads (Little's law)" and p.tps == pytest.approx(64 / 0.005, rel=1e-3)
    assert "API threads (Little's law)" not in plan.predict(lua, "stock", api_cores=400, rtt_ms=2.0).bounds


def test_each_run_carries_the_plans_prediction_for_its_cpus_and_delivered_rtt(results: dict[str, Any]) -> None:
    plan.predict_runs(results)
    lock0, lock1 = (r for r in results["runs"] if r["strategy"] == "lock")
    assert lock0["predicted_tps_while_stock"] == pytest.approx(200.0)  # 1 / 5 ms
    assert lock1["predicted_tps_while_stock"] == pytest.approx(1000 / 15, abs=0.1)  # 5 + 10 x 1 ms
    assert lock1["predicted_tps_after_sellout"] > lock1["predicted_tps_while_stock"]
    results["runs"].append(make_run("read", 1, 2000.0, None))
    plan.predict_runs(results)
    assert "predicted_tps_while_stock" not in results["runs"][-1]


def test_the_plan_command_takes_the_rtt(results: dict[str, Any], tmp_path: Path, capsys: Any) -> None:
    import json

    (tmp_path / "results.json").write_text(json.dumps(results))
    assert plan.main([str(tmp_path), "--api-servers", "2", "--api-cores", "2", "--rtt-ms", "2"]) == 0
    out = capsys.readouterr().out
    assert "RTT 2 ms" in out and "lock while stock remained: 40 TPS, bound by lock serialisation" in out
    assert plan.main([str(tmp_path), "--api-servers", "2", "--api-cores", "2"]) == 0
    out = capsys.readouterr().out
    # The default: a data centre's 0.5 ms, for the setup asked and the study's.
    assert "RTT 0.5 ms" in out and "lock while stock remained: 100 TPS" in out and "2 vCPU**, one Redis" in out


def test_the_report_tables_predicted_against_measured_by_rtt(results: dict[str, Any]) -> None:
    table = "\n".join(network_sections.predicted_vs_measured(results))
    assert "| lock ×1 | while stock remained | 1 | 1.000 | 67 | lock serialisation | 48.0 | 72% | 67 (72%) |" in table
    # A hold at 1 ms longer than loopback's local time + 10 round trips: the run's own costs say 40 TPS, the
    # plan from loopback's still 67, and the table shows both.
    for run in results["runs"]:
        if run["strategy"] == "lock" and run["rtt_ms"] == 1:
            run["costs"]["lock_hold"]["mean_ms"] = 24.0
    table = "\n".join(network_sections.predicted_vs_measured(results))
    assert "| 1 | 1.000 | 40 | lock serialisation | 48.0 | 120% | 67 (72%) |" in table
    rows = "\n".join(network_sections.round_trips(results))
    assert "| lock ×1 | 1 | while stock remained | 1.000 | 5.00 | 15.00 | 4.00 | 8.00 | 0.10 / 0.00 | 10.00 |" in rows
    parts = network_sections.by_rtt(results, lambda r: ["## Results", str(len(r["runs"]))])
    assert parts == [["## Results (RTT 0 ms)", "2"], ["## Results (RTT 1 ms)", "2"]]
    assert "RTT 1 ms:\n" in network_sections.summary_tables(results, lambda r: str(len(r["runs"])))


def test_a_report_at_loopback_alone_has_no_rtt_table() -> None:
    plain = make_results(make_run("lua", 1, 1800.0, 1800.0, costs=costs(1000.0, 50.0)))
    assert network_sections.predicted_vs_measured(plain) == []
    assert network_sections.round_trips(plain) == []
    assert network_sections.by_rtt(plain, lambda r: ["x"]) == [["x"]]


def test_rtts_interleave_like_repeats() -> None:
    assert network.order(["lock", "lua"], 2, [0.0, 1.0]) == [
        ("lock", 0.0, 0),
        ("lua", 0.0, 0),
        ("lock", 1.0, 0),
        ("lua", 1.0, 0),
        ("lua", 1.0, 1),
        ("lock", 1.0, 1),
        ("lua", 0.0, 1),
        ("lock", 0.0, 1),
    ]
    assert network.rtts("0,0.5, 1") == [0.0, 0.5, 1.0]
    for bad in ("x", "-1", ""):
        with pytest.raises(argparse.ArgumentTypeError):
            network.rtts(bad)


def _stats(folder: Path, pid: int, lines: list[tuple[float, Counts]]) -> None:
    (folder / f"net-{pid}.txt").write_text(
        "".join(f"{t:.3f} " + " ".join(f"{v:.6f}" for v in c.line()) + "\n" for t, c in lines)
    )


class _Servers:
    def __init__(self) -> None:
        self.samples = [(100.0, 0, 0), (110.0, 3000, 1000)]


def test_round_trips_per_phase_split_the_api_from_the_drain(tmp_path: Path) -> None:
    """The API: 4 round trips to Redis and 2 to the database per request; the drain apart."""
    api = [(100.0, Counts()), (105.0, Counts(2000, 1000, 3000, 3.0, 0.3, 0.5, 0.4)), (110.0, Counts(4000, 2000))]
    _stats(tmp_path, 11, api)
    _stats(tmp_path, 12, [(100.0, Counts()), (110.0, Counts(100, 10))])
    samples = [Sample(100.0, 0, 0, None, None, None, None), Sample(110.0, 1, 1, None, None, None, None)]
    records = [(100.0 + i * 0.01, 202 if i < 500 else 410, 1.0) for i in range(1000)]
    hold = LockHold(500, 1.0, 2.0, 1.0, 1000.0, round_trips=8.5)
    found = network.round_trips(_Servers(), tmp_path, samples, records, 105.0, Costs(5.0, None, None, "x", hold), {11})  # type: ignore[arg-type]
    stock = found["stock"]
    assert stock["requests"] == 500 and stock["redis"]["round_trips"] == pytest.approx(4.0)
    assert stock["database"]["round_trips"] == pytest.approx(2.0)
    assert stock["redis"]["commands"] == pytest.approx(3.0) and stock["database"]["statements"] == pytest.approx(1.0)
    assert stock["delay"]["delivered_rtt_ms"] == pytest.approx(1.0) and stock["lock_chain"] == 9.5
    assert stock["redis"]["round_trip_ms"] == pytest.approx(0.25)
    assert stock["drain"]["redis_round_trips"] == pytest.approx(0.1)
    assert found["sold_out"]["redis"]["round_trips"] == pytest.approx(4.0) and "lock_chain" not in found["sold_out"]
    assert network.delivered_rtt_ms({"round_trips": found}) == pytest.approx(1.0)
    assert network.delivered_rtt_ms({}) == 0.0
    assert counts_at(read_stats(tmp_path), 105.0).redis == 2000


def test_the_rtt_plot_reads_the_study_lock_off_the_lock_line(results: dict[str, Any]) -> None:
    # The lock's line: 1000 / (5 ms local + 10 round trips x RTT); 120 TPS at 0.333 ms, 60 TPS at 1.167 ms.
    rtts = [i * 0.001 for i in range(3001)]
    low, high = rtt_plot.study_lock_rtts(results, rtts)
    assert low == pytest.approx(1 / 3, abs=0.002) and high == pytest.approx(7 / 6, abs=0.002)
    assert rtt_plot.crossing([0.0, 1.0], [100.0, 50.0], 200.0) is None
    found = {(p["strategy"], p["phase"], p["rtt_ms"]): p for p in rtt_plot.points(results)}
    at_one = found[("lock", "stock", 1.0)]
    assert at_one["delivered_ms"] == 1.0 and at_one["tps"].median == 48.0
    assert ("read", "stock", 0.0) not in found and len(found) == 8


def test_the_rtt_command_draws_several_reports(results: dict[str, Any], tmp_path: Path, capsys: Any) -> None:
    import json

    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text(json.dumps(results), encoding="utf-8")
    out = tmp_path / "rtt.png"
    assert rtt_plot.main([str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "RTT 0.33-1.17 ms" in capsys.readouterr().out
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps(dict(results, runs=[])), encoding="utf-8")
    with pytest.raises(SystemExit):
        rtt_plot.main([str(empty), "--out", str(out)])
