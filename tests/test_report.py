"""The lab report renderer on synthetic results: files, table, ratios, audits, edge cases. No services."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from experiments.reports.report import main, ratios, render, summary_table
from tests.lab_results import CHECKS, PASSED_AUDIT, costs, make_results, make_run

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def results() -> dict[str, Any]:
    """lock, lua and read at one instance; lua alone at two, with a failed audit and no sell-out."""
    checks = {**dict.fromkeys(CHECKS, True), "queue empty": False}
    failed = {**PASSED_AUDIT, "ok": False, "rows": 480, "checks": checks}
    return make_results(
        make_run("lua", 1, 900.0, 400.0),
        make_run("lock", 1, 200.0, 100.0),
        make_run("read", 1, 1000.0, None),
        make_run("lua", 2, 1200.0, 500.0, audit=failed, sellout_s=None, drain=None, timeline=[]),
    )


@pytest.fixture
def report(results: dict[str, Any], tmp_path: Path) -> str:
    """The rendered report.md."""
    render(results, tmp_path)
    return (tmp_path / "report.md").read_text(encoding="utf-8")


def test_render_writes_the_report_and_two_pngs(results: dict[str, Any], tmp_path: Path) -> None:
    paths = render(results, tmp_path / "run")
    assert paths == [tmp_path / "run" / name for name in ("report.md", "tps.png", "latency.png", "report.html")]
    for png in paths[1:3]:
        assert png.read_bytes().startswith(PNG_MAGIC)
    assert "![TPS over time](tps.png)" in paths[0].read_text() and "](latency.png)" in paths[0].read_text()


def test_report_has_the_header_and_the_runs_side_by_side(report: str) -> None:
    assert report.startswith("# Coupon rush TPS lab: run 20261124-201500")
    assert "`a709c2e`" in report and "2 CPUs, 23.4 GB memory" in report
    assert "gunicorn 2 workers × 32 threads" in report and "1,600 Locust users" in report
    assert "| | lock ×1 | lua ×1 | read ×1 | lua ×2 |" in report
    assert "| TPS while stock remained | 100.0 | 400.0 | - | 500.0 |" in report
    assert "| TPS (whole run) | 200.0 | 900.0 | 1,000.0 | 1,200.0 |" in report
    assert "| audit | OK | OK | - | FAIL |" in report
    assert "| sold out after s | 3.5 | 3.5 | - | none |" in report


def test_report_has_the_study_reference(report: str) -> None:
    for figure in ("145.2", "9,435", "60-120 TPS while stock remained", "597.7", "66.77", "929.7"):
        assert figure in report
    assert "not comparable" in report


def test_report_has_the_headline_ratios(report: str) -> None:
    assert (
        "×1: lua/lock 4.50x overall (study: 4.1x), 4.00x while stock remained; lua/ceiling 0.90 (goal >= 0.8: met); "
        "lock/ceiling 0.20" in report
    )
    assert (
        "×2: lua/lock n/a overall (study: 4.1x), n/a while stock remained; lua/ceiling n/a (goal >= 0.8: n/a); "
        "lock/ceiling n/a" in report
    )


def test_the_headline_comes_once_with_its_terms_then_what_was_measured_then_the_model(tmp_path: Path) -> None:
    results = make_results(
        make_run("lock", 1, 200.0, 100.0, costs=costs(1000.0, 100.0, hold_ms=4.0), api_cpu_us_per_request=1000.0),
        make_run("lua", 1, 900.0, 400.0, costs=costs(900.0, 50.0), api_cpu_us_per_request=900.0),
        make_run("read", 1, 1000.0, None),
    )
    render(results, tmp_path)
    report = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert report.count("lua/lock 4.50x") == 1 and report.count("Headline") == 1
    headings = [line for line in report.splitlines() if line.startswith("## ")]
    assert headings[:5] == [
        "## Headline",
        "## What was measured",
        "## Results",
        "## Cost per request, per tier (CPU µs)",
        "## The capacity model",
    ]
    # Each term is said before the ratio line uses it.
    ratio_line = report.index("- ×1: lua/lock")
    for term in ("(×N)", "The study is the original project's", "The ceiling is the read run's TPS"):
        assert report.index(term) < ratio_line, term
    assert "lua/ceiling 0.90 (goal >= 0.8: met)" in report
    assert "### Predicted vs measured (this machine)" in report and "### The study's setups" in report


def test_report_has_each_audit_verdict_and_check(report: str) -> None:
    assert "### lua ×1: audit OK" in report and "### lock ×1: audit OK" in report
    assert "### lua ×2: audit FAIL" in report and "- FAIL: queue empty" in report
    assert "### read ×1: no audit" in report
    assert "last row persisted 0.21 s after sell-out, 48,000 rows/s" in report
    assert "202: 500, 409: 20, 410: 1,480" in report and "already_issued: 20, sold_out: 1,480" in report
    assert "- lua ×1: 41%" in report


def test_ratios_are_exact_and_none_where_a_side_is_missing(results: dict[str, Any]) -> None:
    medians = {k: v and v.median for k, v in ratios(results)[1].items()}
    assert medians == {
        "lua_over_lock": pytest.approx(4.5),
        "lua_over_lock_while_stock": pytest.approx(4.0),
        "lua_over_ceiling": pytest.approx(0.9),
        "lock_over_ceiling": pytest.approx(0.2),
    }
    assert all(v is not None and v.n == 1 for v in ratios(results)[1].values())
    keys = ("lua_over_lock", "lua_over_lock_while_stock", "lua_over_ceiling", "lock_over_ceiling")
    assert ratios(results)[2] == dict.fromkeys(keys)


def test_ratios_are_none_where_a_side_is_zero_or_null() -> None:
    results = make_results(
        make_run("lock", 1, 0.0, 0.0), make_run("lua", 1, 900.0, None), make_run("read", 1, 0.0, None)
    )
    keys = ("lua_over_lock", "lua_over_lock_while_stock", "lua_over_ceiling", "lock_over_ceiling")
    assert ratios(results) == {1: dict.fromkeys(keys)}


def test_a_ceiling_below_the_goal_is_marked_not_met(tmp_path: Path) -> None:
    results = make_results(make_run("lua", 1, 700.0, 650.0), make_run("read", 1, 1000.0, None))
    render(results, tmp_path)
    assert "lua/ceiling 0.70 (goal >= 0.8: NOT met)" in (tmp_path / "report.md").read_text()


def test_summary_table_has_every_run_and_the_ratios(results: dict[str, Any]) -> None:
    lines = summary_table(results).splitlines()
    assert lines[0].split()[:4] == ["strategy", "inst", "TPS", "TPS"]
    assert [line.split()[:3] for line in lines[1:5]] == [
        ["lock", "1", "200.0"],
        ["lua", "1", "900.0"],
        ["read", "1", "1,000.0"],
        ["lua", "2", "1,200.0"],
    ]
    assert lines[4].split()[-4:] == ["FAIL", "-", "-", "41%"]
    assert lines[-2].startswith("×1: lua/lock 4.50x overall") and lines[-1].startswith("×2:")


@pytest.mark.parametrize(
    "run",
    [
        make_run("read", 1, 1000.0, None, timeline=[]),
        make_run("lua", 1, 900.0, None, sellout_s=None, drain=None, timeline=[]),
        make_run("lock", 1, 0.0, None, sellout_s=None, latency_ms=dict.fromkeys(("mean", "p50", "p95", "p99", "max"))),
    ],
    ids=["read", "lua-no-sellout", "lock-no-latency"],
)
def test_a_single_run_renders(run: dict[str, Any], tmp_path: Path) -> None:
    paths = render(make_results(run), tmp_path)
    assert all(png.read_bytes().startswith(PNG_MAGIC) for png in paths[1:3])
    assert f"| | {run['strategy']} ×1 |" in paths[0].read_text()
    table = summary_table(make_results(run)).splitlines()
    assert table[2] == "" and table[3].startswith("TPS ratios for each number of API instances (×N).")
    assert table[-2] == "" and table[-1].startswith("×1: ")  # header, the run; the terms; one ratio line


def test_the_command_line_renders_next_to_results_json(
    results: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "results.json"
    source.write_text(json.dumps(results), encoding="utf-8")
    assert main([str(source)]) == 0
    assert (tmp_path / "report.md").exists() and (tmp_path / "latency.png").exists()
    assert "×1: lua/lock 4.50x overall" in capsys.readouterr().out


def test_repeats_report_the_median_and_its_range(tmp_path: Path) -> None:
    runs = [make_run("lock", 1, tps, tps / 2, repeat=i) for i, tps in enumerate((200.0, 300.0, 250.0))]
    runs += [make_run("lua", 1, tps, tps, repeat=i) for i, tps in enumerate((1000.0, 900.0, 1250.0))]
    render(make_results(*runs), tmp_path)
    report = (tmp_path / "report.md").read_text()
    assert "| TPS (whole run) | 250.0 (200.0–300.0) | 1,000.0 (900.0–1,250.0) |" in report
    assert "×1: lua/lock 5.00x (3.00–5.00) overall" in report  # 1000/200, 900/300, 1250/250
    assert "median of 3 interleaved runs" in report
    html = (tmp_path / "report.html").read_text()
    assert html.index("Headline") < html.index("Results") and "data:image/png;base64," in html
