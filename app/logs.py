"""Logging for the service's long-running processes."""

from __future__ import annotations

import logging


def configure(process: str) -> None:
    """INFO for the service, WARNING for chatty libraries, the process name on every line."""
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {process} %(levelname)s %(name)s: %(message)s")
    for noisy in ("alembic", "redis_lock", "rq.worker"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
