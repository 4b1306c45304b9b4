"""The drain alone: winners queued for a coupon of the bench's own, drained in batches, timed."""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa

from experiments.engine.results import DrainBench
from jobs.drain import drain
from strategies import keys
from support.queue import fill_queue

BENCH_COUPON_ID = 2**62  # far from any registered coupon; its rows and keys are removed afterwards


def forget(client: Any, engine: sa.Engine, coupon_id: int) -> None:
    """Remove a bench coupon's keys (its winners' pending notes too) and rows."""
    winners = [int(m) for m in client.smembers(keys.winners(coupon_id))]
    for start in range(0, len(winners), 5000):
        client.delete(*(keys.member_pending(m) for m in winners[start : start + 5000]))
    client.delete(keys.coupon(coupon_id), keys.winners(coupon_id), keys.queue(coupon_id))
    client.srem(keys.COUPON_REGISTRY, coupon_id)
    client.srem(keys.DRAIN_DUE, coupon_id)
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM member_coupon WHERE coupon_id = :c"), {"c": coupon_id})


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
