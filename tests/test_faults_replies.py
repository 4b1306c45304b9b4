"""Replies lost for real between the API and Redis or MariaDB: no coupon without a row, no unit lost or doubled."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from flask import Flask
from redis.connection import parse_url
from sqlalchemy.engine import make_url

from app import create_app
from app.extensions import clients, db
from strategies import keys, scripts, state
from support.procs import wait_for
from support.proxy import Proxy
from tests.helpers import app_config, bearer, make_members, new_coupon, rows_of

# A MySQL COM_QUERY (command byte 3) of exactly COMMIT; "SET AUTOCOMMIT = 0" at connect must not match.
COMMIT_QUERY = b"\x03COMMIT"


def sha(name: str) -> bytes:
    """The SHA1 a script is called by (EVALSHA), as it crosses the wire."""
    return hashlib.sha1(scripts.source(name).encode()).hexdigest().encode()


@pytest.fixture
def redis_proxy(services) -> Iterator[Proxy]:
    """A proxy in front of the suite's Redis, on its TCP port or its unix socket (the embedded one)."""
    parts = parse_url(services.redis_url)
    upstream = parts["path"] if "path" in parts else (parts.get("host", "localhost"), parts.get("port", 6379))
    with Proxy(upstream) as proxy:
        yield proxy


def proxied_app(services, strategy: str, **extra: object) -> Flask:
    """An app of ``strategy`` with the given settings (a URL through a proxy)."""
    return create_app(app_config(services, strategy, **extra))


def redis_through(services, proxy: Proxy) -> str:
    """The suite's Redis URL (its db included), through ``proxy``."""
    return f"redis://127.0.0.1:{proxy.port}/{parse_url(services.redis_url).get('db', 0)}"


def close(app: Flask) -> None:
    """Give back the app's connections."""
    with app.app_context():
        clients().broker.close()
        db.engine.dispose()


@pytest.mark.parametrize(("lost", "status"), [(1, 201), (2, 503)])
def test_registration_whose_reply_is_lost_keeps_row_and_state(
    app: Flask, services, seller, redis_proxy: Proxy, lost: int, status: int
) -> None:
    """Redis loads the coupon but the API never hears so: the row stays, the retry never resets the stock."""
    with app.app_context():
        direct = clients().state_redis
        direct.script_load(scripts.source("register"))  # loaded, so the lost EVALSHA really ran
    shop = proxied_app(services, "lua", REDIS_URL=redis_through(services, redis_proxy))
    try:
        redis_proxy.arm_drop_reply(sha("register"), times=lost)
        resp = shop.test_client().post("/coupons", json={"name": "half", "quantity": 7}, headers=bearer(seller[1]))
    finally:
        close(shop)
    assert resp.status_code == status, resp.data
    assert redis_proxy.acted == lost
    with app.app_context():
        coupon_ids = db.session.scalars(sa.text("SELECT id FROM coupon WHERE name = 'half'")).all()
        assert len(coupon_ids) == 1, "the coupon's row must stay"
        found = state.read(direct, coupon_ids[0])
    assert found is not None and found.stock == found.quantity == 7


def test_register_never_overwrites_state(app: Flask) -> None:
    with app.app_context():
        client = clients().state_redis
        assert state.register(client, 5, "first", 10, 0, 0) is True
        client.hincrby(keys.coupon(5), "stock", -4)  # four winners
        assert state.register(client, 5, "again", 10, 0, 0) is False
        found = state.read(client, 5)
    assert found is not None and (found.name, found.stock) == ("first", 6)


@pytest.mark.parametrize("strategy", ["lock"])
def test_lost_take_stock_reply_is_settled_by_the_next_holder(
    app: Flask, services, seller, redis_proxy: Proxy, strategy: str
) -> None:
    """A's unit is taken but A hears nothing (503); B's download completes A's row: no unit stranded."""
    (a, token_a), (b, token_b) = make_members(app, 2)
    coupon_id = new_coupon(app, seller[1], quantity=5)["id"]
    with app.app_context():
        direct = clients().state_redis
        direct.script_load(scripts.source("take_stock"))
    shop = proxied_app(services, strategy, REDIS_URL=redis_through(services, redis_proxy))
    try:
        redis_proxy.arm_drop_reply(sha("take_stock"))
        first = shop.test_client().post(f"/coupons/{coupon_id}/download", headers=bearer(token_a))
        assert (first.status_code, first.json["error"]) == (503, "unavailable")
        assert redis_proxy.acted == 1
        second = shop.test_client().post(f"/coupons/{coupon_id}/download", headers=bearer(token_b))
        assert second.status_code == 201, second.data
    finally:
        close(shop)
    assert rows_of(app, coupon_id) == sorted([a, b])
    assert state.stock(direct, coupon_id) == 3
    assert not direct.smembers(keys.unsettled(coupon_id))


@pytest.fixture
def mariadb_proxy(services) -> Iterator[Proxy]:
    """A proxy in front of the suite's MariaDB."""
    url = make_url(services.database_url)
    if url.get_backend_name() not in ("mysql", "mariadb"):
        pytest.skip("a late COMMIT needs MariaDB")
    with Proxy((url.host or "127.0.0.1", url.port or 3306)) as proxy:
        yield proxy


@pytest.mark.parametrize("strategy", ["lock"])
def test_commit_that_lands_late_is_never_doubled(
    app: Flask, services, seller, mariadb_proxy: Proxy, strategy: str
) -> None:
    """A's COMMIT reaches MariaDB 1.5 s after A's connection broke: one row, the unit never handed out twice."""
    (a, token_a), (_, token_b) = make_members(app, 2)
    coupon_id = new_coupon(app, seller[1], quantity=1)["id"]
    through = make_url(services.database_url).set(host="127.0.0.1", port=mariadb_proxy.port)
    shop = proxied_app(services, strategy, SQLALCHEMY_DATABASE_URI=through.render_as_string(hide_password=False))
    try:
        mariadb_proxy.arm_late(COMMIT_QUERY, delay_s=1.5)
        first = shop.test_client().post(f"/coupons/{coupon_id}/download", headers=bearer(token_a))
        assert first.status_code in (201, 503), first.data
        second = shop.test_client().post(f"/coupons/{coupon_id}/download", headers=bearer(token_b))
        assert second.status_code in (410, 503), second.data
        wait_for(lambda: mariadb_proxy.acted == 1, 10, "A's late COMMIT to reach MariaDB and be answered")
    finally:
        close(shop)
    assert rows_of(app, coupon_id) == [a]
    with app.app_context():
        assert state.stock(clients().state_redis, coupon_id) == 0
