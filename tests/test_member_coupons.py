"""A member's list of coupons: a winner the drain persists in the middle of the read is still listed."""

from __future__ import annotations

import threading

import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from app.extensions import clients, db
from jobs.drain import drain
from tests.helpers import bearer, make_members, new_coupon, rows_of


def test_member_list_shows_a_winner_drained_between_its_reads(app: Flask, client: FlaskClient, seller) -> None:
    """The drain commits the member's row right after the list's SELECT: the coupon is still listed."""
    ((member, token),) = make_members(app, 1)
    coupon_id = new_coupon(client, seller[1])["id"]
    assert client.post(f"/coupons/{coupon_id}/download", headers=bearer(token)).status_code == 202
    with app.app_context():
        redis_client, engine = clients().state_redis, db.engine
    moved: list[int] = []
    fired = threading.Event()

    def drain_now() -> None:
        moved.append(drain(redis_client, engine, coupon_id, batch=100, lock_expire_s=5, max_run_s=10))

    def after_select(_conn, _cursor, statement: str, *_args: object) -> None:
        if fired.is_set() or not statement.lstrip().upper().startswith("SELECT") or "member_coupon" not in statement:
            return
        fired.set()
        worker = threading.Thread(target=drain_now)
        worker.start()
        worker.join(15)

    sa.event.listen(engine, "after_cursor_execute", after_select)
    try:
        resp = client.get("/members/me/coupons", headers=bearer(token))
    finally:
        sa.event.remove(engine, "after_cursor_execute", after_select)
    assert moved == [1], "the drain must have committed during the request"
    assert resp.status_code == 200, resp.data
    assert [c["coupon_id"] for c in resp.json] == [coupon_id]
    assert rows_of(app, coupon_id) == [member]
