"""A test run keeps to itself: only the services it was given, its embedded Redis stopped, no process left behind."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from app import embedded
from support.procs import wait_for
from tests import isolation
from tests import services as svc

CLOSED = ("mysql+pymysql://root@127.0.0.1:1/none", "redis://127.0.0.1:1/0")  # nothing answers on port 1


def test_a_service_not_given_is_refused_before_it_is_reached(tmp_path: Path) -> None:
    """A test that falls back to a Redis it was not given fails at once, and names itself; the Redis sees nothing."""
    decoy = socket.create_server(("127.0.0.1", 0))
    decoy.settimeout(0.5)
    port = decoy.getsockname()[1]
    try:
        with isolation.Guard({("tcp", port)}) as guard:
            with pytest.raises(redis.ConnectionError, match="not given"):
                redis.Redis(port=port, socket_connect_timeout=2).ping()
        assert set(guard.touched) == {f"tcp {port} by {os.environ['PYTEST_CURRENT_TEST']}"}  # once per retry
        with pytest.raises(TimeoutError):
            decoy.accept()  # no connection ever reached it
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        decoy.accept()[0].close()  # the guard gone, the same address is reached
    finally:
        decoy.close()


def test_the_machine_services_are_off_limits_unless_given() -> None:
    """MariaDB's and Redis's usual ports and ``make serve``'s Redis are forbidden to a run that was given others."""
    serve_socket = ("unix", str((embedded.instance_folder() / embedded.SOCKET_NAME).resolve()))
    assert isolation.forbidden(CLOSED) == {("tcp", 3306), ("tcp", 6379), serve_socket}
    assert isolation.forbidden((svc.DEFAULT_DATABASE_URL, svc.DEFAULT_REDIS_URL)) == {serve_socket}
    assert isolation.forbidden(("sqlite:///x.sqlite3", "unix:///tmp/elsewhere.sock")) >= {("tcp", 3306), ("tcp", 6379)}
    assert isolation.address_of("redis://localhost:6380/2") == ("tcp", 6380)
    assert isolation.address_of("redis://10.0.0.5:6379/0") is None  # not this machine's


def test_the_run_refuses_what_it_was_not_given(services: svc.Services) -> None:
    """The suite's own guard is in place for this run, with the addresses its URLs leave out."""
    assert socket.socket.connect.__name__ == "guarded_connect"
    given = {isolation.address_of(url) for url in (*svc.given(), services.database_url, services.redis_url)}
    assert not isolation.forbidden(svc.given()) & given


def test_the_embedded_redis_of_a_run_stops_with_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing answers where the run was pointed: it falls back to an embedded Redis, and its end stops it."""
    monkeypatch.setenv("TEST_DATABASE_URL", CLOSED[0])
    monkeypatch.setenv("TEST_REDIS_URL", CLOSED[1])
    monkeypatch.delenv("COUPON_RUSH_REQUIRE_SERVICES", raising=False)
    fallback = svc.resolve(tmp_path)
    assert fallback.embedded and fallback.redis_url == embedded.socket_url(tmp_path)
    pid = int((tmp_path / "redis.pid").read_text())
    assert embedded.answers(fallback.redis_url)
    svc.release(fallback, tmp_path)
    assert not embedded.answers(fallback.redis_url)
    wait_for(lambda: not _environ(pid), 10, "the embedded Redis to exit")  # gone (a zombie has no environment)


def test_a_process_of_the_run_left_running_is_found(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    """Found by the run's mark, or (a redis-server overwrites its environment) by its folder; another run's is not."""
    mark, script = os.environ[isolation.RUN_MARK], "import time; time.sleep(60)"
    other_run = dict(os.environ, **{isolation.RUN_MARK: "another run"})
    marked = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    in_folder = subprocess.Popen([sys.executable, "-c", script], start_new_session=True, env=other_run, cwd=tmp_path)
    foreign = subprocess.Popen([sys.executable, "-c", script], start_new_session=True, env=other_run, cwd="/")
    try:
        found = isolation.leftovers(mark, tmp_path_factory.getbasetemp(), grace_s=0)
        assert marked.pid in found and in_folder.pid in found and script in found[marked.pid]
        assert foreign.pid not in found
        isolation.kill([marked.pid, in_folder.pid])
        assert marked.wait(10) == in_folder.wait(10) == -9
    finally:
        for proc in (marked, in_folder, foreign):
            proc.kill()
            proc.wait(10)


def _environ(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return b""
