"""A rush through real gunicorn: many members, several requests each, released together; on Redis or a cluster."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa
from flask import Flask

from app.extensions import clients, db
from app.models import MemberCoupon
from strategies import keys
from support.procs import Proc, start_gunicorn, start_module, wait_for
from support.redis_servers import Cluster
from support.rush import Rush
from tests.helpers import bearer, make_members

QUANTITY = 40
MEMBERS = 150
TRIES = 3
THREADS = 48
TAG = re.compile(rb"\{(\d+)\}")  # a coupon's hash tag in a key name


def rush(bases: list[str], coupon_id: int, members: list[tuple[int, str]]) -> list[tuple[int, int, str | None]]:
    """Every member asks TRIES times, each try on the next server; THREADS clients start at one instant."""
    answers = Rush(bases, coupon_id, members, threads=THREADS, tries=TRIES).start().join()
    return [(a.member_id, a.status, a.error) for a in answers]


def persisted(app: Flask, coupon_id: int) -> list[int]:
    with app.app_context():
        return list(db.session.scalars(sa.select(MemberCoupon.member_id).where(MemberCoupon.coupon_id == coupon_id)))


def check_rush(
    app: Flask, coupon_id: int, results: list[tuple[int, int, str | None]], strategy: str, logs: str
) -> None:
    """Every guarantee after a rush: exactly QUANTITY winners, nobody twice, one row per 2xx, no 5xx."""
    statuses = Counter(status for _, status, _ in results)
    assert len(results) == MEMBERS * TRIES
    assert not [r for r in results if r[1] >= 500 or r[1] == 0], logs  # no 5xx, no request left unanswered
    won = [m for m, status, _ in results if status in (201, 202)]
    assert statuses[201 if strategy == "lock" else 202] == QUANTITY  # no oversell, no undersell
    assert len(set(won)) == QUANTITY  # nobody twice
    refusals = Counter(error for _, status, error in results if status >= 400)
    assert set(refusals) <= {"already_issued", "sold_out"}, refusals
    assert refusals["sold_out"] > 0

    wait_for(lambda: len(persisted(app, coupon_id)) == QUANTITY, 30, "every winner persisted")
    rows = persisted(app, coupon_id)
    assert sorted(rows) == sorted(won)  # every 2xx is exactly one row; no 4xx is
    with app.app_context():
        issuance = clients().state_redis
        assert int(issuance.hget(keys.coupon(coupon_id), "stock")) == 0
        wait_for(lambda: issuance.zcard(keys.queue(coupon_id)) == 0, 10, "the queue to empty")


def run_rush(
    app: Flask,
    env: dict,
    tmp_path: Path,
    strategy: str,
    instances: int = 1,
    drain_workers: int = 1,
    web_workers: int = 2,
) -> None:
    """Start the service under ``env`` (``instances`` gunicorns; for lua the drain workers and the
    scheduler), rush one coupon across the instances and check every guarantee; stop it all."""
    ((_, seller_token),) = make_members(app, 1, role="seller", prefix="seller")
    members = make_members(app, MEMBERS)
    procs: list[Proc] = []
    try:
        bases = []
        for i in range(instances):
            server, base = start_gunicorn(env, tmp_path / f"gunicorn{i}.log", workers=web_workers)
            procs.append(server)
            bases.append(base)
        if strategy == "lua":
            procs += [start_module("jobs.worker", env, tmp_path / f"worker{i}.log") for i in range(drain_workers)]
            procs.append(start_module("jobs.scheduler", env, tmp_path / "scheduler.log"))
        coupon = requests.post(
            f"{bases[0]}/coupons", json={"name": "rush", "quantity": QUANTITY}, headers=bearer(seller_token), timeout=10
        ).json()
        results = rush(bases, coupon["id"], members)
        check_rush(app, coupon["id"], results, strategy, "\n".join(p.output()[-2000:] for p in procs))
    finally:
        for proc in procs:
            proc.stop()


@pytest.mark.parametrize("strategy", ["lock", "lua"])
def test_rush_through_gunicorn(app: Flask, process_env: dict, tmp_path: Path, strategy: str) -> None:
    run_rush(app, dict(process_env, ISSUE_STRATEGY=strategy), tmp_path, strategy)


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["lock", "lua"])
def test_rush_through_gunicorn_on_cluster(
    cluster_app: Flask, cluster_env: dict, cluster: Cluster, tmp_path: Path, strategy: str
) -> None:
    """The same rush and checks, with REDIS_CLUSTER_URL set for every process."""
    run_rush(cluster_app, dict(cluster_env, ISSUE_STRATEGY=strategy), tmp_path, strategy)
    assert any(name.startswith(b"coupon:{") for name in cluster.keys())
    with cluster_app.app_context():
        assert not [k for k in clients().broker.keys("*") if TAG.search(k)]


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["lock", "lua"])
def test_several_instances_and_workers_keep_every_guarantee(
    cluster_app: Flask, cluster_env: dict[str, str], tmp_path: Path, strategy: str
) -> None:
    """Three gunicorns on one cluster, two drain workers and the scheduler; each member's tries hit
    different instances. Exactly QUANTITY winners, nobody twice, one row per 2xx, no 5xx."""
    env = dict(cluster_env, ISSUE_STRATEGY=strategy)
    run_rush(cluster_app, env, tmp_path, strategy, instances=3, drain_workers=2, web_workers=1)
