"""The app a job or a background process runs in: the current one, else this process's own."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from flask import Flask, current_app, has_app_context

_app: Flask | None = None


@contextlib.contextmanager
def app_context() -> Iterator[Flask]:
    """The current app if a context is pushed (tests), else this process's app (created once)."""
    global _app
    if has_app_context():
        yield current_app._get_current_object()  # type: ignore[attr-defined]
        return
    if _app is None:
        from app import create_app

        _app = create_app()
    with _app.app_context():
        yield _app
