"""Run the whole service in the foreground: ``python -m app.launcher`` (``make serve``).

Starts the embedded Redis when REDIS_URL is unset, brings the schema up to date, then runs the
Procfile's processes (API, RQ worker, scheduler), every one pointed at the same services, and
prints their lines under their names. Ctrl-C stops them all, then the embedded Redis (its data
stays in the instance folder).

A crash of the launcher leaves nothing running: when it dies, however it dies, the kernel kills
every process it started (app.children): the Procfile's with SIGKILL, a crash of the service that
the guarantees cover (docs/reliability.md), and the embedded Redis with SIGTERM, after which it
has its AOF flushed. (SIGTERM would leave the RQ worker retrying a Redis that is gone for good.)
One launcher runs per instance folder (a lock it holds while it runs, which ``make stop`` reads
too), and a taken port stops it before it starts anything, saying what to do.

The API listens on 127.0.0.1, this machine only, unless HOST (or ``--host``) says otherwise.
"""

from __future__ import annotations

import argparse
import errno
import fcntl
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import IO

from app import children, embedded
from app.config import DEV_JWT_SECRET
from app.embedded import LOCK_NAME, serving_pid
from app.logs import configure as configure_logging

ROOT = Path(__file__).resolve().parent.parent
LOOPBACK = ("127.0.0.1", "localhost", "::1")
EVERYWHERE = ("0.0.0.0", "::", "")
STOP_TIMEOUT_S = 15.0  # SIGTERM, then SIGKILL after this: above gunicorn's graceful_timeout (10 s)
POLL_S = 0.1
EXIT_STATUS: dict[int, int] = {signal.SIGINT: 130, signal.SIGTERM: 143}  # as a shell reports them


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The launcher's options; each defaults to its environment variable."""
    parser = argparse.ArgumentParser(
        prog="python -m app.launcher", description="Run the whole service in the foreground (make serve)."
    )
    parser.add_argument(
        "--host",
        default=os.environ.get("HOST") or "127.0.0.1",
        help="address the API binds (default: HOST, else 127.0.0.1: this machine only; 0.0.0.0: every interface)",
    )
    port = int(os.environ.get("PORT") or 8000)
    parser.add_argument("--port", type=int, default=port, help="port the API binds (default: PORT, else 8000)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Check, prepare the services, run the Procfile until Ctrl-C or a process ends; the exit status."""
    args = parse_args(argv)
    configure_logging("launcher")
    folder = embedded.instance_folder()
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / LOCK_NAME, "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = serving_pid(folder)
            return refuse(
                f"make serve already runs (pid {pid}) on {folder}: use it, or stop it first "
                f"(Ctrl-C in its terminal, or kill {pid})"
            )
        lock.truncate(0)
        lock.write(f"{os.getpid()}\n")
        lock.flush()
        problem = port_problem(args.host, args.port)
        if problem:
            return refuse(problem)
        return serve(folder, args.host, args.port)


def serve(folder: Path, host: str, port: int) -> int:
    """The embedded Redis (if wanted), the schema, then the Procfile's processes; their exit status."""
    from flask_migrate import upgrade

    from app import create_app
    from app.extensions import db

    with embedded.serving(folder, attached=True):
        app = create_app()
        with app.app_context():
            upgrade()
            db.engine.dispose()
        config = app.config
        for line in banner(
            host,
            port,
            strategy=config["ISSUE_STRATEGY"],
            database=config["SQLALCHEMY_DATABASE_URI"],
            redis=config["REDIS_URL"],
            secret=config["JWT_SECRET_KEY"],
        ):
            print(line, flush=True)
        env = dict(
            os.environ,
            REDIS_URL=config["REDIS_URL"],
            DATABASE_URL=config["SQLALCHEMY_DATABASE_URI"],
            HOST=host,
            PORT=str(port),
            PYTHONUNBUFFERED="1",
            # The Procfile says `gunicorn` and `python`: make them this interpreter's, venv activated or not.
            PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        )
        return Supervisor(procfile(ROOT / "Procfile"), env).run()


def port_problem(host: str, port: int) -> str | None:
    """Why the API could not listen on ``host:port``, with what to do; None if it can."""
    where = f"{host}:{port}"
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn binds
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                return f"cannot listen on {where}: {exc.strerror}; set HOST to an address of this machine"
            return (
                f"{where} is taken: another program listens there, or the API of a make serve that was just "
                f"stopped is still closing (try again in a few seconds). See which: ss -ltnp 'sport = :{port}', "
                f"and stop it (kill PID), or serve on another port: PORT={port + 1} make serve"
            )
    return None


def refuse(message: str) -> int:
    """Say why nothing was started; exit status 1."""
    print(f"coupon-rush: not started: {message}", file=sys.stderr, flush=True)
    return 1


def banner(host: str, port: int, *, strategy: str, database: str, redis: str, secret: str | None) -> list[str]:
    """What the launcher prints before its processes start: where the API listens (from the address it binds)."""
    url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
    if host in EVERYWHERE:
        where = f"every network interface, port {port} (http://127.0.0.1:{port} from this machine)"
    elif host in LOOPBACK:
        where = f"{url} (this machine only; HOST=0.0.0.0 make serve opens it to the network)"
    else:
        where = url
    lines = [
        f"coupon-rush: API on {where}",
        f"coupon-rush: strategy={strategy}  database={_hide_password(database)}  redis={_hide_password(redis)}  "
        "(Ctrl-C stops)",
    ]
    if host not in LOOPBACK and secret in (None, DEV_JWT_SECRET):
        lines.append(
            "coupon-rush: WARNING: reachable from the network with the development secret published in "
            "app/config.py: anyone who reaches it can sign a seller token. Set JWT_SECRET_KEY, "
            "e.g. JWT_SECRET_KEY=$(openssl rand -hex 32)"
        )
    return lines


def _hide_password(url: str) -> str:
    return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", url)


def procfile(path: Path) -> dict[str, str]:
    """The Procfile's processes, name to command, in its order."""
    entries = {}
    for line in path.read_text().splitlines():
        name, colon, command = line.partition(":")
        if colon and name.strip() and not name.lstrip().startswith("#"):
            entries[name.strip()] = command.strip()
    return entries


class Supervisor:
    """The Procfile's processes as this process's children: their lines under their names; when one ends, all end.

    Each runs in a session of its own, so a Ctrl-C in the terminal reaches the launcher alone, which
    stops them all with SIGTERM (then SIGKILL after STOP_TIMEOUT_S, or at a second Ctrl-C). Each is
    armed to get SIGKILL if the launcher dies (app.children), and is exec'd by the shell, so the
    process armed is the process that serves; gunicorn's workers leave when they see their master gone.
    """

    def __init__(self, commands: dict[str, str], env: dict[str, str]) -> None:
        self.commands = commands
        self.env = env
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.signalled: int | None = None
        self.forced = False
        self._relays: list[threading.Thread] = []
        self._out = threading.Lock()
        self._width = max(len(name) for name in [*commands, "system"])

    def run(self) -> int:
        """Start every process, wait for a signal or for one to end, stop them all; the exit status."""
        previous = {sig: signal.signal(sig, self._on_signal) for sig in EXIT_STATUS}
        try:
            self._start()
            ended = self._wait_for_an_end()
            self._stop()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if self.signalled is not None:
            return EXIT_STATUS[self.signalled]
        if ended is None:
            return 1
        return ended if ended >= 0 else 128 - ended  # killed by a signal: 128 + its number, as a shell says

    def _on_signal(self, signum: int, _frame: object) -> None:
        if self.signalled is None:
            self.signalled = signum
            self.say("system", f"{signal.Signals(signum).name} received, stopping every process")
        else:
            self.forced = True

    def _start(self) -> None:
        arm = children.dying_with_parent(signal.SIGKILL)
        for name, command in self.commands.items():
            child = subprocess.Popen(
                ["/bin/sh", "-c", f"exec {command}"],
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=arm,
            )
            self.children[name] = child
            self.say("system", f"{name} started (pid {child.pid})")
        # Relays start after every fork: a fork with threads running is not safe for preexec_fn.
        for name, child in self.children.items():
            relay = threading.Thread(target=self._relay, args=(name, child.stdout), daemon=True)
            relay.start()
            self._relays.append(relay)

    def _wait_for_an_end(self) -> int | None:
        """The exit status of the first process to end, or None once a signal asks to stop."""
        while self.signalled is None:
            for name, child in self.children.items():
                if child.poll() is not None:
                    self.say("system", f"{name} stopped (status {child.returncode}), stopping the others")
                    return child.returncode
            time.sleep(POLL_S)
        return None

    def _stop(self) -> None:
        self._signal_all(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while self._running() and not self.forced and time.monotonic() < deadline:
            time.sleep(POLL_S)
        if self._running():
            self._signal_all(signal.SIGKILL)
        for child in self.children.values():
            child.wait()
        for relay in self._relays:
            relay.join(5)
        for name, child in self.children.items():
            self.say("system", f"{name} stopped (status {child.returncode})")

    def _running(self) -> list[str]:
        return [name for name, child in self.children.items() if child.poll() is None]

    def _signal_all(self, sig: int) -> None:
        for name in self._running():
            pid = self.children[name].pid
            self.say("system", f"sending {signal.Signals(sig).name} to {name} (pid {pid})")
            try:
                os.killpg(pid, sig)  # its process group: gunicorn's workers too
            except ProcessLookupError:
                pass

    def _relay(self, name: str, stream: IO[bytes]) -> None:
        for line in iter(stream.readline, b""):
            self.say(name, line.decode(errors="replace").rstrip("\n"))
        stream.close()

    def say(self, name: str, text: str) -> None:
        """One line of output: the time, the process's name, its text."""
        with self._out:
            sys.stdout.write(f"{datetime.now():%H:%M:%S} {name:<{self._width}} | {text}\n")
            sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
