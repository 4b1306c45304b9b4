"""Drain throughput on its own: a queue filled through the real script, then timed batched drains."""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa
from redis.cluster import RedisCluster

from jobs.drain import drain
from strategies import keys, scripts, state

BENCH_COUPON_ID = 2**62  # far from any registered coupon; its rows and keys are removed afterwards


def fill_queue(client: Any, coupon_id: int, winners: int, chunk: int = 5000) -> None:
    """Register a coupon of ``winners`` in Redis and accept members 1..winners through lua/issue.lua."""
    state.register(client, coupon_id, "bench", winners, 0, 0)
    target = script_node(client, coupon_id)
    issue = scripts.register(target, "issue")
    tags = [keys.coupon(coupon_id), keys.winners(coupon_id), keys.queue(coupon_id)]
    for first in range(1, winners + 1, chunk):
        pipe = target.pipeline(transaction=False)
        for member_id in range(first, min(first + chunk, winners + 1)):
            issue(keys=tags, args=[member_id], client=pipe)
        replies = pipe.execute()
        if set(replies) != {0}:
            raise RuntimeError(f"the issue script refused some bench winners: {set(replies)}")


def script_node(client: Any, coupon_id: int) -> Any:
    """Where the coupon's scripts can be pipelined: the client itself, or on a cluster its slot's primary.

    A RedisCluster refuses EVALSHA in a pipeline. Every key of one coupon shares its hash slot, so
    a plain connection to the node that owns that slot runs the same pipeline unchanged.
    """
    if isinstance(client, RedisCluster):
        return client.get_node_from_key(keys.coupon(coupon_id)).redis_connection
    return client


def forget(client: Any, engine: sa.Engine, coupon_id: int) -> None:
    """Remove a bench coupon's keys and rows."""
    client.delete(keys.coupon(coupon_id), keys.winners(coupon_id), keys.queue(coupon_id))
    client.srem(keys.OPEN_COUPONS, coupon_id)
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM member_coupon WHERE coupon_id = :c"), {"c": coupon_id})


def drain_benchmark(client: Any, engine: sa.Engine, winners: int, batch: int) -> dict[str, float]:
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
    return {"winners": winners, "batch": batch, "seconds": round(seconds, 4), "rows_per_s": round(winners / seconds)}
