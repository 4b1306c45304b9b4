"""The live page's rates from the first second and its charts, drawn by the page itself (headless Chromium)."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from flask import Flask

from app.extensions import clients
from experiments.engine.live import Live
from tests.test_lab_pages import CHROMIUM, dump_dom


class Rows:
    rows = 12


def worker_file(logs: Path, index: int, started: int, per_second: list[dict[str, int]]) -> None:
    """A worker's live counts as the Locust master writes them: totals, and one entry a whole second."""
    seconds = {
        str(started + i): {"statuses": {k: v for k, v in counts.items()}, "p50_ms": 10.0 + i, "p99_ms": 50.0 + i}
        for i, counts in enumerate(per_second)
    }
    totals: dict[str, int] = {}
    for counts in per_second:
        for k, v in counts.items():
            totals[k] = totals.get(k, 0) + v
    data = {"at": started + len(per_second) + 0.2, "statuses": totals, "p50_ms": 12.0, "p99_ms": 70.0}
    (logs / f"live-{index:02d}.json").write_text(json.dumps(dict(data, seconds=seconds)))


def test_rates_show_from_the_first_second_every_outcome_numbered(app: Flask, tmp_path: Path) -> None:
    with app.app_context(), Live(enabled=False) as live:
        live.begin("lua x1", 999_999, "lua", 30, clients().state_redis, Rows(), tmp_path)
        first = live.state()
        assert {k: first[k] for k in ("rps_won", "rps_already_issued", "rps_sold_out", "rps_other")} == dict.fromkeys(
            ("rps_won", "rps_already_issued", "rps_sold_out", "rps_other"), 0.0
        )
        started = int(time.time()) - 2  # two whole seconds reported by two workers
        worker_file(tmp_path, 0, started, [{"202": 40}, {"202": 30, "410": 5}])
        worker_file(tmp_path, 1, started, [{"202": 20, "0": 1}, {"409": 7, "410": 3}])
        live._run["started"] = started + 0.5  # type: ignore[index]  # the run began mid-second
        state = live.state()
        live.end()
    series = state["series"]
    assert series["rps_t"] == [0.5, 1.5] and series["rps"]["won"] == [60.0, 30.0]
    assert series["rps"]["sold_out"] == [0.0, 8.0] and series["rps"]["other"] == [1.0, 0.0]
    assert (state["rps_won"], state["rps_already_issued"], state["rps_sold_out"]) == (30.0, 7.0, 8.0)
    assert series["p99_ms"] == [50.0, 51.0] and (state["p50_ms"], state["p99_ms"]) == (12.0, 70.0)


@pytest.mark.skipif(CHROMIUM is None, reason="needs chromium (Debian package chromium)")
def test_the_page_draws_its_charts_from_the_first_seconds(app: Flask, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    with app.app_context(), Live() as live:
        assert live.url
        live.begin("lua x1", 999_999, "lua", 30, clients().state_redis, Rows(), logs)
        started = int(time.time()) - 3
        worker_file(logs, 0, started, [{"202": 40}, {"202": 30, "409": 4}, {"410": 90}])
        live._run["started"] = started  # type: ignore[index]
        dom = dump_dom(live.url, tmp_path)
        live.end()
    assert "requests/s by outcome" in dom and "stock left and drain backlog" in dom
    lines = dict(re.findall(r'data-name="([^"]+)"[^>]*points="([^"]*)"', dom))
    assert len(lines["2xx won"].split()) == 3 and len(lines["410 sold out"].split()) == 3, lines
    assert len(lines["p99"].split()) == 3 and not re.search(r'(src|href)="https?://', dom)  # nothing fetched
