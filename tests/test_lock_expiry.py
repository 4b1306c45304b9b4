"""The lock strategy under a database slower than the lock's expiry: holders overlap, guarantees hold."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from app.extensions import clients, db
from strategies import Outcome, Unavailable, keys, state
from strategies.lock import LockStrategy
from support.procs import wait_for
from tests.helpers import rows_of

EXPIRE_S = 1


@contextmanager
def slow_database(engine: sa.Engine) -> Iterator[None]:
    """Block every write to member_coupon (and, on MariaDB, reads too) until the block ends."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("LOCK TABLES member_coupon WRITE")
        try:
            yield
        finally:
            if engine.dialect.name == "sqlite":
                conn.exec_driver_sql("ROLLBACK")
            else:
                conn.exec_driver_sql("UNLOCK TABLES")


def staggered_requests(
    strategy: LockStrategy, client: Any, coupon_id: int, members: list[int]
) -> tuple[list[Outcome | str], list[threading.Thread]]:
    """One request per member, each started once the previous holder's lock key has expired."""
    outcomes: list[Outcome | str] = [""] * len(members)
    lock_key = f"lock:{keys.issue_lock(coupon_id)}"  # python-redis-lock's name for it

    def ask(i: int, member_id: int) -> None:
        try:
            outcomes[i] = strategy.issue(coupon_id, member_id)
        except Unavailable:
            outcomes[i] = "unavailable"

    threads = [threading.Thread(target=ask, args=(i, m)) for i, m in enumerate(members)]
    for t in threads:
        t.start()
        wait_for(lambda: client.exists(lock_key), 10, "the request to take the lock", every_s=0.01)
        # The point: the next request starts only once this holder's lock has expired, the holder still inside.
        wait_for(lambda: not client.exists(lock_key), EXPIRE_S + 10, "the holder's lock to expire", every_s=0.01)
    return outcomes, threads


@pytest.mark.parametrize(
    ("quantity", "members", "winners", "refusal"),
    [(5, [1, 1, 1], 1, Outcome.ALREADY_ISSUED), (1, [1, 2, 3], 1, Outcome.SOLD_OUT)],
    ids=["same-member", "last-unit"],
)
def test_overlapping_holders(app: Flask, quantity: int, members: list[int], winners: int, refusal: Outcome) -> None:
    with app.app_context():
        client, engine = clients().state_redis, db.engine
        state.register(client, 1, "slow", quantity, 0, 0)
        strategy = LockStrategy(client, engine, lock_expire_s=EXPIRE_S, lock_wait_s=EXPIRE_S)
        with slow_database(engine):
            outcomes, threads = staggered_requests(strategy, client, 1, members)
            # Every request took the lock after its predecessor's expired, and all are still inside.
            assert all(t.is_alive() for t in threads), outcomes
        for t in threads:
            t.join(30)
        tally = Counter(outcomes)
        assert tally[Outcome.ISSUED] == winners, tally
        assert tally[refusal] == len(members) - winners, tally
        assert len(rows_of(engine, 1)) == winners
        assert int(client.hget(keys.coupon(1), "stock")) == quantity - winners
