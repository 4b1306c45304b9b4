"""The HTTP API of the contract, in-process, on both strategies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient

from app.extensions import clients, db
from app.models import MemberCoupon
from jobs.drain import drain
from tests.helpers import bearer, make_members, new_coupon

both = pytest.mark.parametrize("strategy", ["lock", "lua"])


def iso(delta_s: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=delta_s)).isoformat()


def test_signup_login_and_roles(client: FlaskClient) -> None:
    resp = client.post("/auth/signup", json={"username": "alice", "password": "pw-alice"})
    assert resp.status_code == 201
    assert resp.json["username"] == "alice" and resp.json["role"] == "member" and isinstance(resp.json["id"], int)
    assert client.post("/auth/signup", json={"username": "alice", "password": "x"}).json["error"] == "username_taken"
    bad = client.post("/auth/login", json={"username": "alice", "password": "wrong"})
    assert (bad.status_code, bad.json["error"]) == (401, "bad_credentials")
    token = client.post("/auth/login", json={"username": "alice", "password": "pw-alice"}).json["access_token"]
    # A member may not register coupons.
    resp = client.post("/coupons", json={"name": "x", "quantity": 1}, headers=bearer(token))
    assert (resp.status_code, resp.json["error"]) == (403, "forbidden")


def test_cli_creates_a_seller_who_can_log_in(app, client: FlaskClient) -> None:
    result = app.test_cli_runner().invoke(args=["create-user", "sam", "--password", "pw", "--role", "seller"])
    assert result.exit_code == 0, result.output
    again = app.test_cli_runner().invoke(args=["create-user", "sam", "--password", "pw"])
    assert again.exit_code != 0 and "taken" in again.output
    token = client.post("/auth/login", json={"username": "sam", "password": "pw"}).json["access_token"]
    assert client.post("/coupons", json={"name": "x", "quantity": 1}, headers=bearer(token)).status_code == 201


@both
def test_download_lifecycle(app, client: FlaskClient, seller, strategy: str) -> None:
    seller_id, seller_token = seller
    coupon = new_coupon(client, seller_token, quantity=2)
    assert coupon["remaining"] == 2 and coupon["ends_at"] is None
    (m1, t1), (m2, t2), (_, t3) = make_members(app, 3)
    url = f"/coupons/{coupon['id']}/download"

    first = client.post(url, headers=bearer(t1))
    expected = (201, "issued") if strategy == "lock" else (202, "pending")
    assert (first.status_code, first.json["status"]) == expected
    assert first.json == {"coupon_id": coupon["id"], "member_id": m1, "status": expected[1]}
    assert client.post(url, headers=bearer(t1)).json["error"] == "already_issued"
    assert client.post(url, headers=bearer(t2)).status_code == expected[0]
    sold = client.post(url, headers=bearer(t3))
    assert (sold.status_code, sold.json["error"]) == (410, "sold_out")

    shown = client.get(f"/coupons/{coupon['id']}", headers=bearer(t3)).json
    assert shown["remaining"] == 0 and shown["quantity"] == 2 and shown["name"] == "spring sale"
    mine = client.get("/members/me/coupons", headers=bearer(t1)).json
    assert [(c["coupon_id"], c["status"]) for c in mine] == [(coupon["id"], expected[1])]

    stats = client.get(f"/coupons/{coupon['id']}/stats", headers=bearer(seller_token)).json
    if strategy == "lua":
        assert stats == {"quantity": 2, "reserved": 2, "persisted": 0, "pending": 2}
        with app.app_context():
            moved = drain(clients().state_redis, db.engine, coupon["id"], batch=1, lock_expire_s=5, max_run_s=10)
        assert moved == 2
        mine = client.get("/members/me/coupons", headers=bearer(t1)).json
        assert [(c["coupon_id"], c["status"]) for c in mine] == [(coupon["id"], "issued")]
    stats = client.get(f"/coupons/{coupon['id']}/stats", headers=bearer(seller_token)).json
    assert stats == {"quantity": 2, "reserved": 2, "persisted": 2, "pending": 0}
    with app.app_context():
        rows = db.session.scalars(sa.select(MemberCoupon.member_id).where(MemberCoupon.coupon_id == coupon["id"])).all()
    assert sorted(rows) == sorted([m1, m2])


@both
def test_window_not_started_and_ended(app, client: FlaskClient, seller, strategy: str) -> None:
    _, seller_token = seller
    later = new_coupon(client, seller_token, starts_at=iso(3600))
    over = new_coupon(client, seller_token, starts_at=iso(-7200), ends_at=iso(-3600))
    ((_, token),) = make_members(app, 1)
    resp = client.post(f"/coupons/{later['id']}/download", headers=bearer(token))
    assert (resp.status_code, resp.json["error"]) == (409, "not_started")
    resp = client.post(f"/coupons/{over['id']}/download", headers=bearer(token))
    assert (resp.status_code, resp.json["error"]) == (409, "ended")
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(MemberCoupon)) == 0


@both
def test_unknown_coupon(app, client: FlaskClient, seller, strategy: str) -> None:
    ((_, token),) = make_members(app, 1)
    for path in ("/coupons/999999/download", f"/coupons/{2**64}/download"):
        resp = client.post(path, headers=bearer(token))
        assert (resp.status_code, resp.json["error"]) == (404, "coupon_not_found")
    resp = client.get("/coupons/999999", headers=bearer(token))
    assert (resp.status_code, resp.json["error"]) == (404, "coupon_not_found")
    resp = client.get("/coupons/999999/stats", headers=bearer(seller[1]))
    assert (resp.status_code, resp.json["error"]) == (404, "coupon_not_found")


def test_stats_only_for_the_coupons_seller(app, client: FlaskClient, seller) -> None:
    coupon = new_coupon(client, seller[1])
    ((_, other),) = make_members(app, 1, role="seller", prefix="other")
    resp = client.get(f"/coupons/{coupon['id']}/stats", headers=bearer(other))
    assert (resp.status_code, resp.json["error"]) == (403, "forbidden")


def test_healthz(client: FlaskClient) -> None:
    body = client.get("/healthz").json
    assert (body["redis"], body["database"]) == ("ok", "ok") and "error" not in body
    assert (body["coupons_missing_state"], body["coupons_missing_state_count"]) == ([], 0)


def test_each_refusal_is_a_fresh_exception(app) -> None:
    """A shared exception re-raised would chain tracebacks without end: a leak on the hot path."""
    import traceback

    from app import issuance
    from app.errors import ApiError, outcome_status
    from strategies import state

    with app.app_context():
        state.register(clients().state_redis, 77, "one", 1, 0, 0)
        issuance.download(77, 1)
        raised = []
        for _ in range(3):
            with pytest.raises(ApiError) as caught:
                outcome_status(issuance.download(77, 2))
            raised.append(caught.value)
    assert raised[0] is not raised[1] and raised[0].code == "sold_out"
    depths = {len(traceback.extract_tb(e.__traceback__)) for e in raised}
    assert len(depths) == 1
