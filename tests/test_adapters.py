"""The workarounds of app/adapters.py against the installed libraries: each fails when its library changes under it."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from rq import Queue, SimpleWorker
from rq.exceptions import StopRequested

from app.adapters import move_limiter_hooks, stop_requested
from app.extensions import clients


def owner(hook: Any) -> str:
    """The module a hook's code lives in, however it is wrapped (function, bound method, partial, functools.wraps)."""
    func = getattr(hook, "__wrapped__", hook)
    func = getattr(func, "func", func)
    func = getattr(func, "__func__", func)
    return str(getattr(func, "__module__", ""))


def limiter_hooks(hooks: dict[Any, list[Any]], scope: str | None) -> list[Any]:
    return [h for h in hooks.get(scope, []) if owner(h).startswith("flask_limiter")]


@pytest.fixture
def signals() -> Iterator[None]:
    """RQ's stop request installs its own handlers: put the test runner's back."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def test_a_worker_asked_to_stop_is_told_from_one_that_quit(app: Flask, signals: None) -> None:
    with app.app_context():
        broker = clients().broker
        worker = SimpleWorker([Queue("adapters", connection=broker)], connection=broker)
        worker.work(burst=True)  # an empty queue: work() returns, unasked
        assert not stop_requested(worker)
        with pytest.raises(StopRequested):
            worker.request_stop(signal.SIGTERM, None)  # what RQ's SIGTERM handler calls
        assert stop_requested(worker)


def test_no_limiter_hook_runs_outside_the_auth_blueprint(app: Flask) -> None:
    """Found by where their code lives, not by the adapter's own test: a new kind of hook would show."""
    assert not limiter_hooks(app.before_request_funcs, None)
    assert not limiter_hooks(app.after_request_funcs, None)
    assert not limiter_hooks(app.teardown_request_funcs, None)
    # The hooks that count failed logins and free the limiter's context follow the auth blueprint.
    assert limiter_hooks(app.after_request_funcs, "auth") and limiter_hooks(app.teardown_request_funcs, "auth")


def test_the_adapter_recognises_every_hook_the_library_registers() -> None:
    app = Flask(__name__)
    app.config["RATELIMIT_STORAGE_URI"] = "memory://"
    limiter = Limiter(key_func=get_remote_address)
    limiter.init_app(app)
    registered = sum(
        len(limiter_hooks(h, None))
        for h in (app.before_request_funcs, app.after_request_funcs, app.teardown_request_funcs)
    )
    assert registered == 3  # before, after, teardown: what Flask-Limiter 4 registers
    assert move_limiter_hooks(app, limiter, "auth") == registered
    assert not limiter_hooks(app.before_request_funcs, None) and not limiter_hooks(app.before_request_funcs, "auth")
