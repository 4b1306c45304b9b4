"""Logging for the service's long-running processes."""

from __future__ import annotations

import logging


def configure(process: str) -> None:
    """INFO for the service, WARNING for chatty libraries, the process name on every line."""
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {process} %(levelname)s %(name)s: %(message)s")
    for noisy in ("alembic", "rq.worker"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # It warns on every refused non-blocking acquire: routine when several workers meet a drain lock.
    logging.getLogger("redis_lock").setLevel(logging.ERROR)
