"""The lock strategy judges the window inside the lock's hold: a request that waited past the end wins nothing.

Members rush one coupon through real gunicorn (many threads released together, so the coupon's
lock always has waiters) while its seller closes it, or while its natural ``ends_at`` passes.
A waiter that passed the check before the end and got the lock after it must answer 409 ``ended``
and write no row.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa
from flask import Flask

from app.extensions import db
from app.models import MemberCoupon
from support.procs import start_gunicorn, wait_for
from support.rush import Rush
from tests.helpers import bearer, make_members, new_coupon

MEMBERS = 120
LATE_MEMBERS = 1000  # more than can win before a natural end a second or two away: some still wait at it
THREADS = 32
QUANTITY = 100_000  # never sold out: every refusal after the end must be "ended"


@pytest.fixture
def strategy() -> str:
    return "lock"


@pytest.fixture
def base(app: Flask, process_env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    """gunicorn (two workers of 16 threads) with the lock strategy on the test's clean services."""
    proc, url = start_gunicorn(dict(process_env, ISSUE_STRATEGY="lock"), tmp_path / "gunicorn.log", 2, 16)
    try:
        yield url
    finally:
        proc.stop()


def rows(app: Flask, coupon_id: int) -> list[tuple[int, datetime]]:
    """(member, issued_at as aware UTC) of every row of the coupon."""
    with app.app_context():
        found = db.session.execute(
            sa.select(MemberCoupon.member_id, MemberCoupon.issued_at).where(MemberCoupon.coupon_id == coupon_id)
        ).all()
        return [(r.member_id, r.issued_at.replace(tzinfo=UTC)) for r in found]


def check_nothing_won_after(app: Flask, coupon_id: int, ends_at: datetime, answers: list[Any]) -> None:
    """Every row issued before the end; a row for every 201 and for no refusal; no 500.

    A 503 (the lock not had in time on a busy machine) says the outcome is unknown: its member may
    have a row or not, but never one issued after the end either.
    """
    statuses = Counter((a.status, a.error) for a in answers)
    assert set(statuses) <= {(201, None), (409, "already_issued"), (409, "ended"), (503, "unavailable")}, statuses
    assert statuses[(409, "ended")] > 0 and statuses[(201, None)] > 0, statuses  # the rush straddled the end
    found = rows(app, coupon_id)
    late = sorted(issued_at - ends_at for _, issued_at in found if issued_at >= ends_at)
    assert not late, f"{len(late)} rows issued after the end, by {late[0]} to {late[-1]}"
    with_row = {m for m, _ in found}
    winners = [a.member_id for a in answers if a.status == 201]
    assert len(winners) == len(set(winners)) and set(winners) <= with_row
    assert with_row - set(winners) <= {a.member_id for a in answers if a.status == 503}


def test_no_member_wins_after_the_seller_closed(app: Flask, base: str) -> None:
    members = make_members(app, MEMBERS)
    ((_, seller_token),) = make_members(app, 1, role="seller", prefix="seller")
    coupon_id = new_coupon(base, seller_token, quantity=QUANTITY)["id"]
    closed_at: list[float] = []
    rush = Rush(
        base,
        coupon_id,
        members,
        threads=THREADS,
        # Ask again and again until well after the close, so the lock has waiters when it lands.
        keep_going=lambda: not closed_at or time.monotonic() < closed_at[0] + 1.0,
    ).start()
    wait_for(lambda: rush.count(lambda a: a.status == 201) >= 20, 30, "the rush to be under way")
    closed = requests.post(f"{base}/coupons/{coupon_id}/close", headers=bearer(seller_token), timeout=10)
    closed_at.append(time.monotonic())
    assert closed.status_code == 200, closed.text
    answers = rush.join()
    check_nothing_won_after(app, coupon_id, datetime.fromisoformat(closed.json()["ends_at"]), answers)
    # A request sent once the close had returned is refused, whatever it waited for.
    after = [a for a in answers if a.started > closed_at[0]]
    assert after and all(a.error == "ended" for a in after)


def test_no_member_wins_after_the_natural_end(app: Flask, base: str) -> None:
    members = make_members(app, LATE_MEMBERS)
    ((_, seller_token),) = make_members(app, 1, role="seller", prefix="seller")
    # A whole second (the column's precision for ends_at) two to three seconds away.
    ends_at = (datetime.now(UTC) + timedelta(seconds=3)).replace(microsecond=0)
    coupon = new_coupon(base, seller_token, quantity=QUANTITY, ends_at=ends_at.isoformat())
    assert datetime.fromisoformat(coupon["ends_at"]) == ends_at
    stop_at = time.monotonic() + (ends_at - datetime.now(UTC)).total_seconds() + 1.0
    rush = Rush(base, coupon["id"], members, threads=THREADS, keep_going=lambda: time.monotonic() < stop_at)
    answers = rush.start().join()
    check_nothing_won_after(app, coupon["id"], ends_at, answers)
