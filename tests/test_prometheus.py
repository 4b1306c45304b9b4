"""/metrics through gunicorn, scraped by a real Prometheus and read back through its HTTP API."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import requests
from flask import Flask

from support.procs import Proc, free_port, start_gunicorn, wait_for
from tests.conftest import bearer, make_members


def prometheus_binary() -> str:
    """Debian's prometheus; .ci/run installs it."""
    found = shutil.which("prometheus")
    if not found:
        pytest.fail("prometheus is not installed (apt-get install -y prometheus)")
    return found


def start_prometheus(tmp_path: Path, target: str) -> tuple[Proc, str]:
    """A Prometheus of the test's own scraping ``target`` (host:port) every second."""
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"scrape_configs:\n  - job_name: api\n    static_configs: [{{targets: ['{target}']}}]\n"
    )
    port = free_port()
    proc = Proc(
        [
            prometheus_binary(),
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        {},
        tmp_path / "prometheus.log",
    )
    base = f"http://127.0.0.1:{port}"
    wait_for(lambda: _ready(base), 60, "Prometheus to be ready")
    return proc, base


def _ready(base: str) -> bool:
    try:
        return requests.get(f"{base}/-/ready", timeout=1).status_code == 200
    except requests.RequestException:
        return False


def scraped(base: str, query: str) -> dict[str, float]:
    """The query's instant vector as {outcome: value}."""
    found = requests.get(f"{base}/api/v1/query", params={"query": query}, timeout=5).json()["data"]["result"]
    return {r["metric"].get("outcome", ""): float(r["value"][1]) for r in found}


def test_prometheus_reads_downloads_by_outcome(app: Flask, seller, process_env: dict, tmp_path: Path) -> None:
    _, seller_token = seller
    members = make_members(app, 5)
    api, base = start_gunicorn(dict(process_env, ISSUE_STRATEGY="lua"), tmp_path / "api.log", workers=2, threads=4)
    try:
        coupon = requests.post(f"{base}/coupons", json={"name": "m", "quantity": 3}, headers=bearer(seller_token))
        answers = [
            requests.post(f"{base}/coupons/{coupon.json()['id']}/download", headers=bearer(t)).status_code
            for _, t in members
        ]
        assert sorted(answers) == [202, 202, 202, 410, 410]
        text = requests.get(f"{base}/metrics").text
        assert 'coupon_rush_downloads_total{outcome="pending",strategy="lua"} 3.0' in text
        for gauge in ("coupon_rush_drain_pending_winners", "coupon_rush_drain_oldest_pending_seconds"):
            assert gauge in text
        assert 'route="/coupons/<int:coupon_id>/download"' in text  # by route, never the raw path
        drain = requests.get(f"{base}/healthz").json()["drain"]
        assert drain["pending_winners"] == 3 and drain["oldest_pending_age_s"] >= 0  # no drain runs here

        prometheus, prom = start_prometheus(tmp_path, base.removeprefix("http://"))
        try:
            query = "sum by (outcome) (coupon_rush_downloads_total)"
            wait_for(lambda: scraped(prom, query) == {"pending": 3.0, "sold_out": 2.0}, 60, "Prometheus to scrape")
            assert scraped(prom, "coupon_rush_drain_pending_winners") == {"": 3.0}
        finally:
            prometheus.stop()
    finally:
        api.stop()


def test_a_killed_worker_keeps_its_counts(app: Flask, seller, process_env: dict, tmp_path: Path) -> None:
    """Counters live in the multiprocess folder: a worker that dies does not take them along."""
    _, seller_token = seller
    members = make_members(app, 2)
    api, base = start_gunicorn(dict(process_env, ISSUE_STRATEGY="lua"), tmp_path / "api.log", workers=1, threads=2)
    try:
        coupon = requests.post(f"{base}/coupons", json={"name": "k", "quantity": 5}, headers=bearer(seller_token))
        for _, t in members:
            requests.post(f"{base}/coupons/{coupon.json()['id']}/download", headers=bearer(t))
        workers = subprocess.run(["pgrep", "-P", str(api.popen.pid)], capture_output=True, text=True).stdout.split()
        subprocess.run(["kill", "-9", *workers], check=True)
        wait_for(lambda: _served(base), 30, "gunicorn to replace its worker")
        text = requests.get(f"{base}/metrics").text
        assert 'coupon_rush_downloads_total{outcome="pending",strategy="lua"} 2.0' in text
    finally:
        api.stop()


def _served(base: str) -> bool:
    try:
        return requests.get(f"{base}/healthz", timeout=1).status_code == 200
    except requests.RequestException:
        return False
