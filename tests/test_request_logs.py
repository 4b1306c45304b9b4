"""X-Request-ID on every answer and in every log line of its request; LOG_FORMAT=json in every process."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

from app import create_app
from app.config import ConfigError
from app.extensions import db
from app.logs import RequestIdFilter
from support.procs import free_port, start_gunicorn, start_module, wait_for
from tests.conftest import app_config, bearer, make_members


def json_lines(path: Path) -> list[dict]:
    """Every line of ``path`` parsed as JSON (a line that is not fails the test)."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_request_ids_in_answers_and_logs(process_env: dict, tmp_path: Path) -> None:
    access = tmp_path / "access.log"
    env = dict(process_env, LOG_FORMAT="json", ACCESS_LOG=str(access))
    api, base = start_gunicorn(env, tmp_path / "api.log", workers=1, threads=2)
    try:
        kept = requests.get(f"{base}/healthz", headers={"X-Request-ID": "client-id.42"})
        made = requests.get(f"{base}/no/such/path")
        bad = requests.get(f"{base}/healthz", headers={"X-Request-ID": "x" * 500})
        injected = requests.get(f"{base}/healthz", headers={"X-Request-ID": "a b"})
        assert kept.headers["X-Request-ID"] == "client-id.42"
        assert made.status_code == 404 and len(made.headers["X-Request-ID"]) == 32
        assert len(bad.headers["X-Request-ID"]) == 32 and injected.headers["X-Request-ID"] != "a b"
        wait_for(lambda: access.exists() and len(access.read_text().splitlines()) >= 4, 10, "the access log")
        lines = [entry["message"] for entry in json_lines(access)]
        for answer in (kept, made, bad):
            assert any(line.endswith(answer.headers["X-Request-ID"]) for line in lines), lines
    finally:
        api.stop()
    assert all(isinstance(entry, dict) for entry in json_lines(tmp_path / "api.log"))


def test_a_log_line_written_during_a_request_carries_its_id(services, migrated) -> None:
    """The outage handler logs a warning while it answers 503: that line names the request."""
    app = create_app(app_config(services, "lua", REDIS_URL=f"redis://127.0.0.1:{free_port()}/0"))
    ((member_id, token),) = make_members(app, 1, prefix="logged")
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    handler.addFilter(RequestIdFilter())
    logging.getLogger("app.errors").addHandler(handler)
    try:
        answer = app.test_client().post("/coupons/1/download", headers={**bearer(token), "X-Request-ID": "outage-42"})
    finally:
        logging.getLogger("app.errors").removeHandler(handler)
        with app.app_context():
            db.session.execute(sa.text("DELETE FROM member WHERE id = :id"), {"id": member_id})
            db.session.commit()
            db.engine.dispose()
    assert answer.status_code == 503 and answer.headers["X-Request-ID"] == "outage-42"
    logged = [r for r in records if "answering 503" in r.getMessage()]
    assert [r.request_id for r in logged] == ["outage-42"], records  # type: ignore[attr-defined]


def test_scheduler_logs_json_lines(process_env: dict, tmp_path: Path) -> None:
    log = tmp_path / "scheduler.log"
    scheduler = start_module("jobs.scheduler", dict(process_env, LOG_FORMAT="json"), log)
    try:
        wait_for(lambda: "scheduling drains" in log.read_text(), 30, "the scheduler to start")
    finally:
        scheduler.stop()
    entries = json_lines(log)
    assert entries and all({"time", "level", "logger", "message", "process"} <= set(e) for e in entries)
    assert {e["process"] for e in entries} == {"scheduler"}


def test_unknown_log_format_stops_the_app(services) -> None:
    with pytest.raises(ConfigError, match="LOG_FORMAT must be one of text, json; got 'xml'"):
        create_app(app_config(services, LOG_FORMAT="xml"))
