"""What the studies' benchmarks share: their own coupon and member, checked and counted timings."""

from __future__ import annotations

import cProfile
import pstats
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from flask import Flask

from app.auth import access_token_for
from app.extensions import clients, db
from app.models import Coupon, Member
from experiments.engine.drain_bench import forget
from strategies import clock, state


@contextmanager
def target_coupon(app: Flask, name: str, quantity: int) -> Iterator[int]:
    """A coupon of a benchmark's own (a seller, its row, its Redis state), all removed afterwards."""
    seller_name = f"bench-seller-{name}"
    with app.app_context():
        db.create_all()
        stale = sa.select(Member.id).where(Member.username == seller_name).scalar_subquery()
        db.session.execute(sa.delete(Coupon).where(Coupon.seller_id == stale))  # a run cut short left them
        db.session.execute(sa.delete(Member).where(Member.username == seller_name))
        seller = Member(username=seller_name, password_hash="-", role="seller")
        db.session.add(seller)
        db.session.commit()
        coupon = Coupon(name=name, quantity=quantity, starts_at=clock.utcnow(), seller_id=seller.id)
        db.session.add(coupon)
        db.session.commit()
        coupon_id, seller_id = coupon.id, seller.id
        state.register(clients().state_redis, coupon_id, name, quantity, 0, 0)
    try:
        yield coupon_id
    finally:
        with app.app_context():
            forget(clients().state_redis, db.engine, coupon_id)
            db.session.execute(sa.delete(Coupon).where(Coupon.id == coupon_id))
            db.session.execute(sa.delete(Member).where(Member.id == seller_id))
            db.session.commit()


def median_us(call: Callable[[], object], repeat: int) -> float:
    """The median wall time of ``call`` in microseconds, after two warm-up calls."""
    call(), call()
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return round(statistics.median(samples) * 1e6, 1)


def cost(call: Callable[[], object], repeat: int) -> tuple[float, float, float]:
    """(median wall µs, CPU µs, Python calls) per call of ``call``, from two runs of ``repeat`` calls.

    The calls are counted by cProfile over a tenth of the run: unlike time, the count does not
    depend on what else the machine runs, so two versions compare exactly on a noisy machine.
    """
    wall = median_us(call, repeat)
    counted = max(repeat // 10, 1)
    started = time.process_time()
    for _ in range(repeat - counted):
        call()
    cpu = round((time.process_time() - started) / (repeat - counted) * 1e6, 1) if repeat > counted else 0.0
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(counted):
        call()
    profile.disable()
    return wall, cpu, round(pstats.Stats(profile).total_calls / counted, 1)  # type: ignore[attr-defined]


@contextmanager
def member_token(app: Flask, name: str) -> Iterator[str]:
    """An access token of a member account of a benchmark's own (its row exists: the account check passes)."""
    username = f"bench-member-{name}"
    with app.app_context():
        db.session.execute(sa.delete(Member).where(Member.username == username))  # a run cut short left it
        member = Member(username=username, password_hash="-", role="member")
        db.session.add(member)
        db.session.commit()
        member_id = member.id
        token = access_token_for(member_id, "member")
    try:
        yield token
    finally:
        with app.app_context():
            db.session.execute(sa.delete(Member).where(Member.id == member_id))
            db.session.commit()


def answering(status: int, request: Callable[[], Any]) -> Callable[[], Any]:
    """``request``, checked once to answer ``status``: a benchmark of the wrong answer measures nothing."""
    response = request()
    if response.status_code != status:
        raise SystemExit(f"expected {status}, got {response.status_code}: {response.get_data(as_text=True)[:200]}")
    return request
