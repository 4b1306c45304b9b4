"""The lab's pages in a real browser (headless Chromium): the report and the live view render, error-free."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from app.extensions import clients
from experiments.engine.live import Live
from experiments.reports.report import render
from tests.lab_results import costs, make_results, make_run

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs chromium (Debian package chromium)")


def dump_dom(url: str, tmp_path: Path) -> str:
    """The page's DOM after its scripts ran; fails on any console error."""
    done = subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=4000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    errors = [
        line for line in done.stderr.splitlines() if re.search(r'Uncaught|ERROR:CONSOLE|CONSOLE:\d+\] "Failed', line)
    ]
    assert not errors, errors
    return done.stdout


def test_the_report_page_renders_its_headline(tmp_path: Path) -> None:
    results: dict[str, Any] = make_results(
        make_run("lock", 1, 200.0, 100.0, costs=costs(1000.0, 100.0, hold_ms=4.0), api_cpu_us_per_request=1000.0),
        make_run("lua", 1, 900.0, 400.0, costs=costs(900.0, 50.0), api_cpu_us_per_request=900.0),
        make_run("read", 1, 1000.0, None),
    )
    render(results, tmp_path / "run")
    dom = dump_dom((tmp_path / "run" / "report.html").as_uri(), tmp_path)
    assert "<h2>Headline</h2>" in dom and "lua/lock 4.50x overall" in dom
    order = ("<h2>Headline</h2>", "<h2>What was measured</h2>", "<h2>Results</h2>", "<h2>The capacity model</h2>")
    assert [dom.index(h) for h in order] == sorted(dom.index(h) for h in order) and dom.index(order[-1]) < dom.index(
        "<h2>Audit</h2>"
    )
    assert "2 API servers × 2 vCPU" in dom and "597.7" in dom
    assert dom.count('src="data:image/png;base64,') == 2 and "http://" not in dom and "https://" not in dom


def test_the_live_page_shows_the_run_under_way(app: Flask, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "live-00.json").write_text('{"at": 0, "statuses": {"202": 30, "410": 70}, "p50_ms": 12.5, "p99_ms": 80}')

    class Rows:
        rows = 30

    with app.app_context(), Live() as live:
        assert live.url and live.url.startswith("http://127.0.0.1:")
        live.begin("lua x1", 999_999, "lua", 30, clients().state_redis, Rows(), logs)
        dom = dump_dom(live.url, tmp_path)
        live.end()
    assert "run: lua x1" in dom and "requests/s 410 sold out" in dom
    assert re.search(r"latency p99 ms</th><td>80</td>", dom) and re.search(r"rows persisted</th><td>30</td>", dom)
