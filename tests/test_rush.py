"""A rush through real gunicorn: many members, several requests each, released together."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa
from flask import Flask

from app.extensions import clients, db
from app.models import MemberCoupon
from experiments.procs import start_gunicorn, start_module, wait_for
from strategies import keys
from tests.conftest import bearer, make_members

QUANTITY = 40
MEMBERS = 150
TRIES = 3
THREADS = 48


def rush(base: str, coupon_id: int, members: list[tuple[int, str]]) -> list[tuple[int, int, str | None]]:
    """Every member asks TRIES times; THREADS clients start at one instant. (member, status, error) each."""
    results: list[tuple[int, int, str | None]] = []
    lock = threading.Lock()
    barrier = threading.Barrier(THREADS)

    def client(share: list[tuple[int, str]]) -> None:
        session = requests.Session()
        mine = []
        barrier.wait()
        for _ in range(TRIES):
            for member_id, token in share:
                resp = session.post(f"{base}/coupons/{coupon_id}/download", headers=bearer(token), timeout=30)
                error = None if resp.status_code < 300 else resp.json().get("error")
                mine.append((member_id, resp.status_code, error))
        with lock:
            results.extend(mine)

    threads = [threading.Thread(target=client, args=(members[i::THREADS],)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def persisted(app: Flask, coupon_id: int) -> list[int]:
    with app.app_context():
        return list(db.session.scalars(sa.select(MemberCoupon.member_id).where(MemberCoupon.coupon_id == coupon_id)))


@pytest.mark.parametrize("strategy", ["lock", "lua"])
def test_rush_through_gunicorn(app: Flask, process_env: dict, tmp_path: Path, strategy: str) -> None:
    env = dict(process_env, ISSUE_STRATEGY=strategy)
    ((_, seller_token),) = make_members(app, 1, role="seller", prefix="seller")
    members = make_members(app, MEMBERS)
    server, base = start_gunicorn(env, tmp_path / "gunicorn.log")
    background = (
        [
            start_module("jobs.worker", env, tmp_path / "worker.log"),
            start_module("jobs.scheduler", env, tmp_path / "scheduler.log"),
        ]
        if strategy == "lua"
        else []
    )
    try:
        coupon = requests.post(
            f"{base}/coupons", json={"name": "rush", "quantity": QUANTITY}, headers=bearer(seller_token), timeout=10
        ).json()
        results = rush(base, coupon["id"], members)

        statuses = Counter(status for _, status, _ in results)
        assert len(results) == MEMBERS * TRIES
        assert not [r for r in results if r[1] >= 500], server.output()[-2000:]
        won = [m for m, status, _ in results if status in (201, 202)]
        assert statuses[201 if strategy == "lock" else 202] == QUANTITY  # no oversell, no undersell
        assert len(set(won)) == QUANTITY  # nobody twice
        refusals = Counter(error for _, status, error in results if status >= 400)
        assert set(refusals) <= {"already_issued", "sold_out"}, refusals
        assert refusals["sold_out"] > 0

        wait_for(lambda: len(persisted(app, coupon["id"])) == QUANTITY, 30, "every winner persisted")
        rows = persisted(app, coupon["id"])
        assert sorted(rows) == sorted(won)  # every 2xx is exactly one row; no 4xx is
        with app.app_context():
            issuance = clients().issuance
            assert int(issuance.hget(keys.coupon(coupon["id"]), "stock")) == 0
            wait_for(lambda: issuance.zcard(keys.queue(coupon["id"])) == 0, 10, "the queue to empty")
    finally:
        for proc in [server, *background]:
            proc.stop()
