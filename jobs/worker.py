"""The RQ worker that runs drain jobs: ``python -m jobs.worker``.

It is a SimpleWorker: jobs run in this process, on its warm database and Redis pools. A drain
job is short and bounded (DRAIN_MAX_RUN_S), and forking a work horse for each one would cost
more than the drain itself. A kill -9 of this process is safe: see jobs.drain.drain.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator

from flask import Flask, current_app, has_app_context
from rq import Queue, SimpleWorker

from app.logs import configure as configure_logging

_app: Flask | None = None


@contextlib.contextmanager
def app_context() -> Iterator[Flask]:
    """The current app if a context is pushed, else this process's app (created once)."""
    global _app
    if has_app_context():
        yield current_app._get_current_object()  # type: ignore[attr-defined]
        return
    if _app is None:
        from app import create_app

        _app = create_app()
    with _app.app_context():
        yield _app


def main(argv: list[str] | None = None) -> None:
    """Run a worker on the drain queue until stopped (or until empty with --burst)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--burst", action="store_true", help="stop once the queue is empty")
    args = parser.parse_args(argv)
    configure_logging("worker")
    with app_context() as app:
        from app.extensions import clients

        broker = clients().broker
        worker = SimpleWorker([Queue(app.config["DRAIN_QUEUE"], connection=broker)], connection=broker)
        worker.work(burst=args.burst, logging_level="WARNING")


if __name__ == "__main__":
    main()
