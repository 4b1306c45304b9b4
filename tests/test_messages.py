"""What a person reads: each command's result said once, plainly, and its exit status telling the truth."""

from __future__ import annotations

import subprocess
import sys

import jwt as pyjwt
import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import embedded
from app.extensions import clients
from tests.conftest import pytest_report_header
from tests.helpers import ROOT, assert_error, bearer


def test_rebuild_state_of_a_coupon_that_does_not_exist_fails(app: Flask) -> None:
    """``rebuild-state 999``: no such coupon is an error (exit 1) that names it, not a quiet success."""
    result = app.test_cli_runner().invoke(args=["rebuild-state", "999"])
    assert result.exit_code == 1, result.output
    assert "no such coupon: 999" in result.output


def test_each_rebuild_is_reported_once(app: Flask, client: FlaskClient, seller, process_env: dict[str, str]) -> None:
    """The real command, its stdout and stderr together: one line per coupon rebuilt, none per coupon left alone."""
    _, token = seller
    lost = client.post("/coupons", json={"name": "lost", "quantity": 3}, headers=bearer(token)).json["id"]
    kept = client.post("/coupons", json={"name": "kept", "quantity": 3}, headers=bearer(token)).json["id"]
    with app.app_context():
        clients().state_redis.flushdb()  # Redis lost both coupons' state
    assert app.test_cli_runner().invoke(args=["rebuild-state", str(kept)]).exit_code == 0
    done = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "rebuild-state", str(lost), str(kept)],
        cwd=ROOT,
        env=process_env,
        capture_output=True,
        text=True,
    )
    said = done.stdout + done.stderr
    assert done.returncode == 0, said
    assert said.count(f"coupon {lost}") == 1 and f"coupon {lost}: rebuilt" in said, said
    assert said.count(f"coupon {kept}") == 1 and f"coupon {kept}: left as it was" in said, said


@pytest.mark.parametrize("token", ["aaaa.bbbb.cccc", "_w.e30.c2ln", "not-a-token", "e30.////.c2ln"])
def test_a_garbage_token_is_called_malformed_in_plain_words(client: FlaskClient, token: str) -> None:
    """No Python codec or padding error reaches the person who sent it."""
    answer = client.get("/members/me/coupons", headers=bearer(token))
    assert_error(answer, 401, "unauthorized")
    message = answer.json["message"]
    assert "codec" not in message and "byte" not in message and "padding" not in message, message
    assert "malformed" in message


def test_a_forged_token_is_still_called_forged(client: FlaskClient) -> None:
    """Only undecodable tokens are called malformed: a well-formed token with a wrong signature says so."""
    forged = pyjwt.encode({"sub": "1", "exp": 4_000_000_000}, "another-secret-of-at-least-32-bytes!!", "HS256")
    answer = client.get("/members/me/coupons", headers=bearer(forged))
    assert_error(answer, 401, "unauthorized")
    assert "Signature verification failed" in answer.json["message"]


def test_embedded_help_is_plain_text(capsys: pytest.CaptureFixture[str]) -> None:
    """``python -m app.embedded --help`` shows no reST markup."""
    with pytest.raises(SystemExit) as exited:
        embedded.main(["--help"])
    assert exited.value.code == 0
    shown = capsys.readouterr().out
    assert "``" not in shown and "start,stop,status" in shown


def test_the_run_says_which_services_it_uses(monkeypatch: pytest.MonkeyPatch, pytestconfig: pytest.Config) -> None:
    """The header line ``make test`` prints first: the services it tries, and what it does if they do not answer."""
    monkeypatch.setenv("TEST_DATABASE_URL", "mysql+pymysql://app:secret@127.0.0.1:1/none")
    monkeypatch.setenv("TEST_REDIS_URL", "redis://127.0.0.1:1/0")
    monkeypatch.delenv("COUPON_RUSH_REQUIRE_SERVICES", raising=False)
    line = pytest_report_header(pytestconfig)
    assert "127.0.0.1:1/none" in line and "redis://127.0.0.1:1/0" in line and "secret" not in line, line
    assert line.endswith("if they do not answer: embedded SQLite and Redis"), line
    monkeypatch.setenv("COUPON_RUSH_REQUIRE_SERVICES", "1")
    assert pytest_report_header(pytestconfig).endswith("if they do not answer: the run stops")
