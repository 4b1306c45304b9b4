"""Benchmarks' own coupons: drain throughput alone (a queue filled through the real script), a target coupon."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from flask import Flask

from app.extensions import clients, db
from app.models import Coupon, Member
from experiments.results import DrainBench
from jobs.drain import drain
from strategies import clock, keys, state
from support.queue import fill_queue

BENCH_COUPON_ID = 2**62  # far from any registered coupon; its rows and keys are removed afterwards


def forget(client: Any, engine: sa.Engine, coupon_id: int) -> None:
    """Remove a bench coupon's keys (its winners' pending notes too) and rows."""
    winners = [int(m) for m in client.smembers(keys.winners(coupon_id))]
    for start in range(0, len(winners), 5000):
        client.delete(*(keys.member_pending(m) for m in winners[start : start + 5000]))
    client.delete(keys.coupon(coupon_id), keys.winners(coupon_id), keys.queue(coupon_id))
    client.srem(keys.OPEN_COUPONS, coupon_id)
    client.srem(keys.DRAIN_DUE, coupon_id)
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM member_coupon WHERE coupon_id = :c"), {"c": coupon_id})


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


def drain_benchmark(client: Any, engine: sa.Engine, winners: int, batch: int) -> DrainBench:
    """Seconds and rows/s to drain ``winners`` queued winners with one drain in batches of ``batch``."""
    coupon_id = BENCH_COUPON_ID + batch
    forget(client, engine, coupon_id)
    fill_queue(client, coupon_id, winners)
    started = time.perf_counter()
    moved = drain(client, engine, coupon_id, batch=batch, lock_expire_s=30, max_run_s=600)
    seconds = time.perf_counter() - started
    forget(client, engine, coupon_id)
    if moved != winners:
        raise RuntimeError(f"drained {moved} of {winners}")
    return DrainBench(winners, batch, seconds=round(seconds, 4), rows_per_s=round(winners / seconds))
