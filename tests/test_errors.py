"""Bad input and bad tokens answer the contract's JSON error: never a 500, never HTML."""

from __future__ import annotations

import time

import jwt as pyjwt
import pytest
from flask.testing import FlaskClient
from flask_jwt_extended import create_refresh_token

from tests.helpers import TEST_SECRET, assert_error, bearer, make_members

BAD_COUPONS = [
    b"{not json",
    b"[1, 2]",
    b'"a string"',
    b"null",
    b"",
    b'{"name": "x"}',
    b'{"quantity": 5}',
    b'{"name": "x", "quantity": "5"}',
    b'{"name": "x", "quantity": 5.5}',
    b'{"name": "x", "quantity": true}',
    b'{"name": "x", "quantity": 0}',
    b'{"name": "x", "quantity": -1}',
    b'{"name": "x", "quantity": 10000001}',
    b'{"name": "x", "quantity": 1000000000000000000000000000000}',
    b'{"name": "", "quantity": 5}',
    b'{"name": 12, "quantity": 5}',
    b'{"name": "' + b"n" * 101 + b'", "quantity": 5}',
    b'{"name": "x", "quantity": 5, "starts_at": "yesterday"}',
    b'{"name": "x", "quantity": 5, "starts_at": 12345}',
    b'{"name": "x", "quantity": 5, "starts_at": "2030-01-02T00:00:00Z", "ends_at": "2030-01-01T00:00:00Z"}',
    b'{"name": "x", "quantity": 5, "starts_at": "2030-01-01T00:00:00Z", "ends_at": "2030-01-01T00:00:00Z"}',
    b'{"name": "x", "quantity": 5, "starts_at": "0001-01-01T00:00:00"}',
    b'{"name": "x", "quantity": 5, "surprise": 1}',
]


@pytest.mark.parametrize("body", BAD_COUPONS)
def test_bad_coupon_bodies(client: FlaskClient, seller, body: bytes) -> None:
    resp = client.post("/coupons", data=body, headers={**bearer(seller[1]), "Content-Type": "application/json"})
    assert_error(resp, 400, "invalid_request")


@pytest.mark.parametrize(
    "body",
    [
        b"{",
        b"[]",
        b'{"username": "a"}',
        b'{"username": 1, "password": "p"}',
        b'{"username": "", "password": "p"}',
        b'{"username": "a", "password": null}',
    ],
)
@pytest.mark.parametrize("path", ["/auth/signup", "/auth/login"])
def test_bad_credentials_bodies(client: FlaskClient, path: str, body: bytes) -> None:
    assert_error(client.post(path, data=body, content_type="application/json"), 400, "invalid_request")


def test_unicode_and_sql_looking_strings_are_just_data(client: FlaskClient, seller) -> None:
    name = "쿠폰 ☃ '; DROP TABLE coupon; --"
    resp = client.post("/coupons", json={"name": name, "quantity": 1}, headers=bearer(seller[1]))
    assert resp.status_code == 201 and resp.json["name"] == name
    resp = client.post("/auth/signup", json={"username": "o.neil", "password": "o'neil\" OR 1=1 --"})
    assert resp.status_code == 201
    assert client.post("/auth/login", json={"username": "o.neil", "password": "o'neil\" OR 1=1 --"}).status_code == 200


def test_body_over_the_limit(client: FlaskClient, seller) -> None:
    big = b'{"name": "' + b"x" * 100_000 + b'", "quantity": 1}'
    resp = client.post("/coupons", data=big, headers={**bearer(seller[1]), "Content-Type": "application/json"})
    assert_error(resp, 413, "payload_too_large")


def _token(claims: dict, key: str = TEST_SECRET, alg: str = "HS256") -> str:
    now = int(time.time())
    payload = {
        "sub": "1",
        "role": "member",
        "type": "access",
        "fresh": False,
        "jti": "j",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        **claims,
    }
    return pyjwt.encode(payload, key if alg != "none" else None, algorithm=alg)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer garbage"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        bearer(_token({}, key="not-the-secret-but-long-enough-32b")),
        bearer(_token({}, alg="none")),
        bearer(_token({"exp": int(time.time()) - 10, "iat": int(time.time()) - 100})),
    ],
    ids=["missing", "empty", "garbage", "basic", "forged", "alg-none", "expired"],
)
@pytest.mark.parametrize("path", ["/coupons/1/download", "/members/me/coupons", "/coupons/1"])
def test_token_failures_answer_401(client: FlaskClient, headers: dict, path: str) -> None:
    method = client.post if path.endswith("download") else client.get
    assert_error(method(path, headers=headers), 401, "unauthorized")


def test_refresh_token_is_not_an_access_token(app, client: FlaskClient) -> None:
    with app.app_context():
        refresh = create_refresh_token(identity="1", additional_claims={"role": "member"})
    assert_error(client.post("/coupons/1/download", headers=bearer(refresh)), 401, "unauthorized")


def test_wrong_role(app, client: FlaskClient, seller) -> None:
    ((_, member_token),) = make_members(app, 1)
    assert_error(client.post("/coupons/1/download", headers=bearer(seller[1])), 403, "forbidden")
    assert_error(client.get("/coupons/1/stats", headers=bearer(member_token)), 403, "forbidden")
    assert_error(client.get("/members/me/coupons", headers=bearer(seller[1])), 403, "forbidden")


def test_unknown_paths_and_methods(client: FlaskClient) -> None:
    assert_error(client.get("/nowhere"), 404, "not_found")
    assert_error(client.post("/coupons/abc/download"), 404, "not_found")
    assert_error(client.delete("/coupons"), 405, "method_not_allowed")
