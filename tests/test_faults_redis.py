"""Redis is killed with kill -9 in the middle of a lua rush and restarted from its append-only file.

Every member who got 202 is still a winner afterwards, in Redis and, once drained, in the
database; while Redis is down requests answer 503 quickly and leave no row. A private
redis-server (``--appendonly yes --appendfsync always``) is the one killed, never the machine's.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from flask import Flask

from app import create_app
from app.extensions import clients, db
from strategies import keys
from support.procs import Processes, start_service, wait_for
from support.queue import fill_queue
from support.redis_servers import RedisServer
from support.rush import Rush, during, server_errors, statuses, won
from tests import services as svc
from tests.faults import wait_drained, warm_up
from tests.helpers import app_config, bearer, make_members, new_coupon

OUTAGE_BOUND_S = 5.0  # the longest a request may take to answer 503 while Redis is down


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own that writes and fsyncs every write before it answers."""
    server = RedisServer(tmp_path / "redis", appendfsync="always").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_app(services: svc.Services, migrated: None, redis_server: RedisServer) -> Iterator[Flask]:
    """An app on the suite's database (clean tables) and the private Redis."""
    app = create_app(app_config(services, "lua", REDIS_URL=redis_server.url))
    with app.app_context():
        svc.reset(db.engine, clients().broker)
    yield app
    with app.app_context():
        db.engine.dispose()


def timed_post(url: str, token: str) -> tuple[int, str | None, float]:
    """One download: status, error code, seconds."""
    started = time.monotonic()
    resp = requests.post(url, headers=bearer(token), timeout=30)
    return resp.status_code, resp.json().get("error"), time.monotonic() - started


@pytest.mark.slow
def test_kill9_redis_mid_rush_loses_no_winner(
    redis_app: Flask, redis_server: RedisServer, process_env: dict, tmp_path: Path
) -> None:
    app, quantity = redis_app, 600
    env = dict(process_env, REDIS_URL=redis_server.url, ISSUE_STRATEGY="lua", DRAIN_BATCH="20")
    ((_, seller), (_, warm)) = make_members(app, 1, role="seller", prefix="seller") + make_members(app, 1, prefix="w")
    members = make_members(app, 900)
    probes = make_members(app, 10, prefix="probe")  # ask only while Redis is down
    with app.app_context():
        engine = db.engine
    client = redis_server.client()
    phase: dict[str, float] = {}
    with Processes() as procs:
        base, drain = start_service(procs, env, tmp_path, drain=True)
        warm_up(base, seller, warm, engine)
        coupon_id = new_coupon(base, seller, quantity=quantity)["id"]
        rush = Rush(base, coupon_id, members, threads=24, pause_s=0.1, keep_going=lambda: "back" not in phase)
        rush.start()
        wait_for(lambda: rush.count(lambda a: a.status == 202) >= 150, 60, "150 winners")

        redis_server.kill9()
        phase["down"] = time.monotonic()
        probed = [timed_post(f"{base}/coupons/{coupon_id}/download", token) for _, token in probes]
        health = requests.get(f"{base}/healthz", timeout=OUTAGE_BOUND_S)
        wait_for(lambda: rush.count(lambda a: a.started > phase["down"] + 0.5) >= 30, 30, "requests in the outage")
        phase["restart"] = time.monotonic()
        redis_server.start()  # same port and folder: it replays the append-only file
        after_restart = {int(m) for m in client.smembers(keys.winners(coupon_id))}
        wait_for(lambda: requests.get(f"{base}/healthz", timeout=5).status_code == 200, 30, "/healthz to recover")
        phase["back"] = time.monotonic()
        answers = rush.join()
        final = wait_drained(engine, client, coupon_id, len(set(won(answers))), 60)
        final = wait_drained(engine, client, coupon_id, len(final.winners), 60)  # a 503 may have won too
        alive = [p.popen.poll() is None for p in drain]

    wins, down = won(answers), during(answers, phase["down"] + 0.5, phase["restart"])
    before_crash = {a.member_id for a in answers if a.status == 202 and a.started + a.seconds < phase["restart"]}
    unknown = {a.member_id for a in answers if a.status == 503}
    print(
        f"\nredis kill -9 (appendfsync always): {len(answers)} requests {statuses(answers)}; during the outage "
        f"{len(down)} answered {statuses(down)}, slowest {max((a.seconds for a in down), default=0):.3f} s; probes "
        f"{Counter(p[0] for p in probed)}, slowest {max(p[2] for p in probed):.3f} s; 202s {len(wins)} "
        f"({len(before_crash)} before the restart), winners {len(final.winners)}, rows {len(final.rows)}, "
        f"duplicates {final.duplicates}; worker, scheduler alive: {alive}"
    )
    assert len(before_crash) >= 150 and before_crash <= after_restart  # every 202 survived: fsynced before answered
    assert all(status == 503 and error == "unavailable" and s < OUTAGE_BOUND_S for status, error, s in probed)
    assert health.status_code == 503 and health.json()["redis"] == "down"
    assert down and all(a.status == 503 and a.error == "unavailable" for a in down)
    assert max(a.seconds for a in down) < OUTAGE_BOUND_S  # no hang
    assert server_errors(answers, allowed=(503,)) == []
    assert all(alive), "the worker or the scheduler did not survive the outage"
    assert len(wins) == len(set(wins)) and final.duplicates == 0
    assert set(wins) <= final.winners and final.winners - set(wins) <= unknown  # a 503 may have won
    assert sorted(final.rows) == sorted(final.winners) and final.queued == 0  # nothing lost in the drain either
    assert len(final.winners) == quantity - final.stock
    assert not final.winners & {m for m, _ in probes}  # a request Redis never saw wins nothing


@pytest.mark.parametrize(("appendfsync", "kept"), [("always", True), ("everysec", True), (None, False)])
def test_what_a_kill9_of_redis_keeps(tmp_path: Path, appendfsync: str | None, kept: bool) -> None:
    """The oracle the rush relies on: with an append-only file the winners survive a kill -9, without one none do.

    everysec keeps them too: a kill -9 of the process loses nothing already written to the kernel;
    only an operating-system crash loses its last second.
    """
    server = RedisServer(tmp_path / "redis", appendfsync=appendfsync).start()
    try:
        fill_queue(server.client(), 1, 500)
        server.kill9()
        server.start()
        winners = server.client().scard(keys.winners(1))
    finally:
        server.stop()
    assert winners == (500 if kept else 0)
