"""GET /metrics and the drain in /healthz: in-process, then the real processes scraped by a real Prometheus."""

from __future__ import annotations

import shutil
from pathlib import Path

import psutil
import pytest
import requests
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from app import create_app
from app.extensions import clients, db
from jobs.drain import drain
from support.procs import Proc, free_port, start_gunicorn, start_module, wait_answering, wait_for
from tests.helpers import app_config, bearer, make_members

DOWNLOAD_ROUTE = "/coupons/<id:coupon_id>/download"
both = pytest.mark.parametrize("strategy", ["lock", "lua"])


def samples(client: FlaskClient) -> dict[tuple[str, frozenset], float]:
    """GET /metrics parsed: {(sample name, its labels): value}."""
    resp = client.get("/metrics")
    assert resp.status_code == 200 and resp.content_type == "text/plain; version=0.0.4; charset=utf-8"
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(resp.get_data(as_text=True))
        for s in family.samples
    }


def downloads(found: dict[tuple[str, frozenset], float], strategy: str, outcome: str) -> float:
    labels = frozenset({"strategy": strategy, "outcome": outcome}.items())
    return found.get(("coupon_rush_downloads_total", labels), 0.0)


@both
def test_downloads_counted_by_strategy_and_outcome(app: Flask, client: FlaskClient, seller, strategy: str) -> None:
    _, seller_token = seller
    coupon = client.post("/coupons", json={"name": "m", "quantity": 2}, headers=bearer(seller_token)).json
    (_, t1), (_, t2), (_, t3) = make_members(app, 3)
    url = f"/coupons/{coupon['id']}/download"
    won = "issued" if strategy == "lock" else "pending"
    outcomes = (won, "already_issued", "sold_out", "ended")
    before = samples(client)  # the counters are the process's: count what this test adds

    for token in (t1, t1, t2, t3):
        client.post(url, headers=bearer(token))
    assert client.post(f"/coupons/{coupon['id']}/close", headers=bearer(seller_token)).status_code == 200
    assert client.post(url, headers=bearer(t3)).json["error"] == "ended"

    after = samples(client)
    added = {o: downloads(after, strategy, o) - downloads(before, strategy, o) for o in outcomes}
    assert added == {won: 2, "already_issued": 1, "sold_out": 1, "ended": 1}
    # Durations by route (the url rule), never by the raw path.
    count = ("coupon_rush_request_duration_seconds_count", frozenset({"route": DOWNLOAD_ROUTE}.items()))
    assert after[count] - before.get(count, 0.0) == 5
    assert not [labels for _, labels in after if ("route", url) in labels]


def test_a_503_download_counts_as_unavailable(app: Flask, services) -> None:
    ((_, token),) = make_members(app, 1)
    dead = create_app(app_config(services, "lua", REDIS_URL=f"redis://127.0.0.1:{free_port()}/0"))
    labels = {"strategy": "lua", "outcome": "unavailable"}
    before = REGISTRY.get_sample_value("coupon_rush_downloads_total", labels) or 0.0
    try:
        assert dead.test_client().post("/coupons/1/download", headers=bearer(token)).status_code == 503
        assert REGISTRY.get_sample_value("coupon_rush_downloads_total", labels) == before + 1
    finally:
        with dead.app_context():
            db.engine.dispose()


def test_healthz_reports_a_stalled_drain_and_stays_200(app: Flask, client: FlaskClient, seller) -> None:
    _, seller_token = seller
    assert client.get("/healthz").json["drain"] == {
        "scheduler_heartbeat_age_s": None,
        "oldest_pending_age_s": None,
        "pending_winners": 0,
    }
    coupon = client.post("/coupons", json={"name": "m", "quantity": 5}, headers=bearer(seller_token)).json
    for _, token in make_members(app, 3):
        assert client.post(f"/coupons/{coupon['id']}/download", headers=bearer(token)).status_code == 202

    resp = client.get("/healthz")  # no scheduler, no worker: the winners wait, downloads still serve
    assert resp.status_code == 200
    status = resp.json["drain"]
    assert status["pending_winners"] == 3 and status["scheduler_heartbeat_age_s"] is None
    assert 0 <= status["oldest_pending_age_s"] < 60
    assert "coupons_missing_state" in resp.json
    found = samples(client)
    assert found[("coupon_rush_drain_pending_winners", frozenset())] == 3
    # Scraped after /healthz: the same winner has waited at least as long since.
    assert status["oldest_pending_age_s"] <= found[("coupon_rush_drain_oldest_pending_seconds", frozenset())] < 60


def test_drain_rows_are_counted_once_each(app: Flask, client: FlaskClient, seller) -> None:
    """A batch committed by a drain killed before removing it is counted by the drain that removes it, once."""
    _, seller_token = seller
    coupon = client.post("/coupons", json={"name": "m", "quantity": 5}, headers=bearer(seller_token)).json
    members = make_members(app, 3)
    for _, token in members:
        client.post(f"/coupons/{coupon['id']}/download", headers=bearer(token))
    rows = ("coupon_rush_drain_rows_total", frozenset())
    before = samples(client).get(rows, 0.0)
    with app.app_context():
        # As if a drain had committed the first winner's row and died before taking it off the queue.
        insert = "INSERT INTO member_coupon (member_id, coupon_id, issued_at) VALUES (:m, :c, CURRENT_TIMESTAMP)"
        db.session.execute(sa.text(insert), {"m": members[0][0], "c": coupon["id"]})
        db.session.commit()
        assert drain(clients().state_redis, db.engine, coupon["id"], 2, 5, 10) == 3
        assert drain(clients().state_redis, db.engine, coupon["id"], 2, 5, 10) == 0
    after = samples(client)
    assert after[rows] - before == 3
    assert after[("coupon_rush_drain_failed_jobs", frozenset())] == 0


def start_prometheus(tmp_path: Path, target: str) -> tuple[Proc, str]:
    """Debian's prometheus on a free loopback port, its own storage, scraping ``target`` every second."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus is not installed (Debian: apt-get install -y prometheus)")
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"scrape_configs: [{{job_name: api, static_configs: [{{targets: ['{target}']}}]}}]\n"
    )
    port = free_port()
    args = [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}"]
    proc = Proc([*args, f"--web.listen-address=127.0.0.1:{port}"], {}, tmp_path / "prometheus.log")
    base = f"http://127.0.0.1:{port}"
    wait_answering(proc, f"{base}/-/ready", 60, "prometheus")
    return proc, base


def query(base: str, promql: str) -> list[tuple[dict[str, str], float]]:
    """An instant query through Prometheus's HTTP API: (labels, value) each."""
    body = requests.get(f"{base}/api/v1/query", params={"query": promql}, timeout=5).json()
    assert body["status"] == "success", body
    return [(r["metric"], float(r["value"][1])) for r in body["data"]["result"]]


def test_a_real_prometheus_reads_the_drop(app: Flask, seller, process_env: dict, tmp_path: Path) -> None:
    """gunicorn (2 workers), worker and scheduler scraped by Prometheus; the operator's queries answer."""
    _, seller_token = seller
    members = make_members(app, 6)
    env = dict(process_env, ISSUE_STRATEGY="lua")
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # gunicorn.conf.py's own temporary folder
    procs: list[Proc] = []
    try:
        api, base = start_gunicorn(env, tmp_path / "api.log", workers=2, threads=4)
        procs.append(api)
        procs += [start_module(m, env, tmp_path / f"{m}.log") for m in ("jobs.worker", "jobs.scheduler")]
        coupon = requests.post(f"{base}/coupons", json={"name": "m", "quantity": 4}, headers=bearer(seller_token))
        url = f"{base}/coupons/{coupon.json()['id']}/download"
        answers = [requests.post(url, headers=bearer(token), timeout=10).status_code for _, token in members]
        answers.append(requests.post(url, headers=bearer(members[0][1]), timeout=10).status_code)
        assert sorted(answers) == [202] * 4 + [409] + [410] * 2
        prometheus, prom = start_prometheus(tmp_path, base.removeprefix("http://"))
        procs.append(prometheus)

        def counted() -> bool:  # both workers' counters, summed by the app, scraped by Prometheus
            found = query(prom, "sum by (outcome) (coupon_rush_downloads_total)")
            return {m["outcome"]: v for m, v in found} == {"pending": 4, "already_issued": 1, "sold_out": 2}

        wait_for(counted, 60, "Prometheus to scrape the download counts", every_s=0.5)
        drained = "coupon_rush_drain_rows_total == 4 and on() coupon_rush_drain_pending_winners == 0"
        wait_for(lambda: query(prom, drained), 60, "the drain's rows through Prometheus", every_s=0.5)
        assert query(prom, "time() - coupon_rush_scheduler_last_tick_timestamp_seconds")[0][1] < 30
        # The queries docs/operations.md gives operators answer (rate needs two scrapes of the series).
        tps = "sum by (outcome) (rate(coupon_rush_downloads_total[1m]))"
        wait_for(lambda: len(query(prom, tps)) == 3, 60, "a rate by outcome", every_s=0.5)
        p99 = "histogram_quantile(0.99, sum by (le, route) (rate(coupon_rush_request_duration_seconds_bucket[1m])))"
        assert DOWNLOAD_ROUTE in {m["route"] for m, _ in query(prom, p99)}
        health = requests.get(f"{base}/healthz", timeout=5).json()["drain"]
        assert health["pending_winners"] == 0 and health["oldest_pending_age_s"] is None
        assert 0 <= health["scheduler_heartbeat_age_s"] < 30
    finally:
        for proc in reversed(procs):
            proc.stop()


def test_a_killed_worker_keeps_its_counts(app: Flask, seller, process_env: dict, tmp_path: Path) -> None:
    """Counters live in the multiprocess folder: a gunicorn worker killed with -9 does not take them along."""
    _, seller_token = seller
    members = make_members(app, 2)
    api, base = start_gunicorn(dict(process_env, ISSUE_STRATEGY="lua"), tmp_path / "api.log", workers=1, threads=2)
    try:
        coupon = requests.post(f"{base}/coupons", json={"name": "k", "quantity": 5}, headers=bearer(seller_token))
        for _, t in members:
            requests.post(f"{base}/coupons/{coupon.json()['id']}/download", headers=bearer(t))
        for worker in psutil.Process(api.popen.pid).children():
            worker.kill()
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
