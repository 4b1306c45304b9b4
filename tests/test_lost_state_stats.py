"""A coupon whose Redis state is lost: its stats answer 503 as its view does, never made-up counts."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient

from app.extensions import clients
from jobs.drain import drain_coupon
from tests.helpers import assert_error, bearer, make_members


def test_stats_of_a_coupon_redis_lost_answer_503(app: Flask, client: FlaskClient, seller: tuple[int, str]) -> None:
    _, seller_token = seller
    created = client.post("/coupons", json={"name": "c", "quantity": 5}, headers=bearer(seller_token))
    assert created.status_code == 201, created.data
    coupon_id = created.json["id"]
    for _, token in make_members(app, 2):
        assert client.post(f"/coupons/{coupon_id}/download", headers=bearer(token)).status_code == 202
    with app.app_context():
        assert drain_coupon(coupon_id) == 2
    stats = client.get(f"/coupons/{coupon_id}/stats", headers=bearer(seller_token))
    assert stats.json == {"quantity": 5, "reserved": 2, "persisted": 2, "pending": 0}
    with app.app_context():
        clients().broker.flushdb()  # Redis loses its data (a restart without persistence)
    assert_error(client.get(f"/coupons/{coupon_id}", headers=bearer(seller_token)), 503, "unavailable")
    assert_error(client.get(f"/coupons/{coupon_id}/stats", headers=bearer(seller_token)), 503, "unavailable")
