"""Does a request's cost grow with the number of coupons ever registered? ``python -m experiments.coupon_count``.

Registers a target coupon, measures the in-process cost of each hot path (the scheduler's tick,
GET /members/me/coupons, a lua download, GET /coupons/<id>), then registers --coupons open coupons
more (no end, never sold out: the worst case for the registry) and measures again. Uses
DATABASE_URL and REDIS_URL (run it against MariaDB and a Redis db of its own: its coupons' keys and
rows are removed at the end). Prints median microseconds per call and the ratio, and for each request
the Python calls it made (cProfile): unlike time on a shared machine, the count is exact, so a path whose
work grows with the coupons shows it even when the timings are noisy.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Any

from flask import Flask
from rq import Queue

from app import create_app, embedded
from app.auth import access_token_for
from app.extensions import clients
from experiments.studies.bench import answering, cost, median_us, member_token, target_coupon
from jobs.scheduler import Sweep, tick
from strategies import keys, state

FIRST_ID = 3 * 10**15  # registered coupons' ids: far from any real coupon; removed afterwards
CHUNK = 5000


@dataclass(frozen=True)
class Costs:
    """Median microseconds per call of each path, and Python calls per request."""

    tick_us: float
    member_list_us: float
    download_us: float
    coupon_read_us: float
    calls: dict[str, float]


def register_many(client: Any, first: int, count: int) -> None:
    """``count`` open coupons in Redis (no end, never sold out), pipelined in chunks."""
    for start in range(first, first + count, CHUNK):
        ids = range(start, min(start + CHUNK, first + count))
        state.register_many(client, [(coupon_id, "filler", 10**6, 0, 0) for coupon_id in ids])


def measure(app: Flask, coupon_id: int, reader: str, tokens: list[str], repeat: int) -> Costs:
    """Each path's median cost; downloads use a fresh member each (every one a win).

    The list and the read go with ``reader``, a member whose account exists (both check it).
    """
    web = app.test_client()
    member = {"Authorization": f"Bearer {reader}"}
    fresh = iter(tokens)
    with app.app_context():
        client, broker = clients().state_redis, clients().broker
        queue, sweep = Queue("coupon-count-bench", connection=broker), Sweep()
        tick_us = median_us(lambda: tick(client, broker, queue, 60, sweep), repeat)
        queue.empty()
    download = answering(
        202, lambda: web.post(f"/coupons/{coupon_id}/download", headers={"Authorization": f"Bearer {next(fresh)}"})
    )
    member_list = answering(200, lambda: web.get("/members/me/coupons", headers=member))
    read = answering(200, lambda: web.get(f"/coupons/{coupon_id}", headers=member))
    costs = {name: cost(call, repeat) for name, call in (("list", member_list), ("download", download), ("read", read))}
    return Costs(
        tick_us=tick_us,
        member_list_us=costs["list"][0],
        download_us=costs["download"][0],
        coupon_read_us=costs["read"][0],
        calls={f"{name}_calls": figures[2] for name, figures in costs.items()},
    )


def main(argv: list[str] | None = None) -> int:
    """Measure with one coupon, then with --coupons more; print both and their ratio."""
    p = argparse.ArgumentParser(
        prog="python -m experiments.coupon_count",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--coupons", type=int, default=100_000, help="open coupons registered for the second measure")
    p.add_argument("--repeat", type=int, default=300, help="timed calls per path and measure")
    args = p.parse_args(argv)
    with embedded.serving():
        app = create_app({"ISSUE_STRATEGY": "lua"})
        with app.app_context():
            tokens = [access_token_for(FIRST_ID + 10**7 + i, "member") for i in range(4 * args.repeat + 20)]
        with target_coupon(app, "target", 10**6) as target, member_token(app, "coupon-count") as reader:
            try:
                one = measure(app, target, reader, tokens[: 2 * args.repeat + 10], args.repeat)
                with app.app_context():
                    register_many(clients().state_redis, FIRST_ID, args.coupons)
                many = measure(app, target, reader, tokens[2 * args.repeat + 10 :], args.repeat)
            finally:
                with app.app_context():
                    cleanup(clients().state_redis, args.coupons)
    print(f"{'path':<16}{'1 coupon (us)':>16}{f'{args.coupons:,} coupons (us)':>24}{'ratio':>8}")
    for name in ("tick_us", "member_list_us", "download_us", "coupon_read_us"):
        a, b = getattr(one, name), getattr(many, name)
        print(f"{name:<16}{a:>16,.1f}{b:>24,.1f}{b / a:>8.2f}")
    for name, a in one.calls.items():
        b = many.calls[name]
        print(f"{name:<16}{a:>16,.0f}{b:>24,.0f}{b / a:>8.2f}")
    return 0


def cleanup(client: Any, count: int) -> None:
    """Remove the registered coupons' keys (the target coupon goes with target_coupon)."""
    for start in range(FIRST_ID, FIRST_ID + count, CHUNK):
        ids = range(start, min(start + CHUNK, FIRST_ID + count))
        client.srem(keys.COUPON_REGISTRY, *ids)
        client.delete(*(keys.coupon(c) for c in ids))


if __name__ == "__main__":
    sys.exit(main())
