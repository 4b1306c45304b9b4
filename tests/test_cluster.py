"""Issuance state on a real 3-primary Redis Cluster; RQ stays on the suite's standalone Redis."""

from __future__ import annotations

import inspect
import re

import pytest
import redis
import redis_lock
from flask import Flask
from redis.cluster import key_slot

from app.extensions import clients
from strategies import Outcome, keys, state
from support.redis_servers import Cluster
from tests.helpers import bearer, make_members

TAG = re.compile(rb"\{(\d+)\}")
BROKER_MARKERS = {"drain_enqueued"}  # builders in strategies/keys.py of keys that live on REDIS_URL
MEMBER_KEYS = {"member_pending"}  # builders keyed by a member, written outside the script
# Sets written outside any script, across coupons: they need no tag.
UNTAGGED = {keys.COUPON_REGISTRY.encode(), keys.DRAIN_DUE.encode(), keys.DRAIN_ROWS.encode()}
LOCK_NAMES = {"issue_lock", "drain_lock"}  # python-redis-lock makes two keys of each name


def coupon_keys(client: object, coupon_id: int) -> list[str]:
    """Every key strategies/keys.py builds for ``coupon_id`` on the issuance side, locks as python-redis-lock
    names them; a key added there later is checked without a change here."""
    names = []
    for name, build in inspect.getmembers(keys, inspect.isfunction):
        if build.__module__ != keys.__name__ or name in BROKER_MARKERS | MEMBER_KEYS:
            continue
        if name in LOCK_NAMES:
            lock = redis_lock.Lock(client, build(coupon_id), strict=False)
            names += [lock._name, lock._signal]
        else:
            names.append(build(coupon_id))
    return names


@pytest.mark.parametrize("coupon_id", [1, 7, 42, 1000, 2**62, 2**63 - 1])
def test_every_key_of_one_coupon_hashes_to_one_slot(cluster: Cluster, coupon_id: int) -> None:
    client = cluster.client()
    try:
        names = coupon_keys(client, coupon_id)
        assert keys.queue(coupon_id) == f"issuable_coupon_queue:{{{coupon_id}}}"  # the contract's name
        assert {keys.coupon(coupon_id), keys.winners(coupon_id), f"lock:{keys.drain_lock(coupon_id)}"} <= set(names)
        assert all(f"{{{coupon_id}}}" in name for name in names), names
        slots = {key_slot(name.encode()) for name in names}
        assert len(slots) == 1, {name: key_slot(name.encode()) for name in names}
        # The server agrees with the client's CRC16.
        with redis.Redis(port=cluster.ports[0]) as node:
            assert {node.cluster("keyslot", name) for name in names} == slots
    finally:
        client.close()


@pytest.mark.parametrize("strategy", ["lock", "lua"])
def test_what_an_issuance_writes_stays_on_its_coupons_node(cluster_app: Flask, cluster: Cluster, strategy: str) -> None:
    """Look at the keys actually written, not at keys.py: one node per coupon, nothing on the broker."""
    members = make_members(cluster_app, 3)
    ((_, seller_token),) = make_members(cluster_app, 1, role="seller", prefix="seller")
    web = cluster_app.test_client()
    coupon_ids = [
        web.post("/coupons", json={"name": f"c{i}", "quantity": 2}, headers=bearer(seller_token)).json["id"]
        for i in range(6)
    ]
    for coupon_id in coupon_ids:
        answers = [web.post(f"/coupons/{coupon_id}/download", headers=bearer(t)).status_code for _, t in members]
        assert sorted(answers) == sorted([201 if strategy == "lock" else 202] * 2 + [410])

    written = cluster.keys()
    nodes_of: dict[int, set[int]] = {}
    for name, port in written.items():
        if name in UNTAGGED or name.startswith(keys.member_pending(0)[:-1].encode()):
            continue
        tag = TAG.search(name)
        assert tag, f"{name!r} carries no hash tag"
        nodes_of.setdefault(int(tag.group(1)), set()).add(port)
    assert set(nodes_of) == set(coupon_ids)
    assert all(len(ports) == 1 for ports in nodes_of.values()), nodes_of
    assert len({port for ports in nodes_of.values() for port in ports}) > 1  # six coupons, spread over nodes
    with cluster_app.app_context():
        broker_keys = clients().broker.keys("*")
    assert not [k for k in broker_keys if TAG.search(k) or k in UNTAGGED], broker_keys


def test_script_survives_a_script_flush(cluster_app: Flask, cluster: Cluster) -> None:
    """register_script on a RedisCluster: a node that lost the script gets it again (NOSCRIPT, reload)."""
    with cluster_app.app_context():
        client, strategy = clients().state_redis, clients().strategy
        state.register(client, 5, "flushed", 3, 0, 0)
        assert strategy.issue(5, 1) is Outcome.PENDING
        for port in cluster.ports:
            with redis.Redis(port=port) as node:
                node.script_flush()
        assert strategy.issue(5, 2) is Outcome.PENDING
        assert strategy.issue(5, 2) is Outcome.ALREADY_ISSUED


def test_pending_coupons_on_many_nodes(cluster_app: Flask, cluster: Cluster) -> None:
    """GET /members/me/coupons reads the queues of coupons in many slots in one cluster pipeline."""
    ((member_id, token),) = make_members(cluster_app, 1)
    with cluster_app.app_context():
        client = clients().state_redis
        coupon_ids = list(range(1, 13))
        for coupon_id in coupon_ids:
            state.register(client, coupon_id, f"c{coupon_id}", 5, 0, 0)
        owners = {client.get_node_from_key(keys.queue(c)).port for c in coupon_ids}
        assert len(owners) > 1
        for coupon_id in coupon_ids[::2]:
            assert clients().strategy.issue(coupon_id, member_id) is Outcome.PENDING
    listed = cluster_app.test_client().get("/members/me/coupons", headers=bearer(token)).json
    assert sorted((c["coupon_id"], c["status"]) for c in listed) == [(c, "pending") for c in coupon_ids[::2]]
