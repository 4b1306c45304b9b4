"""``make serve``: a crash leaves nothing running; it listens on loopback, says so; ``make stop`` refuses under it."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import requests

from app import embedded, launcher
from app.config import DEV_JWT_SECRET
from support.procs import free_port, wait_for
from tests.helpers import ROOT, bearer

SERVICE_URLS = ("DATABASE_URL", "REDIS_URL", "REDIS_CLUSTER_URL", "HOST", "PORT", "JWT_SECRET_KEY")


def serve_env(instance: Path, **extra: str) -> dict[str, str]:
    """What ``make serve`` runs with on a fresh machine: nothing configured, the instance folder in ``instance``."""
    env = {k: v for k, v in os.environ.items() if k not in SERVICE_URLS}
    env.update(INSTANCE_PATH=str(instance), PYTHONWARNINGS="ignore", DRAIN_INTERVAL_MS="50")
    return dict(env, **extra)


@dataclass
class Served:
    """A running ``python -m app.launcher``, the leader of its own process group as a terminal's job is."""

    popen: subprocess.Popen[bytes]
    instance: Path
    port: int
    log: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def pids(self) -> list[int]:
        """The launcher, every process under it, and the embedded Redis it runs."""
        tree = psutil.Process(self.popen.pid)
        pids = [self.popen.pid, *(p.pid for p in tree.children(recursive=True))]
        redis_pid = int((self.instance / "redis.pid").read_text())
        return pids if redis_pid in pids else [*pids, redis_pid]


def start(instance: Path, port: int, **env: str) -> Served:
    """``make serve``'s command in a new process group; returns once its API answers."""
    log = instance / f"serve-{port}-{time.monotonic_ns()}.log"
    with open(log, "ab") as out:
        popen = subprocess.Popen(
            [sys.executable, "-m", "app.launcher"],
            cwd=ROOT,
            env=serve_env(instance, PORT=str(port), **env),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    served = Served(popen, instance, port, log)
    wait_for(lambda: popen.poll() is not None or _answers(f"{served.base}/healthz"), 90, "make serve's API")
    assert popen.poll() is None, served.output()[-3000:]
    return served


def ctrl_c(served: Served) -> int:
    """What Ctrl-C in its terminal does: SIGINT to the foreground process group; its exit status."""
    if served.popen.poll() is None:
        os.killpg(served.popen.pid, signal.SIGINT)
    return served.popen.wait(60)


@contextmanager
def serving(instance: Path, port: int, **env: str) -> Iterator[Served]:
    """A launcher for the block, stopped with Ctrl-C on the way out unless the block killed it."""
    served = start(instance, port, **env)
    try:
        yield served
    finally:
        ctrl_c(served)


def wait_all_gone(pids: list[int], what: str) -> None:
    """Poll until none of ``pids`` runs (a zombie counts as gone); fail naming the ones left."""
    try:
        wait_for(lambda: not [p for p in pids if _alive(p)], 30, what)
    except AssertionError:
        left = [f"{p} {psutil.Process(p).cmdline()}" for p in pids if _alive(p)]
        raise AssertionError(f"{what}; still running: {left}") from None


def test_a_crash_of_make_serve_leaves_nothing_and_the_restart_drains_every_winner(tmp_path: Path) -> None:
    """Serve, register, download, kill -9 the group, serve again: the service is up, each winner persisted once."""
    port, quantity = free_port(), 4
    # The first run drains nothing on its own (one tick at start, the next in ten minutes): every winner
    # is still queued in the embedded Redis when it crashes.
    first = start(tmp_path, port, DRAIN_INTERVAL_MS="600000")
    try:
        seller = _seller(first, "shop")
        coupon = requests.post(
            f"{first.base}/coupons", json={"name": "crash", "quantity": quantity}, headers=bearer(seller)
        ).json()["id"]
        members = [_member(first, f"member{i}") for i in range(quantity + 1)]
        answers = [requests.post(f"{first.base}/coupons/{coupon}/download", headers=bearer(t)) for _, t in members]
        assert [a.status_code for a in answers] == [202] * quantity + [410]
        assert _rows(tmp_path, coupon) == [], "the drain ran: nothing was left queued to test"
        pids = first.pids()
        assert len(pids) >= 6, pids  # launcher, gunicorn master and worker(s), RQ worker, scheduler, Redis
        os.killpg(first.popen.pid, signal.SIGKILL)  # the crash: the whole process group of the terminal's job
        first.popen.wait(10)
        wait_all_gone(pids, "every process of the crashed make serve to die")
    finally:
        ctrl_c(first)
    assert not _answers(f"{first.base}/healthz")

    with serving(tmp_path, port) as second:
        winners = sorted(member_id for member_id, _ in members[:quantity])
        wait_for(lambda: len(_rows(tmp_path, coupon)) >= quantity, 60, "the queued winners to be drained")
        stats = requests.get(f"{second.base}/coupons/{coupon}/stats", headers=bearer(seller)).json()
        assert stats == {"quantity": quantity, "reserved": quantity, "persisted": quantity, "pending": 0}
        late = requests.post(f"{second.base}/coupons/{coupon}/download", headers=bearer(members[-1][1]))
        assert late.status_code == 410
        pids = second.pids()
    assert sorted(_rows(tmp_path, coupon)) == winners  # each winner exactly once
    wait_all_gone(pids, "every process of make serve to stop on Ctrl-C")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One ``make serve`` on embedded defaults, nothing else configured, for the tests that only look at it."""
    with serving(tmp_path_factory.mktemp("serve"), free_port()) as running:
        yield running


def test_serve_listens_on_loopback_only_and_its_banner_says_where(served: Served) -> None:
    """No HOST: every socket the service listens on is 127.0.0.1's, the banner names that, and says how to open it."""
    listening = {
        (c.laddr.ip, c.laddr.port)
        for pid in served.pids()
        if _alive(pid)
        for c in psutil.Process(pid).net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN
    }
    assert listening == {("127.0.0.1", served.port)}
    banner = next(line for line in served.output().splitlines() if line.startswith("coupon-rush: API"))
    assert f"http://127.0.0.1:{served.port}" in banner and "this machine only" in banner and "HOST=" in banner
    for address in _other_addresses():
        with pytest.raises(OSError), socket.create_connection((address, served.port), timeout=2):
            pass


def test_make_stop_refuses_while_make_serve_runs(served: Served) -> None:
    """``make stop`` under a live service stops nothing: it says who uses the Redis and what to do, and exits 1."""
    venv = Path(sys.executable).parent.parent
    done = subprocess.run(
        ["make", "--no-print-directory", "stop", f"VENV={venv}"],
        cwd=ROOT,
        env=serve_env(served.instance),
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0, done.stdout + done.stderr
    said = done.stdout + done.stderr
    assert f"make serve (pid {served.popen.pid})" in said and "Ctrl-C" in said, said
    assert embedded.answers(embedded.socket_url(served.instance))
    assert _answers(f"{served.base}/healthz")


def test_a_second_make_serve_on_the_same_instance_refuses(served: Served) -> None:
    """A second launcher on the same instance folder exits at once, naming the one that runs."""
    done = subprocess.run(
        [sys.executable, "-m", "app.launcher"],
        cwd=ROOT,
        env=serve_env(served.instance, PORT=str(free_port())),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"already runs (pid {served.popen.pid})" in done.stderr, done.stderr
    assert _answers(f"{served.base}/healthz")


def test_a_taken_port_is_named_with_what_to_do(tmp_path: Path) -> None:
    """The port is held by something else (a leftover, another program): the launcher says so and starts nothing."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "app.launcher"],
            cwd=ROOT,
            env=serve_env(tmp_path, PORT=str(port)),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"127.0.0.1:{port} is taken" in done.stderr and f"PORT={port + 1} make serve" in done.stderr, done.stderr
    assert not (tmp_path / "redis.sock").exists(), "it started the embedded Redis anyway"


@pytest.mark.parametrize(
    ("host", "where"),
    [
        ("127.0.0.1", "http://127.0.0.1:8000 (this machine only"),
        ("0.0.0.0", "every network interface, port 8000"),
        ("192.0.2.7", "http://192.0.2.7:8000"),
        ("::", "every network interface, port 8000"),
        ("::1", "http://[::1]:8000"),
    ],
)
def test_the_banner_names_where_the_api_listens(host: str, where: str) -> None:
    """The banner is built from the address gunicorn binds; off loopback, the development secret is called out."""
    lines = launcher.banner(host, 8000, strategy="lua", database="sqlite://", redis="unix://r", secret=DEV_JWT_SECRET)
    assert where in lines[0]
    exposed = host not in launcher.LOOPBACK
    assert any("JWT_SECRET_KEY" in line for line in lines) == exposed
    quiet = launcher.banner(host, 8000, strategy="lua", database="sqlite://", redis="unix://r", secret="s" * 40)
    assert not any("JWT_SECRET_KEY" in line for line in quiet)


def test_the_host_is_loopback_unless_told(monkeypatch: pytest.MonkeyPatch) -> None:
    """HOST, else --host, else 127.0.0.1; the children get it, so gunicorn binds what the banner says."""
    monkeypatch.delenv("HOST", raising=False)
    assert launcher.parse_args([]).host == "127.0.0.1"
    assert launcher.parse_args(["--host", "0.0.0.0"]).host == "0.0.0.0"
    monkeypatch.setenv("HOST", "0.0.0.0")
    assert launcher.parse_args([]).host == "0.0.0.0"


def _seller(served: Served, name: str) -> str:
    """A seller made with the CLI, as the README says; its token."""
    cmd = [sys.executable, "-m", "flask", "--app", "wsgi", "create-user", name, "--password", "pw", "--role", "seller"]
    done = subprocess.run(cmd, cwd=ROOT, env=serve_env(served.instance), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return _login(served, name)


def _member(served: Served, name: str) -> tuple[int, str]:
    signed = requests.post(f"{served.base}/auth/signup", json={"username": name, "password": "pw"})
    assert signed.status_code == 201, signed.text
    return int(signed.json()["id"]), _login(served, name)


def _login(served: Served, name: str) -> str:
    answer = requests.post(f"{served.base}/auth/login", json={"username": name, "password": "pw"})
    return str(answer.json()["access_token"])


def _rows(instance: Path, coupon_id: int) -> list[int]:
    with sqlite3.connect(instance / "coupon_rush.sqlite3", timeout=30) as conn:
        return [r[0] for r in conn.execute("SELECT member_id FROM member_coupon WHERE coupon_id = ?", (coupon_id,))]


def _other_addresses() -> list[str]:
    """This machine's IPv4 addresses other than loopback: where a service bound to 0.0.0.0 would answer."""
    return [
        a.address
        for addresses in psutil.net_if_addrs().values()
        for a in addresses
        if a.family == socket.AF_INET and not a.address.startswith("127.")
    ]


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:
        return False


def test_an_armed_child_dies_with_its_parent_however_it_dies() -> None:
    """A parent starts a child armed with SIGKILL, then is kill -9'd: the child goes too, at once."""
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal, subprocess, sys, time; from app.children import dying_with_parent; "
            "child = subprocess.Popen(['sleep', '300'], preexec_fn=dying_with_parent(signal.SIGKILL)); "
            "print(child.pid, flush=True); time.sleep(300)",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    assert _alive(child)
    parent.kill()
    parent.wait(10)
    wait_all_gone([child], "the armed child to die with its parent")


def test_nothing_is_armed_where_there_is_no_parent_death_signal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Off Linux there is no such signal: no preexec_fn (the launcher's start-up checks are what remain)."""
    from app import children

    monkeypatch.setattr(sys, "platform", "darwin")
    assert children.dying_with_parent(signal.SIGKILL) is None


def _supervisor(**commands: str) -> launcher.Supervisor:
    return launcher.Supervisor(commands, dict(os.environ, PYTHONWARNINGS="ignore"))


def _stubborn(ready: Path) -> str:
    """A command that ignores SIGTERM, then creates ``ready``."""
    code = f"import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); open({str(ready)!r}, 'w')"
    code += "; time.sleep(60)"
    return f'{sys.executable} -c "{code}"'


def _when_ready(ready: Path) -> str:
    """A command that exits once ``ready`` exists."""
    return f'{sys.executable} -c "import os, time\nwhile not os.path.exists({str(ready)!r}): time.sleep(0.05)"'


def test_when_one_process_ends_the_others_are_stopped_and_its_status_is_the_launchers(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A Procfile process that exits takes the rest down (a dead API must not hide behind a live worker)."""
    quitter = f"{sys.executable} -c 'print(\"bye\"); raise SystemExit(3)'"
    supervisor = _supervisor(quitter=quitter, sleeper="sleep 60")
    assert supervisor.run() == 3
    assert all(child.poll() is not None for child in supervisor.children.values())
    out = capsys.readouterr().out
    assert "quitter | bye" in out and "quitter stopped (status 3), stopping the others" in out
    assert "sending SIGTERM to sleeper" in out


def test_a_process_that_ignores_sigterm_is_killed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Stopping waits STOP_TIMEOUT_S for SIGTERM to work, then sends SIGKILL."""
    monkeypatch.setattr(launcher, "STOP_TIMEOUT_S", 0.5)
    ready = tmp_path / "ready"
    supervisor = _supervisor(stubborn=_stubborn(ready), quitter=_when_ready(ready))
    assert supervisor.run() == 0
    assert _supervisor(killed="sh -c 'kill -9 $$'").run() == 128 + signal.SIGKILL
    assert supervisor.children["stubborn"].returncode == -signal.SIGKILL


def test_ctrl_c_stops_every_process_and_a_second_one_kills(tmp_path: Path) -> None:
    """The first SIGINT stops them all (status 130); a second one while they stop sends SIGKILL at once."""
    ready = tmp_path / "ready"
    supervisor = _supervisor(stubborn=_stubborn(ready))

    def press_ctrl_c_twice() -> None:
        wait_for(ready.exists, 30, "the stubborn process to ignore SIGTERM")
        os.kill(os.getpid(), signal.SIGINT)
        wait_for(lambda: supervisor.signalled is not None, 30, "the first Ctrl-C to be seen")
        os.kill(os.getpid(), signal.SIGINT)

    presser = threading.Thread(target=press_ctrl_c_twice, daemon=True)
    presser.start()
    started = time.monotonic()
    assert supervisor.run() == 130
    presser.join(5)
    assert supervisor.children["stubborn"].returncode == -signal.SIGKILL
    assert time.monotonic() - started < launcher.STOP_TIMEOUT_S


def test_the_procfile_is_read_as_its_lines_say(tmp_path: Path) -> None:
    """Name, colon, command; comments and blank lines skipped; the repository's three processes in order."""
    procfile = tmp_path / "Procfile"
    procfile.write_text("# the service\nweb: gunicorn -c g.py wsgi:app\n\nworker:python -m jobs.worker\n")
    assert launcher.procfile(procfile) == {"web": "gunicorn -c g.py wsgi:app", "worker": "python -m jobs.worker"}
    assert list(launcher.procfile(ROOT / "Procfile")) == ["web", "worker", "scheduler"]


def test_an_address_not_on_this_machine_is_named(tmp_path: Path) -> None:
    """HOST set to an address this machine does not have: said before anything starts, with what to set."""
    problem = launcher.port_problem("192.0.2.254", free_port())
    assert problem is not None and "cannot listen on 192.0.2.254" in problem and "HOST" in problem
    assert launcher.port_problem("127.0.0.1", free_port()) is None
    assert launcher.serving_pid(tmp_path) is None  # no launcher ever ran here
    (tmp_path / launcher.LOCK_NAME).write_text("12345\n")
    assert launcher.serving_pid(tmp_path) is None  # one ran, and is gone: its lock went with it


def test_stop_says_who_uses_the_redis(served: Served, capsys: pytest.CaptureFixture[str]) -> None:
    """``python -m app.embedded stop`` itself, on a folder make serve runs on: exit 1, the pid, the way out."""
    assert embedded.main(["stop", "--instance", str(served.instance)]) == 1
    said = capsys.readouterr().err
    assert f"make serve (pid {served.popen.pid})" in said and f"kill {served.popen.pid}" in said, said
    assert embedded.answers(embedded.socket_url(served.instance))
