"""What tests share besides fixtures: the app's test settings, members and tokens in bulk, coupons, rows, answers.

Fixtures live in conftest.py; this module holds the plain functions and constants tests import.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import requests
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.security import generate_password_hash
from werkzeug.test import TestResponse

from app.auth import access_token_for
from app.extensions import db
from app.models import Member
from tests.services import Services

TEST_SECRET = "test-secret-of-the-suite-0123456789abcdef"  # noqa: S105
ROOT = Path(__file__).resolve().parent.parent
# A coupon's member_coupon rows, one member id each (a duplicate would show twice).
ROWS = sa.text("SELECT member_id FROM member_coupon WHERE coupon_id = :c ORDER BY member_id")

_PASSWORD_HASH = generate_password_hash("password")


def app_config(services: Services, strategy: str = "lua", **extra: Any) -> dict[str, Any]:
    """The settings an app under test gets."""
    return {
        "SQLALCHEMY_DATABASE_URI": services.database_url,
        "REDIS_URL": services.redis_url,
        "REDIS_CLUSTER_URL": None,
        "ISSUE_STRATEGY": strategy,
        "JWT_SECRET_KEY": TEST_SECRET,
        "APP_ENV": "development",
        "TESTING": True,
        **extra,
    }


def make_members(app: Flask, count: int, role: str = "member", prefix: str = "m") -> list[tuple[int, str]]:
    """``count`` accounts inserted in bulk (password ``password``); (id, access token) each."""
    names = [f"{prefix}{i}" for i in range(count)]
    with app.app_context():
        db.session.execute(
            sa.insert(Member), [{"username": n, "password_hash": _PASSWORD_HASH, "role": role} for n in names]
        )
        db.session.commit()
        ids = db.session.scalars(sa.select(Member.id).where(Member.username.in_(names)).order_by(Member.id)).all()
        return [(member_id, access_token_for(member_id, role)) for member_id in ids]


def bearer(token: str) -> dict[str, str]:
    """The Authorization header for ``token``."""
    return {"Authorization": f"Bearer {token}"}


def new_coupon(via: str | Flask | FlaskClient, seller_token: str, **body: Any) -> dict[str, Any]:
    """Register a coupon as the seller of ``seller_token``; the 201 answer.

    ``via`` is a served API's base URL, or an app (or its test client) called in-process. The body
    is "spring sale", 5 units, opening now, unless ``body`` says otherwise.
    """
    body = {"name": "spring sale", "quantity": 5, **body}
    if isinstance(via, str):
        resp = requests.post(f"{via}/coupons", json=body, headers=bearer(seller_token), timeout=10)
        assert resp.status_code == 201, resp.text
        return dict(resp.json())
    client = via.test_client() if isinstance(via, Flask) else via
    answer = client.post("/coupons", json=body, headers=bearer(seller_token))
    assert answer.status_code == 201, answer.data
    return dict(answer.json or {})


def rows_of(source: Flask | sa.Engine, coupon_id: int) -> list[int]:
    """The member ids of the coupon's rows, in order (``source``: an app, or a database engine)."""
    if isinstance(source, Flask):
        with source.app_context():
            return rows_of(db.engine, coupon_id)
    with source.connect() as conn:
        return [int(m) for m in conn.execute(ROWS, {"c": coupon_id}).scalars()]


def serves(url: str) -> bool:
    """Whether ``url`` answers 200 now (refused, or accepted but not yet served: no)."""
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:
        return False


def assert_error(resp: TestResponse | requests.Response, status: int, code: str) -> None:
    """``resp`` (in-process or over HTTP) is the one JSON error shape with ``status`` and ``code``."""
    if isinstance(resp, requests.Response):
        text, body = resp.text[:300], resp.json()
    else:
        text, body = resp.data[:300], resp.json if resp.is_json else None
    assert resp.status_code == status, text
    assert isinstance(body, dict) and set(body) == {"error", "message"}, text
    assert body["error"] == code and body["message"], text
