"""The injected network delay: the RTT a PING and a SELECT 1 really take, idle and busy; bytes whole and in order."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from support.delay import counts_at, read_stats
from support.procs import ROOT
from tests import services as svc

SAMPLES = 400
ATTEMPTS = 3  # a shared machine's other load can swamp one measurement; a broken delay fails all three
BUSY_REDIS, BUSY_DATABASE = 150, 50  # 200 busy connections; MariaDB allows 151 in all

MEASURE = r"""
import json, os, statistics, sys, time
import pymysql, redis, sqlalchemy as sa
from support import delay

rtt_ms, samples, redis_url, db_url = float(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
u = sa.engine.make_url(db_url)
def connect():
    return pymysql.connect(host=u.host, port=u.port or 3306, user=u.username, password=u.password or "",
                           database=u.database)
delay.install(0)
r, db = redis.Redis.from_url(redis_url), connect()

def select_one():
    with db.cursor() as c:
        c.execute("SELECT 1"); assert c.fetchone() == (1,)

# Each delayed round trip right after a direct one: the load around them drifts, a pair's two do not.
diffs = {"redis": [], "database": []}
for _ in range(samples):
    for tier, call in (("redis", r.ping), ("database", select_one)):
        took = []
        for rtt in (0, rtt_ms):
            delay.set_rtt(rtt)
            t = time.perf_counter(); call(); took.append(time.perf_counter() - t)
        diffs[tier].append(took[1] - took[0])
print(json.dumps({tier: statistics.median(v) * 1000 for tier, v in diffs.items()} | {"counts": vars(delay.counts())}))
"""

BUSY = r"""
import sys, threading, time
import pymysql, redis, sqlalchemy as sa
from support import delay

rtt_ms, redis_n, db_n = float(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
redis_url, db_url = sys.argv[4], sys.argv[5]
delay.install(rtt_ms)
u = sa.engine.make_url(db_url)
ready = threading.Barrier(redis_n + db_n + 1)

def redis_work():
    r = redis.Redis.from_url(redis_url); r.ping(); ready.wait()
    while True:
        r.incr("delay-test-busy"); r.get("delay-test-busy")

def db_work():
    db = pymysql.connect(host=u.host, port=u.port or 3306, user=u.username, password=u.password or "",
                         database=u.database, autocommit=True)
    ready.wait()
    while True:
        with db.cursor() as c:
            c.execute("SELECT SUM(n) FROM (SELECT 1 AS n UNION ALL SELECT 2) AS t"); c.fetchall()

for target, n in ((redis_work, redis_n), (db_work, db_n)):
    for _ in range(n):
        threading.Thread(target=target, daemon=True).start()
ready.wait()
print("busy", flush=True)
time.sleep(600)
"""


def _run(script: str, *args: object) -> list[str]:
    return [sys.executable, "-c", script, *(str(a) for a in args)]


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT))


def _measure(services: svc.Services, rtt_ms: float) -> dict[str, Any]:
    done = subprocess.run(
        _run(MEASURE, rtt_ms, SAMPLES, services.redis_url, services.database_url),
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout.splitlines()[-1]))


def _mysql(services: svc.Services) -> None:
    if not services.database_url.startswith("mysql"):
        pytest.skip("the database round trip is PyMySQL's: needs MariaDB")


def _within(got: dict[str, Any], rtt_ms: float) -> bool:
    return all(abs(got[tier] - rtt_ms) <= 0.2 * rtt_ms for tier in ("redis", "database"))


def _measure_until_within(services: svc.Services, rtt_ms: float) -> list[dict[str, Any]]:
    """Up to ATTEMPTS measurements, stopping at the first within 20% of ``rtt_ms``."""
    tries: list[dict[str, Any]] = []
    while len(tries) < ATTEMPTS and not (tries and _within(tries[-1], rtt_ms)):
        tries.append(_measure(services, rtt_ms))
    return tries


@pytest.mark.parametrize("rtt_ms", [0.5, 1.0])
def test_a_ping_and_a_select_take_the_rtt_asked_for(services: svc.Services, migrated: None, rtt_ms: float) -> None:
    _mysql(services)
    tries = _measure_until_within(services, rtt_ms)
    assert _within(tries[-1], rtt_ms), (os.getloadavg(), tries)
    assert tries[-1]["counts"]["pauses"] == 2 * SAMPLES  # one pause a delayed round trip, two tiers


@pytest.mark.parametrize("rtt_ms", [0.5, 1.0])
def test_the_rtt_holds_while_200_connections_are_busy(services: svc.Services, migrated: None, rtt_ms: float) -> None:
    _mysql(services)
    busy = subprocess.Popen(
        _run(BUSY, rtt_ms, BUSY_REDIS, BUSY_DATABASE, services.redis_url, services.database_url),
        cwd=ROOT,
        env=_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert busy.stdout is not None and busy.stdout.readline().strip() == "busy"
        tries = _measure_until_within(services, rtt_ms)
        assert busy.poll() is None, "the busy connections stopped before the measurement ended"
    finally:
        busy.kill()
        busy.wait(10)
    assert _within(tries[-1], rtt_ms), (os.getloadavg(), tries)


WHOLE = r"""
import json, os, sys
import pymysql, redis, sqlalchemy as sa
from support import delay

delay.install(0.5, sys.argv[3])
r = redis.Redis.from_url(sys.argv[1])
u = sa.engine.make_url(sys.argv[2])
db = pymysql.connect(host=u.host, port=u.port or 3306, user=u.username, password=u.password or "", database=u.database)
r.ping()  # connected: the handshake's round trips are behind us
before = delay.counts()
blob = os.urandom(1 << 20)
r.set("delay-test-blob", blob)
whole = r.get("delay-test-blob") == blob
p = r.pipeline(transaction=False)
r.delete("delay-test-seq")
for _ in range(1000):
    p.incr("delay-test-seq")
in_order = p.execute() == list(range(1, 1001))
with db.cursor() as c:
    c.execute("SELECT REPEAT('x', 3000000), 7")
    big = c.fetchone()
    rows = []
    for n in range(200):
        c.execute("SELECT %s", (n,)); rows.append(c.fetchone()[0])
r.delete("delay-test-blob", "delay-test-seq")
made = delay.counts().minus(before)
import time; time.sleep(0.6)  # one more flush of the counts
print(json.dumps({"whole": whole, "in_order": in_order, "big": big[0] == "x" * 3000000 and big[1] == 7,
                  "rows": rows == list(range(200)), "counts": vars(made)}))
"""


def test_bytes_arrive_whole_and_in_order_and_every_round_trip_is_counted(
    services: svc.Services, migrated: None, tmp_path: Path
) -> None:
    _mysql(services)
    done = subprocess.run(
        _run(WHOLE, services.redis_url, services.database_url, tmp_path),
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout.splitlines()[-1])
    assert got["whole"] and got["in_order"] and got["big"] and got["rows"], got
    # SET, GET, DEL, the pipeline's one round trip, the last DEL.
    assert got["counts"]["redis"] == 5, got
    assert got["counts"]["database"] == 1 + 200, got
    stats = read_stats(tmp_path)
    assert len(stats) == 1
    last = counts_at(stats, float("inf"))
    assert (last.redis, last.database) >= (5, 201)  # the connections' handshakes included
    assert last.slept_s >= 206 * 0.0005 * 0.8  # every round trip waited about its RTT
    assert counts_at(stats, 0).redis == 0  # before the first line: nothing yet
