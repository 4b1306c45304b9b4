"""The database goes away in the middle of a rush (a private mariadbd, killed or stopped, then restarted).

lua: downloads go on answering 202 (the queue buffers the winners), drain jobs fail and RQ records
it, and once the database is back the drain completes with nothing lost. lock: downloads answer
503 quickly while it is down and leave no half state: stock spent in Redis == rows in the database.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa
from flask import Flask
from rq.registry import FailedJobRegistry

from app import create_app
from app.extensions import clients, db
from strategies import Outcome, Unavailable, keys, state
from strategies.lock import LockStrategy
from support.mariadb import MariaDB
from support.procs import Processes, start_service, wait_for
from support.redis_servers import RedisServer
from support.rush import Rush, during, server_errors, statuses, won
from tests import services as svc
from tests.faults import Ledger, private_mariadb, wait_drained, warm_up
from tests.helpers import app_config, make_members, new_coupon

OUTAGE_BOUND_S = 5.0  # the longest a request may take to answer 503 while the database is down


@pytest.fixture(scope="module")
def mariadb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MariaDB]:
    """A mariadbd of this module's own, installed once."""
    server = private_mariadb(tmp_path_factory.mktemp("mariadb")).install().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server of this module's own, so that nothing else running on the machine shares its state."""
    server = RedisServer(tmp_path_factory.mktemp("redis"), appendfsync=None).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def private_app(services: svc.Services, mariadb: MariaDB, redis_server: RedisServer, strategy: str) -> Iterator[Flask]:
    """An app on a fresh, migrated database of the private server, and the private Redis, flushed."""
    from flask_migrate import upgrade

    if not mariadb.answers():  # an earlier test failed while it was down
        mariadb.start()
    name = f"coupon_rush_faults_{strategy}"
    mariadb.create_database(name)
    app = create_app(
        app_config(services, strategy, SQLALCHEMY_DATABASE_URI=mariadb.url(name), REDIS_URL=redis_server.url)
    )
    with app.app_context():
        upgrade()
        clients().broker.flushdb()
    yield app
    with app.app_context():
        db.engine.dispose()


def service_env(app: Flask, process_env: dict[str, str], strategy: str) -> dict[str, str]:
    """The service's processes pointed at the private servers."""
    urls = {"DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"], "REDIS_URL": app.config["REDIS_URL"]}
    return dict(process_env, **urls, ISSUE_STRATEGY=strategy, DRAIN_BATCH="20")


def healthz(base: str) -> tuple[int, dict]:
    """/healthz's status and body; bounded."""
    resp = requests.get(f"{base}/healthz", timeout=OUTAGE_BOUND_S)
    return resp.status_code, resp.json()


def outage(base: str, mariadb: MariaDB, phase: dict[str, float], crash: bool, enough: Callable[[], bool]) -> None:
    """Take the database away mid-rush until ``enough()``, then bring it back; note the times in ``phase``."""
    mariadb.kill9() if crash else mariadb.stop()
    phase["down"] = time.monotonic()
    wait_for(lambda: healthz(base)[0] == 503, 10, "/healthz to answer 503")
    assert healthz(base)[1]["database"] == "down"
    wait_for(enough, 30, "requests during the outage")
    phase["restart"] = time.monotonic()
    mariadb.start()
    wait_for(lambda: healthz(base)[0] == 200, 30, "/healthz to recover (pre_ping, reconnect)")
    phase["back"] = time.monotonic()


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["lua"])
def test_lua_rush_buffers_winners_while_the_database_is_down(
    private_app: Flask, mariadb: MariaDB, process_env: dict, tmp_path: Path
) -> None:
    app, quantity = private_app, 800
    ((_, seller), (_, warm)) = make_members(app, 1, role="seller", prefix="seller") + make_members(app, 1, prefix="w")
    members = make_members(app, 1000)
    with app.app_context():
        engine, client = db.engine, clients().state_redis
    failed = FailedJobRegistry(app.config["DRAIN_QUEUE"], connection=client)
    phase: dict[str, float] = {}
    with Processes() as procs:
        base, _ = start_service(procs, service_env(app, process_env, "lua"), tmp_path, drain=True)
        warm_up(base, seller, warm, engine)
        coupon_id = new_coupon(base, seller, quantity=quantity)["id"]
        rush = Rush(base, coupon_id, members, threads=24, pause_s=0.1, keep_going=lambda: "back" not in phase)
        rush.start()
        wait_for(lambda: len(Ledger.read(engine, client, coupon_id).rows) >= 50, 60, "the drain to persist winners")

        def enough() -> bool:  # drain jobs failed (RQ recorded it), and the queue took winners
            return failed.count > 0 and rush.count(lambda a: a.started > phase["down"] and a.status == 202) >= 100

        outage(base, mariadb, phase, crash=True, enough=enough)
        answers = rush.join()
        wins = won(answers)
        final = wait_drained(engine, client, coupon_id, len(wins), 90)
        failures = failed.count

    down = during(answers, phase["down"], phase["restart"])
    print(
        f"\nlua, database killed: {len(answers)} requests {statuses(answers)}; during the outage {len(down)} "
        f"answered {statuses(down)}; failed drain jobs {failures}; 202s {len(wins)}, rows {len(final.rows)}, "
        f"duplicates {final.duplicates}"
    )
    assert server_errors(answers) == []  # the database is not on the download path
    assert sum(a.status == 202 for a in down) >= 100 and failures > 0
    assert len(wins) == len(set(wins)) == min(quantity, len(members))
    assert final.duplicates == 0 and sorted(final.rows) == sorted(wins)  # nothing lost, nothing twice
    assert final.winners == set(wins) and final.queued == 0


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["lock"])
def test_lock_rush_answers_503_fast_while_the_database_is_down(
    private_app: Flask, mariadb: MariaDB, process_env: dict, tmp_path: Path
) -> None:
    app, quantity = private_app, 300
    ((_, seller),) = make_members(app, 1, role="seller", prefix="seller")
    members = make_members(app, 500)
    with app.app_context():
        engine, client = db.engine, clients().state_redis
    phase: dict[str, float] = {}
    with Processes() as procs:
        base, _ = start_service(procs, service_env(app, process_env, "lock"), tmp_path, drain=False)
        coupon_id = new_coupon(base, seller, quantity=quantity)["id"]
        rush = Rush(base, coupon_id, members, threads=24, pause_s=0.1, keep_going=lambda: "done" not in phase)
        rush.start()
        wait_for(lambda: rush.count(lambda a: a.status == 201) >= 50, 60, "50 coupons issued")

        def asked() -> bool:
            return rush.count(lambda a: a.started > phase["down"] + 0.5) >= 50

        outage(base, mariadb, phase, crash=False, enough=asked)  # mid-rush: a request may be mid-transaction
        # The rush goes on: members who got 503 ask again, until the coupon is sold out.
        wait_for(lambda: int(client.hget(keys.coupon(coupon_id), "stock")) == 0, 60, "the coupon to sell out")
        phase["done"] = time.monotonic()
        answers = rush.join()
        final = Ledger.read(engine, client, coupon_id)

    down = during(answers, phase["down"] + 0.5, phase["restart"])
    issued = won(answers)
    unknown = {a.member_id for a in answers if a.status == 503}
    spent = quantity - final.stock
    print(
        f"\nlock, database stopped: {len(answers)} requests {statuses(answers)}; during the outage {len(down)} "
        f"answered {dict(Counter(a.error for a in down))}, slowest {max((a.seconds for a in down), default=0):.3f} s; "
        f"stock spent {spent}, rows {len(final.rows)}, 201s {len(issued)}, duplicates {final.duplicates}"
    )
    assert down and all(a.status == 503 and a.error == "unavailable" for a in down), statuses(down)
    assert max(a.seconds for a in down) < OUTAGE_BOUND_S
    assert server_errors(answers, allowed=(503,)) == []
    assert final.duplicates == 0
    assert spent == len(final.rows) == quantity  # no stock spent without a row, no row without stock; no undersell
    assert set(issued) <= set(final.rows) and len(issued) == len(set(issued))  # every 201 is a row
    assert set(final.rows) - set(issued) <= unknown  # any other row was a 503 (outcome unknown), never a 4xx


@pytest.mark.parametrize("strategy", ["lock"])
def test_commit_lost_with_the_database_settles_once_it_is_back(
    private_app: Flask, mariadb: MariaDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server dies between the stock decrement and the commit, and cannot be asked whether the row exists.

    The request answers 503 (unknown) and the unit stays spent (never oversell); the next request
    after the database returns settles it by completing the member's row: stock spent == rows.
    """
    with private_app.app_context():
        client, engine = clients().state_redis, db.engine
        state.register(client, 1, "crash", 2, 0, 0)
        strategy = LockStrategy(client, engine, lock_expire_s=5, lock_wait_s=1)
        real_commit = sa.Connection.commit

        def crash_then_commit(self: sa.Connection) -> None:
            mariadb.kill9()
            real_commit(self)

        monkeypatch.setattr(sa.Connection, "commit", crash_then_commit)
        with pytest.raises(Unavailable):
            strategy.issue(1, 41)
        monkeypatch.undo()
        assert int(client.hget(keys.coupon(1), "stock")) == 1  # spent, outcome unknown: never oversell meanwhile
        mariadb.start()
        assert strategy.issue(1, 42) is Outcome.ISSUED  # settles 41 first, then takes the last unit
        assert strategy.issue(1, 43) is Outcome.SOLD_OUT
        final = Ledger.read(engine, client, 1)
        assert sorted(final.rows) == [41, 42] and final.stock == 0


@pytest.mark.parametrize("strategy", ["lua"])
def test_reads_after_the_database_restarted_answer_at_once(
    private_app: Flask, mariadb: MariaDB, process_env: dict, tmp_path: Path
) -> None:
    """A signed-in read asks the database nothing (its revocation check is in memory): a restart does not touch it."""
    app = private_app
    ((_, seller),) = make_members(app, 1, role="seller", prefix="seller")
    ((_, member),) = make_members(app, 1)
    with Processes() as procs:
        base, _ = start_service(procs, service_env(app, process_env, "lua"), tmp_path, drain=False)
        coupon_id = new_coupon(base, seller, quantity=10)["id"]
        auth = {"Authorization": f"Bearer {member}"}

        def reads(count: int) -> list[int]:  # in parallel, so that every worker thread's connection is pooled
            with ThreadPoolExecutor(8) as pool:
                return list(
                    pool.map(
                        lambda _: requests.get(f"{base}/coupons/{coupon_id}", headers=auth).status_code, range(count)
                    )
                )

        assert reads(64) == [200] * 64
        mariadb.kill9()
        mariadb.start()
        assert reads(64) == [200] * 64
