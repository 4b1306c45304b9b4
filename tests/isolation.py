"""What keeps a test run to itself: it touches only the services it was given, and leaves no process behind.

- :class:`Guard` refuses, in the test process, a connection to one of this machine's service
  addresses (MariaDB on 3306, Redis on 6379, the embedded Redis of ``make serve``) that the run was
  not given, and remembers who tried: a test that falls back to a default address fails loudly
  instead of writing into a database or Redis of someone else's.
- :func:`leftovers` finds the processes of a run that has ended: those carrying its mark
  (:data:`RUN_MARK`, inherited by every process the suite starts) in their environment, and those
  working in or writing to its temporary folder. The second catches what the first cannot see: a
  redis-server overwrites its environment with its process title.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import signal
import socket
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from redis.connection import parse_url
from sqlalchemy.engine import make_url

from app import embedded
from tests.services import DEFAULT_DATABASE_URL, DEFAULT_REDIS_URL

RUN_MARK = "COUPON_RUSH_TEST_RUN"
MYSQL_PORT, REDIS_PORT = 3306, 6379
EXIT_GRACE_S = 10.0  # a process being stopped as the run ends gets this long to go

Address = tuple[str, str | int]  # ("tcp", port on loopback) or ("unix", socket path)


def address_of(url: str) -> Address | None:
    """The loopback port or unix socket a database or Redis URL connects to; None if neither (SQLite, a remote host)."""
    if url.startswith(("redis://", "rediss://", "unix://")):
        parts = parse_url(url)
        if "path" in parts:
            return ("unix", str(Path(parts["path"]).resolve()))
        host, port = parts.get("host", "localhost"), int(parts.get("port", REDIS_PORT))
    else:
        parsed = make_url(url)
        if parsed.get_backend_name() not in ("mysql", "mariadb"):
            return None
        socket_path = parsed.query.get("unix_socket")
        if isinstance(socket_path, str):
            return ("unix", str(Path(socket_path).resolve()))
        host, port = parsed.host or "localhost", parsed.port or MYSQL_PORT
    return ("tcp", port) if _loopback(host) else None


def forbidden(given: Iterable[str]) -> set[Address]:
    """The machine's service addresses, less those of the ``given`` URLs."""
    machine = {
        ("tcp", MYSQL_PORT),
        ("tcp", REDIS_PORT),
        address_of(DEFAULT_DATABASE_URL),
        address_of(DEFAULT_REDIS_URL),
        address_of(embedded.socket_url(embedded.instance_folder())),
    }
    allowed = {address_of(url) for url in given}
    return {a for a in machine - allowed if a is not None}


class Guard:
    """While installed, a connection from this process to a ``forbidden`` address is refused and recorded."""

    def __init__(self, forbidden: set[Address]) -> None:
        self.forbidden = forbidden
        self.touched: list[str] = []  # "<address> by <test>", one per refused connection
        self._saved: tuple[Any, Any] | None = None

    def __enter__(self) -> Guard:
        self.install()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.uninstall()

    def install(self) -> None:
        """Wrap ``socket.socket.connect`` and ``connect_ex`` (whatever they are now: guards nest)."""
        connect, connect_ex = self._saved = (socket.socket.connect, socket.socket.connect_ex)
        guard = self

        def guarded_connect(sock: socket.socket, address: Any) -> None:
            guard.check(sock.family, address)
            connect(sock, address)

        def guarded_connect_ex(sock: socket.socket, address: Any) -> int:
            guard.check(sock.family, address)
            return int(connect_ex(sock, address))

        socket.socket.connect = guarded_connect  # type: ignore[method-assign]
        socket.socket.connect_ex = guarded_connect_ex  # type: ignore[method-assign]

    def uninstall(self) -> None:
        """Put back what :meth:`install` wrapped."""
        if self._saved is not None:
            socket.socket.connect, socket.socket.connect_ex = self._saved  # type: ignore[method-assign]
            self._saved = None

    def check(self, family: int, address: Any) -> None:
        """Refuse ``address`` if it is forbidden: ConnectionRefusedError, and a record of who asked."""
        key = _key(family, address)
        if key is None or key not in self.forbidden:
            return
        where = f"{key[0]} {key[1]}"
        self.touched.append(f"{where} by {os.environ.get('PYTEST_CURRENT_TEST', 'the suite outside a test')}")
        raise ConnectionRefusedError(errno.ECONNREFUSED, f"{where} is a service this test run was not given")


def _key(family: int, address: Any) -> Address | None:
    if family == socket.AF_UNIX and isinstance(address, str | bytes):
        return ("unix", str(Path(os.fsdecode(address)).resolve()))
    if family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple) and _loopback(str(address[0])):
        return ("tcp", int(address[1]))
    return None


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def mark_run() -> str:
    """Give this process (and so every process it starts) a mark of this run; the mark."""
    mark = os.environ[RUN_MARK] = f"{os.getpid()}-{time.time_ns()}"
    return mark


def leftovers(mark: str, folder: Path, grace_s: float = EXIT_GRACE_S) -> dict[int, str]:
    """The processes but this one, after ``grace_s``, with ``mark`` or at work in ``folder``: pid -> command line."""
    deadline = time.monotonic() + grace_s
    while True:
        found = _of_the_run(mark, folder)
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def kill(pids: Iterable[int]) -> None:
    """SIGKILL each of ``pids`` (processes of this run) that is still there."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _of_the_run(mark: str, folder: Path) -> dict[int, str]:
    entry = f"{RUN_MARK}={mark}".encode()
    inside = f"{folder.resolve()}/"
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            marked = entry in (proc / "environ").read_bytes().split(b"\0")
            if marked or any(f"{path}/".startswith(inside) for path in _paths(proc)):
                found[int(proc.name)] = (
                    (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
                )
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return found


def _paths(proc: Path) -> Iterator[str]:
    """The working folder and the open files of a process."""
    yield os.readlink(proc / "cwd")
    for fd in (proc / "fd").iterdir():
        try:
            yield os.readlink(fd)
        except OSError:
            continue
