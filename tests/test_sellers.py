"""Sellers serve themselves through gunicorn: close a coupon, list their coupons a page at a time."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from app.extensions import clients, db
from app.models import Coupon, MemberCoupon
from jobs.drain import drain
from strategies import keys
from support.procs import start_gunicorn
from tests.helpers import bearer, make_members, new_coupon

both = pytest.mark.parametrize("strategy", ["lock", "lua"])
WON = {"lock": (201, "issued"), "lua": (202, "pending")}


@pytest.fixture
def base(app: Flask, process_env: dict[str, str], tmp_path: Path, strategy: str) -> Iterator[str]:
    """gunicorn (one worker, 8 threads) on the test's clean database and Redis, with ``strategy``."""
    proc, url = start_gunicorn(dict(process_env, ISSUE_STRATEGY=strategy), tmp_path / "gunicorn.log", 1, 8)
    try:
        yield url
    finally:
        proc.stop()


def call(method: str, url: str, token: str | None = None, **kwargs: Any) -> requests.Response:
    return requests.request(method, url, headers=bearer(token) if token else {}, timeout=10, **kwargs)


def at(iso: str | None) -> datetime:
    assert iso is not None
    return datetime.fromisoformat(iso)


def settle(app: Flask, coupon_id: int, strategy: str) -> set[int]:
    """Drain the coupon's queue (lua); the members with a row."""
    with app.app_context():
        if strategy == "lua":
            drain(clients().state_redis, db.engine, coupon_id, batch=100, lock_expire_s=5, max_run_s=10)
        return set(db.session.scalars(sa.select(MemberCoupon.member_id).where(MemberCoupon.coupon_id == coupon_id)))


@both
def test_close_ends_the_window_now_and_keeps_earlier_winners(
    app: Flask, base: str, seller: tuple[int, str], strategy: str
) -> None:
    _, seller_token = seller
    coupon = new_coupon(base, seller_token)
    (m1, t1), (m2, t2), (_, t3) = make_members(app, 3)
    url = f"{base}/coupons/{coupon['id']}"
    for token in (t1, t2):
        won = call("POST", f"{url}/download", token)
        assert (won.status_code, won.json()["status"]) == WON[strategy]

    closed = call("POST", f"{url}/close", seller_token)
    assert closed.status_code == 200, closed.text
    body = closed.json()
    assert {k: body[k] for k in ("id", "name", "quantity", "remaining", "starts_at")} == {
        **{k: coupon[k] for k in ("id", "name", "quantity", "starts_at")},
        "remaining": 3,
    }
    assert abs(at(body["ends_at"]) - datetime.now(UTC)) < timedelta(seconds=5)

    for token in (t3, t1):  # a newcomer and a winner alike: the window has ended
        late = call("POST", f"{url}/download", token)
        assert (late.status_code, late.json()["error"]) == (409, "ended")
    again = call("POST", f"{url}/close", seller_token)
    assert (again.status_code, again.json()) == (200, body)  # idempotent: the first close's time
    assert call("GET", url, t3).json()["ends_at"] == body["ends_at"]

    assert settle(app, coupon["id"], strategy) == {m1, m2}
    with app.app_context():
        row = db.session.get(Coupon, coupon["id"])
        assert row is not None
        # The row keeps whole seconds, never later than the close.
        assert row.ends_at == at(body["ends_at"]).replace(tzinfo=None, microsecond=0)


def test_only_the_coupons_seller_may_close_it(app: Flask, base: str, seller: tuple[int, str]) -> None:
    _, seller_token = seller
    coupon = new_coupon(base, seller_token)
    ((_, other_seller),) = make_members(app, 1, role="seller", prefix="other")
    ((member_id, member),) = make_members(app, 1)
    url = f"{base}/coupons/{coupon['id']}"
    for token in (other_seller, member):
        refused = call("POST", f"{url}/close", token)
        assert (refused.status_code, refused.json()["error"]) == (403, "forbidden")
    assert call("POST", f"{url}/close").status_code == 401
    missing = call("POST", f"{base}/coupons/{coupon['id'] + 1000}/close", seller_token)
    assert (missing.status_code, missing.json()["error"]) == (404, "coupon_not_found")

    assert call("GET", url, member).json()["ends_at"] is None  # still open
    assert call("POST", f"{url}/download", member).status_code == 202
    assert settle(app, coupon["id"], "lua") == {member_id}


@both
def test_a_close_racing_downloads_splits_them_cleanly(
    app: Flask, base: str, seller: tuple[int, str], strategy: str
) -> None:
    """Every download is a win or "ended"; every win is persisted; every one sent after the close is "ended"."""
    _, seller_token = seller
    coupon = new_coupon(base, seller_token, quantity=1000)
    members = make_members(app, 24)
    url = f"{base}/coupons/{coupon['id']}"
    start = threading.Barrier(len(members) + 1)
    answers: dict[int, tuple[float, int, str]] = {}
    closed_at: list[float] = []

    def download(member_id: int, token: str) -> None:
        start.wait()
        time.sleep(member_id % 8 * 0.01)  # spread them around the close
        sent = time.monotonic()
        resp = call("POST", f"{url}/download", token)
        answers[member_id] = (sent, resp.status_code, resp.json().get("status") or resp.json()["error"])

    def close() -> None:
        start.wait()
        time.sleep(0.03)
        assert call("POST", f"{url}/close", seller_token).status_code == 200
        closed_at.append(time.monotonic())

    threads = [threading.Thread(target=download, args=m) for m in members] + [threading.Thread(target=close)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)

    assert len(answers) == len(members) and closed_at
    winners = {m for m, (_, status, word) in answers.items() if (status, word) == WON[strategy]}
    assert all((status, word) in (WON[strategy], (409, "ended")) for _, status, word in answers.values()), answers
    assert all(word == "ended" for sent, _, word in answers.values() if sent > closed_at[0]), answers
    assert settle(app, coupon["id"], strategy) == winners


def test_close_never_extends_a_window_and_opens_none(client: FlaskClient, seller: tuple[int, str]) -> None:
    _, token = seller
    now = datetime.now(UTC)

    def create(starts_in_s: float, ends_in_s: float) -> dict[str, Any]:
        times = {"starts_at": (now + timedelta(seconds=starts_in_s)).isoformat()}
        resp = client.post(
            "/coupons",
            json={"name": "x", "quantity": 2, **times, "ends_at": (now + timedelta(seconds=ends_in_s)).isoformat()},
            headers=bearer(token),
        )
        assert resp.status_code == 201, resp.json
        return resp.json

    ended = create(-7200, -3600)
    assert client.post(f"/coupons/{ended['id']}/close", headers=bearer(token)).json["ends_at"] == ended["ends_at"]

    running = create(-60, 3600)
    closed = client.post(f"/coupons/{running['id']}/close", headers=bearer(token)).json
    assert at(closed["ends_at"]) < at(running["ends_at"]) and closed["starts_at"] == running["starts_at"]

    unopened = create(3600, 7200)
    closed = client.post(f"/coupons/{unopened['id']}/close", headers=bearer(token)).json
    assert closed["starts_at"] == closed["ends_at"] and abs(at(closed["ends_at"]) - now) < timedelta(seconds=5)
    ((_, member),) = make_members(client.application, 1)
    late = client.post(f"/coupons/{unopened['id']}/download", headers=bearer(member))
    assert (late.status_code, late.json["error"]) == (409, "ended")  # not "not_started": it will never open
    with client.application.app_context():
        row = db.session.get(Coupon, unopened["id"])
        assert row is not None and row.starts_at == row.ends_at


def walk(base: str, token: str, limit: int) -> tuple[list[int], list[int]]:
    """Every page of the seller's list: the ids in order, and each page's size."""
    ids: list[int] = []
    sizes: list[int] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": limit, **({"cursor": cursor} if cursor is not None else {})}
        page = call("GET", f"{base}/sellers/me/coupons", token, params=params)
        assert page.status_code == 200, page.text
        ids += [item["id"] for item in page.json()["items"]]
        sizes.append(len(page.json()["items"]))
        cursor = page.json()["next_cursor"]
        if cursor is None:
            return ids, sizes
        assert isinstance(cursor, str)


def test_a_sellers_coupons_page_by_page_newest_first(app: Flask, base: str, seller: tuple[int, str]) -> None:
    _, token = seller
    ((_, other),) = make_members(app, 1, role="seller", prefix="other")
    mine: list[int] = []
    for i in range(23):
        mine.append(new_coupon(base, token, name=f"mine {i}")["id"])
        if i % 6 == 0:
            new_coupon(base, other, name=f"theirs {i}")
    newest_first = sorted(mine, reverse=True)

    assert walk(base, token, 5) == (newest_first, [5, 5, 5, 5, 3])
    assert walk(base, token, 23) == (newest_first, [23])  # an exact fit ends with null, not an empty page
    assert walk(base, token, 100) == (newest_first, [23])
    assert len(walk(base, other, 2)[0]) == 4

    first = call("GET", f"{base}/sellers/me/coupons", token).json()  # default limit 20
    assert [c["id"] for c in first["items"]] == newest_first[:20] and first["next_cursor"] is not None
    assert set(first["items"][0]) == {"id", "name", "quantity", "remaining", "starts_at", "ends_at"}
    # A coupon registered meanwhile neither repeats nor hides one on the next pages.
    newer = new_coupon(base, token)["id"]
    rest = call("GET", f"{base}/sellers/me/coupons", token, params={"cursor": first["next_cursor"]}).json()
    assert [c["id"] for c in rest["items"]] == newest_first[20:] and rest["next_cursor"] is None
    assert walk(base, token, 10)[0] == [newer, *newest_first]


@pytest.mark.parametrize(
    "query",
    ["limit=0", "limit=101", "limit=abc", "limit=", "limit=-1", "limit=1.5", "limit=5&limit=6", "limit=%205"]
    + ["cursor=abc", "cursor=0", "cursor=", "cursor=-3", "cursor=99999999999999999999", "cursor=1&cursor=2"],
)
def test_a_bad_limit_or_cursor_is_refused(client: FlaskClient, seller: tuple[int, str], query: str) -> None:
    resp = client.get(f"/sellers/me/coupons?{query}", headers=bearer(seller[1]))
    assert (resp.status_code, resp.json["error"]) == (400, "invalid_request")


def test_members_may_not_list_sellers_coupons(app: Flask, client: FlaskClient) -> None:
    ((_, member),) = make_members(app, 1)
    resp = client.get("/sellers/me/coupons", headers=bearer(member))
    assert (resp.status_code, resp.json["error"]) == (403, "forbidden")
    assert client.get("/sellers/me/coupons").status_code == 401


def test_the_list_shows_live_remaining_and_null_for_missing_state(
    app: Flask, base: str, seller: tuple[int, str]
) -> None:
    _, token = seller
    rushed, quiet, lost = (new_coupon(base, token, quantity=q, name=f"c{q}") for q in (3, 2, 4))
    for _, member in make_members(app, 2):
        assert call("POST", f"{base}/coupons/{rushed['id']}/download", member).status_code == 202
    with app.app_context():
        clients().state_redis.delete(keys.coupon(lost["id"]))  # as after a Redis that lost its data

    items = call("GET", f"{base}/sellers/me/coupons", token).json()["items"]
    assert [(c["id"], c["remaining"]) for c in items] == [(lost["id"], None), (quiet["id"], 2), (rushed["id"], 1)]
    shown = items[0]
    assert {k: shown[k] for k in ("name", "quantity", "ends_at")} == {"name": "c4", "quantity": 4, "ends_at": None}
    assert at(shown["starts_at"]).replace(microsecond=0) == at(lost["starts_at"]).replace(microsecond=0)


def test_closing_a_coupon_redis_lost_is_an_outage_and_changes_nothing(
    app: Flask, client: FlaskClient, seller: tuple[int, str]
) -> None:
    _, token = seller
    coupon = client.post("/coupons", json={"name": "x", "quantity": 2}, headers=bearer(token)).json
    with app.app_context():
        clients().state_redis.delete(keys.coupon(coupon["id"]))
    resp = client.post(f"/coupons/{coupon['id']}/close", headers=bearer(token))
    assert (resp.status_code, resp.json["error"]) == (503, "unavailable")  # rebuild-state, then close again
    with app.app_context():
        assert not clients().state_redis.exists(keys.coupon(coupon["id"]))  # the script wrote nothing
        row = db.session.get(Coupon, coupon["id"])
        assert row is not None and row.ends_at is None
