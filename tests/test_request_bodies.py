"""Hostile and odd request bodies through a real gunicorn: 400 or 413, never a 500, whatever endpoint."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa
from flask import Flask

from app.extensions import db
from app.models import Coupon
from support.procs import start_gunicorn
from tests.helpers import bearer, make_members

NESTED = b"[" * 5_000
SURROGATE = b'"\\ud800"'
LIMIT = 64 * 1024


@pytest.fixture
def api(app: Flask, process_env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    """One gunicorn worker on the suite's services; its base URL."""
    proc, base = start_gunicorn(process_env, tmp_path / "gunicorn.log", workers=1, threads=4)
    try:
        yield base
    finally:
        proc.stop()
    assert "Traceback" not in proc.output(), proc.output()[-3000:]


def _endpoints(app: Flask) -> list[tuple[str, dict[str, str]]]:
    """Every endpoint that takes a body, with the token it needs."""
    ((_, seller),) = make_members(app, 1, role="seller", prefix="shop")
    ((_, member),) = make_members(app, 1)
    return [
        ("/auth/login", {}),
        ("/auth/signup", {}),
        ("/coupons", bearer(seller)),
        ("/coupons/1/download", bearer(member)),
        ("/coupons/1/close", bearer(seller)),
    ]


def _bodies() -> list[bytes]:
    fields = (b"username", b"password", b"name")
    return [
        NESTED,
        b'{"username": ' + NESTED + b"}",
        *[b"{" + b'"' + f + b'": ' + SURROGATE + b', "password": "p", "quantity": 1}' for f in fields],
        b'{"username": "a\\ud800b", "password": "\\udfff"}',
    ]


def test_no_body_reaches_a_500_on_any_endpoint(app: Flask, api: str) -> None:
    for path, headers in _endpoints(app):
        for body in _bodies():
            resp = requests.post(f"{api}{path}", data=body, headers={**headers, "Content-Type": "application/json"})
            assert resp.status_code < 500, (path, body[:60], resp.text[:300])
            assert resp.headers["Content-Type"].startswith("application/json"), (path, resp.headers)
            if path.startswith("/auth/") or path == "/coupons":
                assert (resp.status_code, resp.json()["error"]) == (400, "invalid_request"), (path, body[:60])


@pytest.mark.parametrize(
    "when",
    ["1796520000", "17965200", "2030-01-01", "٢٠٣٠-٠١-٠١T00:00:00Z", "2030-01-01T00:00:00+23:99", "tomorrow"],
)
def test_times_are_iso_8601_only(app: Flask, api: str, when: str) -> None:
    ((_, seller),) = make_members(app, 1, role="seller", prefix="shop")
    for field in ("starts_at", "ends_at"):
        resp = requests.post(f"{api}/coupons", json={"name": "c", "quantity": 1, field: when}, headers=bearer(seller))
        assert (resp.status_code, resp.json()["error"]) == (400, "invalid_request"), resp.text
        assert field in resp.json()["message"]


def test_iso_8601_times_are_taken(app: Flask, api: str) -> None:
    ((_, seller),) = make_members(app, 1, role="seller", prefix="shop")
    body = {"name": "c", "quantity": 1, "starts_at": "2030-01-01T09:00:00+09:00", "ends_at": "2030-01-02 00:00Z"}
    resp = requests.post(f"{api}/coupons", json=body, headers=bearer(seller))
    assert resp.status_code == 201, resp.text
    window = (resp.json()["starts_at"], resp.json()["ends_at"])
    assert window == ("2030-01-01T00:00:00+00:00", "2030-01-02T00:00:00+00:00")


def _chunks(data: bytes, size: int = 16 * 1024) -> Iterator[bytes]:
    """``data`` as a generator: requests sends it with Transfer-Encoding: chunked, no Content-Length."""
    for i in range(0, len(data), size):
        yield data[i : i + size]


def _coupons(app: Flask) -> int:
    with app.app_context():
        return int(db.session.scalar(sa.select(sa.func.count()).select_from(Coupon)) or 0)


@pytest.mark.parametrize("size", [LIMIT + 1, 2_000_000])
def test_a_chunked_body_over_the_limit_is_413(app: Flask, api: str, size: int) -> None:
    ((_, seller),) = make_members(app, 1, role="seller", prefix="shop")
    # Valid JSON whatever prefix of it is read: a coupon, then spaces.
    coupon = b'{"name": "c", "quantity": 1}'
    body = coupon + b" " * (size - len(coupon))
    headers = {**bearer(seller), "Content-Type": "application/json"}
    for send in (body, _chunks(body)):  # with Content-Length, then chunked
        resp = requests.post(f"{api}/coupons", data=send, headers=headers, timeout=30)
        assert (resp.status_code, resp.json()["error"]) == (413, "payload_too_large"), resp.text[:300]
    assert _coupons(app) == 0
    # The limit's own size still passes, chunked or not.
    at_limit = coupon + b" " * (LIMIT - len(coupon))
    for send in (at_limit, _chunks(at_limit)):
        assert requests.post(f"{api}/coupons", data=send, headers=headers, timeout=30).status_code == 201
    assert _coupons(app) == 2
