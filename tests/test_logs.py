"""Request ids on answers of every kind and on the lines their requests log; JSON lines from every process."""

from __future__ import annotations

import io
import json
import logging
import logging.config
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from app import logs
from app.extensions import clients, db
from app.models import MemberCoupon
from support.procs import ROOT, start_gunicorn, start_module, wait_for
from tests.helpers import bearer, make_members, new_coupon

GENERATED_ID = re.compile("[0-9a-f]{32}")  # an id the app makes up: a uuid4's hex digits


def json_lines(path: Path) -> list[dict]:
    """Every line of ``path`` parsed as a JSON object (a line that is not fails the test)."""
    entries = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    assert all(isinstance(entry, dict) for entry in entries)
    return entries


def coupon_and_member(app: Flask) -> tuple[int, str]:
    """A coupon registered by a new seller through the API; its id and a member's token."""
    (_, seller), (_, member) = make_members(app, 1, "seller", "s") + make_members(app, 1, "member", "m")
    return new_coupon(app, seller, name="logged")["id"], member


@contextmanager
def captured(log_format: str) -> Iterator[io.StringIO]:
    """Lines the app's loggers write meanwhile, through a handler set up as ``logs.config`` sets up its own."""
    settings = logs.config("api", log_format)
    handler = logging.StreamHandler(io.StringIO())
    handler.setFormatter(logging.config.DictConfigurator(settings).configure_formatter(settings["formatters"]["line"]))
    handler.addFilter(logs.RequestIdFilter())
    logging.getLogger("app").addHandler(handler)
    try:
        yield handler.stream
    finally:
        logging.getLogger("app").removeHandler(handler)


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("client-id.42", True),
        ("A" * 128, True),
        ("a_b-C.9", True),
        ("A" * 129, False),
        ("x" * 500, False),
        ("", False),
        ("abc\nforged log line", False),
        ('a" 200 "forged', False),
        ("caf\xe9", False),
    ],
)
def test_a_client_id_is_kept_only_when_sane(client: FlaskClient, sent: str, kept: bool) -> None:
    """Sent raw through the WSGI environ, as a server would pass it: whatever bytes a client chose."""
    answer = client.get("/healthz", environ_overrides={"HTTP_X_REQUEST_ID": sent})
    given = answer.headers["X-Request-ID"]
    if kept:
        assert given == sent
    else:
        assert GENERATED_ID.fullmatch(given), given


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_an_unexpected_error_answers_and_logs_with_its_id(app: Flask, log_format: str) -> None:
    def broken() -> None:
        raise RuntimeError("deliberately broken")

    app.add_url_rule("/broken", view_func=broken)
    with captured(log_format) as out:
        answer = app.test_client().get("/broken", headers={"X-Request-ID": "broken-1"})
    assert answer.status_code == 500 and answer.json["error"] == "internal_error"
    assert answer.headers["X-Request-ID"] == "broken-1"
    if log_format == "json":
        (entry,) = [json.loads(line) for line in out.getvalue().splitlines() if line.startswith("{")]
        assert entry["request_id"] == "broken-1" and entry["process"] == "api"
        assert (entry["level"], entry["logger"], entry["message"]) == ("ERROR", "app.errors", "unexpected error")
        assert "RuntimeError: deliberately broken" in entry["exc_info"] and entry["time"]
    else:
        first = out.getvalue().splitlines()[0]
        assert " api ERROR app.errors [broken-1]: unexpected error" in first
        assert "RuntimeError: deliberately broken" in out.getvalue()


def test_every_answer_and_its_log_lines_carry_the_request_id_through_gunicorn(
    app: Flask, process_env: dict, tmp_path: Path
) -> None:
    """A 503 whose request logs twice, a 404, a 405, a forged id: each id in its header, access line and log lines."""
    coupon_id, member = coupon_and_member(app)
    with app.app_context():
        clients().state_redis.flushdb()  # the row stays: its downloads and reads are an outage, logged
    access = tmp_path / "access.log"
    env = dict(process_env, LOG_FORMAT="json", ACCESS_LOG=str(access))
    api, base = start_gunicorn(env, tmp_path / "api.log", workers=1, threads=2)
    try:
        lost = requests.get(f"{base}/coupons/{coupon_id}", headers={**bearer(member), "X-Request-ID": "lost-state.7"})
        missing = requests.get(f"{base}/no/such/path", headers={"X-Request-ID": "missing-1"})
        wrong_method = requests.post(f"{base}/healthz")
        forged = requests.get(f"{base}/healthz", headers={"X-Request-ID": 'a" 200 "forged'})
        answers = (lost, missing, wrong_method, forged)
        ids = [answer.headers["X-Request-ID"] for answer in answers]
        assert [answer.status_code for answer in answers] == [503, 404, 405, 200]
        assert ids[:2] == ["lost-state.7", "missing-1"]
        assert GENERATED_ID.fullmatch(ids[2]) and GENERATED_ID.fullmatch(ids[3]) and ids[2] != ids[3]

        def logged() -> list[dict]:
            lines = json_lines(access) if access.exists() else []
            return lines if {line["request_id"] for line in lines} >= set(ids) else []

        entries = wait_for(logged, 10, "an access line for each answer")
    finally:
        api.stop()
    for answer in answers:
        request_id = answer.headers["X-Request-ID"]
        (line,) = [e for e in entries if e["request_id"] == request_id]  # type: ignore[attr-defined]
        assert line["logger"] == "gunicorn.access" and line["process"] == "api"
        assert line["message"].endswith(f" {request_id}") and f'" {answer.status_code} ' in line["message"]
    api_lines = json_lines(tmp_path / "api.log")
    during = [e for e in api_lines if e["request_id"] == "lost-state.7"]
    assert [(e["level"], e["logger"]) for e in during] == [("ERROR", "app.issuance"), ("WARNING", "app.errors")]
    assert all(e["process"] == "api" and e["logger"] != "gunicorn.access" for e in api_lines)


def test_the_worker_and_the_scheduler_write_json_lines(app: Flask, process_env: dict, tmp_path: Path) -> None:
    """A real drain, so the worker has something to say: every line of both outputs is one JSON object."""
    coupon_id, member = coupon_and_member(app)
    assert app.test_client().post(f"/coupons/{coupon_id}/download", headers=bearer(member)).status_code == 202
    env = dict(process_env, LOG_FORMAT="json")
    worker = start_module("jobs.worker", env, tmp_path / "worker.log")
    scheduler = start_module("jobs.scheduler", env, tmp_path / "scheduler.log")

    def persisted() -> int:
        with app.app_context():
            count = db.session.scalar(sa.select(sa.func.count()).where(MemberCoupon.coupon_id == coupon_id))
            db.session.rollback()
            return count or 0

    try:
        wait_for(persisted, 30, "the winner's row")
        wait_for(lambda: "drained" in worker.output(), 10, "the worker's drain line")
    finally:
        scheduler.stop()
        worker.stop()
    for name in ("worker", "scheduler"):
        entries = json_lines(tmp_path / f"{name}.log")
        assert entries and all(e["process"] == name and e["request_id"] == "-" for e in entries)
        assert all({"time", "level", "logger", "message"} <= set(e) for e in entries)
    assert any(e["logger"] == "jobs.drain" for e in json_lines(tmp_path / "worker.log"))


def test_an_unknown_log_format_stops_a_process_at_start(process_env: dict) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "jobs.scheduler"],
        cwd=ROOT,
        env=dict(process_env, LOG_FORMAT="xml"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "LOG_FORMAT must be one of text, json; got 'xml'" in done.stderr
