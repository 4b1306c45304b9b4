"""The reply-losing proxy of the fault tests: it forwards to a unix socket too, loses replies, delivers late."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from app import embedded
from support.procs import wait_for
from support.proxy import Proxy
from tests import services as svc

SOCKET_WAIT_S = 10


@pytest.fixture
def unix_redis(tmp_path: Path) -> Iterator[redis.Redis]:
    """A Redis of the test's own listening on a unix socket only (as the embedded one does)."""
    folder = tmp_path / "redis"
    client = redis.Redis.from_url(embedded.ensure_server(folder))
    try:
        yield client
    finally:
        client.close()
        svc.stop_embedded(folder)


def upstream_of(client: redis.Redis) -> str:
    """The unix socket path ``client`` talks to."""
    return str(client.connection_pool.connection_kwargs["path"])


def command(*words: str) -> bytes:
    """A Redis command as it crosses the wire (RESP)."""
    parts = [f"*{len(words)}\r\n".encode()]
    parts += [f"${len(w.encode())}\r\n{w}\r\n".encode() for w in words]
    return b"".join(parts)


def answer(conn: socket.socket) -> bytes:
    """What comes back on ``conn`` before it closes (nothing, for a lost reply)."""
    try:
        return conn.recv(1024)
    except ConnectionResetError:
        return b""


def test_a_unix_socket_upstream_gets_what_the_client_sends(unix_redis: redis.Redis) -> None:
    with Proxy(upstream_of(unix_redis)) as proxy:
        through = redis.Redis(port=proxy.port, socket_timeout=SOCKET_WAIT_S)
        assert through.set("forwarded", "yes") is True
        assert unix_redis.get("forwarded") == b"yes" and through.get("forwarded") == b"yes"
        through.close()


def test_a_lost_reply_was_executed_and_never_answered(unix_redis: redis.Redis) -> None:
    with Proxy(upstream_of(unix_redis)) as proxy:
        proxy.arm_drop_reply(b"lost-key")
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=SOCKET_WAIT_S) as conn:
            conn.sendall(command("INCR", "lost-key"))
            assert answer(conn) == b""
        wait_for(lambda: proxy.acted == 1, SOCKET_WAIT_S, "the proxy to see the answer it drops")
    assert unix_redis.get("lost-key") == b"1"


def test_a_late_request_reaches_the_server_after_the_client_was_cut_off(unix_redis: redis.Redis) -> None:
    with Proxy(upstream_of(unix_redis)) as proxy:
        proxy.arm_late(b"late-key", delay_s=3)
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=SOCKET_WAIT_S) as conn:
            conn.sendall(command("INCR", "late-key"))
            assert answer(conn) == b""
        assert unix_redis.get("late-key") is None, "the request must not have been forwarded yet"
        wait_for(lambda: unix_redis.get("late-key") == b"1", SOCKET_WAIT_S, "the late request to be executed")
        wait_for(lambda: proxy.acted == 1, SOCKET_WAIT_S, "the proxy to see its answer")
