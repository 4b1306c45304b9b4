"""The service's real processes: gunicorn, the RQ worker, the scheduler; ports, polling, stopping them all."""

from __future__ import annotations

import os
import runpy
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Protocol, TypeVar

import requests

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(condition: Callable[[], object], timeout_s: float, what: str, every_s: float = 0.05) -> object:
    """Poll ``condition`` until it returns something truthy; fail with ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(every_s)


class Proc:
    """A child process in its own session, so a kill reaches all of it."""

    def __init__(self, args: list[str], env: Mapping[str, str], log: Path) -> None:
        self.log = log
        self._out = open(log, "ab")
        self.popen = subprocess.Popen(
            args, cwd=ROOT, env=dict(env), stdout=self._out, stderr=subprocess.STDOUT, start_new_session=True
        )

    def kill9(self) -> None:
        """SIGKILL the whole process group: a crash, no cleanup."""
        self._signal(signal.SIGKILL)
        self.popen.wait(10)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it lingers."""
        if self.popen.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.kill9()
        self._out.close()

    def _signal(self, sig: int) -> None:
        try:
            os.killpg(self.popen.pid, sig)
        except ProcessLookupError:
            pass

    def output(self) -> str:
        """What the process printed so far."""
        return self.log.read_text(errors="replace")


def gunicorn_settings(env: Mapping[str, str]) -> dict[str, object]:
    """What gunicorn.conf.py resolves to under ``env``: the one source of the server's defaults."""
    saved = dict(os.environ)
    try:
        os.environ.update(env)
        return runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    finally:
        os.environ.clear()
        os.environ.update(saved)


def start_gunicorn(
    env: Mapping[str, str],
    log: Path,
    workers: int | None = 2,
    threads: int | None = 16,
    prefix: Sequence[str] = (),
    host: str = "127.0.0.1",
) -> tuple[Proc, str]:
    """gunicorn with the production config on a free port (None: its defaults); returns once /healthz is 200.

    ``prefix`` runs it under another command, e.g. ``["faketime", "-f", "-300s"]`` for a skewed clock.
    ``host``: the address it listens on (0.0.0.0: every one); the URL returned is loopback's either way.
    """
    port = free_port()
    run_env = dict(env, PORT=str(port), HOST=host)
    run_env.update({k: str(v) for k, v in (("WEB_WORKERS", workers), ("WEB_THREADS", threads)) if v is not None})
    proc = Proc([*prefix, sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"], run_env, log)
    base = f"http://127.0.0.1:{port}"
    wait_answering(proc, f"{base}/healthz", 30, "gunicorn")
    return proc, base


# Above any rush the lab makes (1,600 clients connecting at once). At granian's default of 1,024 the
# kernel drops the SYNs that overflow the accept queue and the clients retry them 1, 3, 7, 15 s later:
# requests waiting 30 s while the others are served in milliseconds.
GRANIAN_BACKLOG = 4096


def start_granian(env: Mapping[str, str], log: Path) -> tuple[Proc, str]:
    """The API under granian, the server the lab compares with gunicorn; returns once /healthz is 200.

    Its processes and threads are gunicorn.conf.py's under ``env`` (WEB_WORKERS workers, WEB_THREADS
    blocking threads each), so the two servers run the same layout. Only the lab starts it: the
    service's own processes (Procfile, Dockerfile) run gunicorn, whose hooks set up logging and metrics.
    """
    layout = gunicorn_settings(env)
    port = free_port()
    metrics = log.parent / f"metrics-{port}"  # prometheus-client's multiprocess folder (gunicorn's on_starting)
    metrics.mkdir(parents=True)
    args = [
        *(sys.executable, "-m", "granian", "--interface", "wsgi", "--host", "127.0.0.1", "--port", str(port)),
        *("--workers", str(layout["workers"]), "--blocking-threads", str(layout["threads"])),
        *("--backlog", str(GRANIAN_BACKLOG), "--no-access-log", "wsgi:app"),
    ]
    proc = Proc(args, dict(env, PROMETHEUS_MULTIPROC_DIR=str(metrics)), log)
    base = f"http://127.0.0.1:{port}"
    wait_answering(proc, f"{base}/healthz", 30, "granian")
    return proc, base


def wait_answering(proc: Proc, url: str, timeout_s: float, name: str) -> None:
    """Poll ``url`` until it answers 200; stop ``proc`` and fail if it exits or never does."""

    def answering() -> bool:
        if proc.popen.poll() is not None:
            raise AssertionError(f"{name} exited with {proc.popen.returncode}:\n{proc.output()[-3000:]}")
        try:
            return requests.get(url, timeout=1).status_code == 200
        except requests.RequestException:  # refused, or accepted but not yet served
            return False

    try:
        wait_for(answering, timeout_s, f"{name} to answer {url}")
    except BaseException:
        proc.stop()
        raise


def start_module(module: str, env: Mapping[str, str], log: Path) -> Proc:
    """``python -m <module>`` (jobs.worker, jobs.scheduler) with ``env``."""
    return Proc([sys.executable, "-m", module], env, log)


class Stoppable(Protocol):
    """Anything a test or the lab starts and must stop: a Proc, a private Redis or MariaDB server."""

    def stop(self) -> None: ...


S = TypeVar("S", bound=Stoppable)


class Processes:
    """Every process a test starts, stopped on the way out whatever happened (``with Processes() as procs``)."""

    def __init__(self) -> None:
        self._all: list[Stoppable] = []

    def add(self, proc: S) -> S:
        """Remember ``proc`` for the final stop; return it."""
        self._all.append(proc)
        return proc

    def __enter__(self) -> Processes:
        return self

    def __exit__(self, *_exc: object) -> None:
        for proc in reversed(self._all):
            try:
                proc.stop()
            except Exception:  # keep stopping the others
                pass


def start_drain(procs: Processes, env: Mapping[str, str], logs: Path, n: int = 0) -> list[Proc]:
    """The drain's worker and scheduler (``n`` numbers their logs across restarts)."""
    return [procs.add(start_module(m, env, logs / f"{m}{n}.log")) for m in ("jobs.worker", "jobs.scheduler")]


def start_service(
    procs: Processes, env: Mapping[str, str], logs: Path, drain: bool, host: str = "127.0.0.1"
) -> tuple[str, list[Proc]]:
    """gunicorn (listening on ``host``) and, with ``drain``, the worker and scheduler; the API's base URL and the
    drain's processes."""
    server, base = start_gunicorn(env, logs / "gunicorn.log", host=host)
    procs.add(server)
    return base, start_drain(procs, env, logs) if drain else []
