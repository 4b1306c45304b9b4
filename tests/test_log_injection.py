"""Text logs: one line a record whoever wrote it, control characters escaped; a username cannot forge a line."""

from __future__ import annotations

import io
import logging
import logging.config
from pathlib import Path

import requests
from flask import Flask

from app import logs
from support.procs import start_gunicorn

FORGED = "2026-01-01 00:00:00,000 api ERROR x [-]: forged"  # fits a username (64)


def test_a_username_with_a_newline_writes_no_line_of_its_own(
    app: Flask, process_env: dict[str, str], tmp_path: Path
) -> None:
    """The limiter logs the key it refused, and the key holds the name: the text log escapes it."""
    env = dict(process_env, LOG_FORMAT="text", LOGIN_FAILURES_PER_USERNAME="1 per minute")
    proc, base = start_gunicorn(env, tmp_path / "gunicorn.log", workers=1, threads=4)
    try:
        body = {"username": f"x\n{FORGED}\r\u2028\x1b[2J", "password": "wrong"}
        statuses = [requests.post(f"{base}/auth/login", json=body, timeout=10).status_code for _ in range(2)]
    finally:
        proc.stop()
    assert statuses == [401, 429]
    output = proc.output()
    assert "exceeded" in output  # the limiter's own line, with the key
    lines = output.splitlines()
    assert not [line for line in lines if line.startswith(FORGED.casefold()[:20]) or line.startswith(FORGED[:20])]
    assert "\x1b" not in output and "\u2028" not in output
    refused = next(line for line in lines if "exceeded" in line)
    assert "x\\n" + FORGED.casefold() + "\\r\\u2028\\x1b[2j" in refused, refused


def test_every_field_is_escaped_tracebacks_included() -> None:
    stream = io.StringIO()
    config = logs.config("api", log_format="text")
    config["handlers"]["stderr"]["stream"] = stream
    logging.config.dictConfig(config)
    try:
        log = logging.getLogger("evil\nname")
        log.warning("message %s", "arg\nwith\x00nul\x7f\x85")
        try:
            raise ValueError(f"bad\n{FORGED}")
        except ValueError:
            log.exception("failed\r")
    finally:
        logging.config.dictConfig(logs.config("api"))
    written = stream.getvalue().splitlines()
    assert len(written) == 2, written  # one line a record
    assert written[0].endswith("evil\\nname [-]: message arg\\nwith\\x00nul\\x7f\\x85")
    assert "failed\\r\\nTraceback (most recent call last):\\n" in written[1]
    assert f"ValueError: bad\\n{FORGED}" in written[1]
