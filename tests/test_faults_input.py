"""Bad input that tests/test_errors.py leaves out, and how passwords are kept."""

from __future__ import annotations

import time

import jwt as pyjwt
import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from app.auth import create_member
from app.extensions import db
from app.models import Member
from tests.helpers import TEST_SECRET, assert_error, bearer, make_members

HUGE_ID = "9" * 30  # past BIGINT and past 2**63


def test_passwords_are_stored_as_scrypt_hashes_never_in_clear(app: Flask, client: FlaskClient) -> None:
    password = "correct horse ☃ battery"
    assert client.post("/auth/signup", json={"username": "ann", "password": password}).status_code == 201
    assert client.post("/auth/signup", json={"username": "bob", "password": password}).status_code == 201
    with app.app_context():
        create_member("shop", password, "seller")  # what `flask create-user` calls
        stored = dict(db.session.execute(sa.select(Member.username, Member.password_hash)).tuples().all())
    assert set(stored) == {"ann", "bob", "shop"}
    for hashed in stored.values():
        assert hashed.startswith("scrypt:"), hashed[:20]  # werkzeug's scrypt KDF, with its parameters
        assert password not in hashed and password.encode().hex() not in hashed
    assert len(set(stored.values())) == 3  # salted: one password, three different hashes
    assert client.post("/auth/login", json={"username": "ann", "password": password}).status_code == 200
    assert_error(client.post("/auth/login", json={"username": "ann", "password": "wrong"}), 401, "bad_credentials")


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 20_000 + b"]" * 20_000,  # nesting past the parser's recursion limit
        b'{"username": "a", "password": "p", "x": ' + b"[" * 20_000 + b"]" * 20_000 + b"}",
        b'{"username": "\xff\xfe", "password": "p"}',  # not UTF-8
        b'{"username": "\\ud800", "password": "p"}',  # a lone surrogate
        b'{"username": "a", "password": "p"}\x00',
        b'{"username": ["a"], "password": {"p": 1}}',
    ],
    ids=["deep-array", "deep-field", "not-utf8", "lone-surrogate", "trailing-nul", "wrong-containers"],
)
def test_hostile_bodies_answer_400(client: FlaskClient, body: bytes) -> None:
    assert_error(client.post("/auth/signup", data=body, content_type="application/json"), 400, "invalid_request")


def test_four_byte_characters_and_nul_are_just_data(client: FlaskClient, seller: tuple[int, str]) -> None:
    name = "🎟️ 𝔠𝔬𝔲𝔭𝔬𝔫 \u0000 end"
    resp = client.post("/coupons", json={"name": name, "quantity": 1}, headers=bearer(seller[1]))
    assert resp.status_code == 201 and resp.json["name"] == name
    assert client.get(f"/coupons/{resp.json['id']}", headers=bearer(seller[1])).json["name"] == name
    resp = client.post("/auth/signup", json={"username": "emoji", "password": "😀\u0000🔑"})
    assert resp.status_code == 201 and resp.json["username"] == "emoji"
    assert client.post("/auth/login", json={"username": "emoji", "password": "😀\u0000🔑"}).status_code == 200


def test_huge_coupon_ids_are_not_found(client: FlaskClient, seller: tuple[int, str], app: Flask) -> None:
    ((_, member_token),) = make_members(app, 1)
    assert_error(client.get(f"/coupons/{HUGE_ID}", headers=bearer(member_token)), 404, "coupon_not_found")
    assert_error(client.get(f"/coupons/{HUGE_ID}/stats", headers=bearer(seller[1])), 404, "coupon_not_found")
    assert_error(client.post(f"/coupons/{HUGE_ID}/download", headers=bearer(member_token)), 404, "coupon_not_found")
    assert_error(client.get("/coupons/-1", headers=bearer(member_token)), 404, "not_found")


def _signed(claims: dict) -> str:
    now = int(time.time())
    base = {"type": "access", "fresh": False, "jti": "j", "iat": now, "nbf": now, "exp": now + 600}
    return pyjwt.encode({**base, **claims}, TEST_SECRET, algorithm="HS256")


@pytest.mark.parametrize(
    ("claims", "status", "code"),
    [
        ({"sub": "abc", "role": "member"}, 401, "unauthorized"),  # a subject that is no member id
        ({"sub": 5, "role": "member"}, 401, "unauthorized"),  # an integer identity
        ({"sub": "1"}, 403, "forbidden"),  # no role at all
        ({"sub": "1", "role": ["member"]}, 403, "forbidden"),  # a role of the wrong type
        ({"sub": "1", "role": "admin"}, 403, "forbidden"),
    ],
    ids=["sub-not-int", "sub-int", "no-role", "role-list", "role-unknown"],
)
def test_correctly_signed_but_wrong_claims(client: FlaskClient, claims: dict, status: int, code: str) -> None:
    assert_error(client.post("/coupons/1/download", headers=bearer(_signed(claims))), status, code)
    assert_error(client.get("/members/me/coupons", headers=bearer(_signed(claims))), status, code)


def test_405_names_the_methods_allowed(client: FlaskClient) -> None:
    resp = client.delete("/coupons")
    assert_error(resp, 405, "method_not_allowed")
    assert set(resp.headers["Allow"].replace(" ", "").split(",")) == {"POST"}  # no OPTIONS answers
    resp = client.put("/coupons/1/download")
    assert_error(resp, 405, "method_not_allowed")
    assert "POST" in resp.headers["Allow"]
