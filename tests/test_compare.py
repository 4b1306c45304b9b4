"""Two reports side by side on synthetic results: better, worse, or within the noise of the repeats."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from experiments.reports import compare
from experiments.reports.spread import Spread, spread
from tests.lab_results import make_results, make_run


def test_verdict_by_overlap_of_repeats() -> None:
    a = Spread(100.0, 90.0, 110.0, 3)
    assert compare.verdict(a, Spread(130.0, 120.0, 140.0, 3), higher_is_better=True) == "better"
    assert compare.verdict(a, Spread(130.0, 120.0, 140.0, 3), higher_is_better=False) == "worse"
    assert compare.verdict(a, Spread(115.0, 105.0, 125.0, 3), higher_is_better=True) == "within noise"


def test_verdict_of_single_runs_by_the_noise_floor() -> None:
    one = spread([100.0])
    assert one is not None
    assert compare.verdict(one, Spread(110.0, 110.0, 110.0, 1), True) == "within noise"
    assert compare.verdict(one, Spread(120.0, 120.0, 120.0, 1), True) == "better"


def test_repeats_compare_by_median(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = make_results(*(make_run("lua", 1, tps, tps, repeat=i) for i, tps in enumerate((900.0, 950.0, 1000.0))))
    b = make_results(*(make_run("lua", 1, tps, tps, repeat=i) for i, tps in enumerate((1300.0, 1350.0, 1400.0))))
    rows = {r["figure"]: r for r in compare.compare(a, b)}
    assert rows["TPS"]["verdict"] == "better" and rows["TPS"]["a"].median == 950.0
    assert rows["latency p99 ms"]["verdict"] == "within noise"
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "results.json").write_text(json.dumps(a))
    (tmp_path / "b.json").write_text(json.dumps(b))
    assert compare.main([str(tmp_path / "a"), str(tmp_path / "b.json")]) == 0
    out = capsys.readouterr().out
    assert "| lua ×1 | TPS | 950.0 (900.0–1,000.0) | 1,350.0 (1,300.0–1,400.0) | +42% | better |" in out
