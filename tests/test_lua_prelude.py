"""lua/prelude.lua, put before every script: its codes are the ones Python reads; its window rule; its clock."""

from __future__ import annotations

import pytest
from flask import Flask

from app.extensions import clients
from strategies import scripts

PRELUDE = (scripts.LUA_DIR / "prelude.lua").read_text()


def run(app: Flask, body: str, *args: int) -> object:
    """Evaluate ``body`` after the prelude on the app's Redis."""
    with app.app_context():
        return clients().state_redis.eval(PRELUDE + body, 0, *args)


def test_every_script_runs_after_the_prelude() -> None:
    for path in sorted(scripts.LUA_DIR.glob("*.lua")):
        if path.stem != scripts.PRELUDE:
            assert scripts.source(path.stem) == PRELUDE + path.read_text()


def test_the_codes_are_the_ones_python_reads(app: Flask) -> None:
    codes = run(app, "return {OK, NOT_FOUND, NOT_STARTED, ENDED, ALREADY_ISSUED, SOLD_OUT}")
    assert codes == [
        scripts.OK,
        scripts.NOT_FOUND,
        scripts.NOT_STARTED,
        scripts.ENDED,
        scripts.ALREADY_ISSUED,
        scripts.SOLD_OUT,
    ]


@pytest.mark.parametrize(
    ("starts_ms", "ends_ms", "at_ms", "verdict"),
    [
        (1000, 0, 999, scripts.NOT_STARTED),
        (1000, 0, 1000, None),  # opens at starts_ms
        (1000, 0, 10**15, None),  # 0: no end
        (1000, 2000, 1999, None),
        (1000, 2000, 2000, scripts.ENDED),  # ends at ends_ms
        (1000, 1000, 1000, scripts.ENDED),  # closed before it opened: ended, not "not started"
    ],
)
def test_the_window_rule(app: Flask, starts_ms: int, ends_ms: int, at_ms: int, verdict: int | None) -> None:
    body = "return window_closed(tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])) or -1"
    assert run(app, body, starts_ms, ends_ms, at_ms) == (-1 if verdict is None else verdict)


def test_the_clock_is_redis_time_in_milliseconds(app: Flask) -> None:
    with app.app_context():
        seconds, micros = clients().state_redis.time()
    before = seconds * 1000 + micros // 1000
    now_ms, now_us = run(app, "return {now_ms(), now_us()}")  # type: ignore[misc]
    with app.app_context():
        seconds, micros = clients().state_redis.time()
    after = seconds * 1000 + micros // 1000
    assert before <= now_ms <= after and now_ms == now_us // 1000
