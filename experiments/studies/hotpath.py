"""What one request costs in process: ``python -m experiments.hotpath``.

Times the hot endpoints through the Flask test client (no network, no server: the application's
own cost per request, test client included), and the token's share of a download: one PyJWT decode
as app/tokens.py does it (a token seen for the first time; a retried token is served from the
cache), beside the path it replaced (flask-jwt-extended's verify_jwt_in_request). Each endpoint must
answer what it answers in a rush (a win, sold out, a read by an account that exists), else the run
stops. Uses DATABASE_URL and REDIS_URL (run it against a database and a Redis db of its own);
prints the median wall microseconds per call, the process's CPU microseconds per call and the
Python calls per request (exact: two versions compare by it on a noisy machine; see bench.cost).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from flask import Flask
from flask_jwt_extended import verify_jwt_in_request

from app import create_app, embedded
from app.auth import access_token_for
from app.revocation_view import current_view
from app.tokens import TokenVerifier
from experiments.studies.bench import answering, cost, median_us, member_token, target_coupon

FIRST_MEMBER = 7 * 10**15  # tokens' member ids: no row needed on the download path


def endpoint_costs(
    app: Flask, coupon_id: int, reader: str, tokens: list[str], repeat: int
) -> dict[str, tuple[float, float, float]]:
    """Each hot endpoint's cost; every download a new member (a win, as in a rush's first second).

    The read goes with ``reader``, a member whose account exists: GET /coupons/<id> checks it.
    """
    web = app.test_client()
    fresh = iter(tokens)
    member = {"Authorization": f"Bearer {reader}"}

    def download() -> Any:
        return web.post(f"/coupons/{coupon_id}/download", headers={"Authorization": f"Bearer {next(fresh)}"})

    return {
        "download (lua, a win)": cost(answering(202, download), repeat),
        "GET /coupons/<id>": cost(answering(200, lambda: web.get(f"/coupons/{coupon_id}", headers=member)), repeat),
        "GET /healthz": cost(answering(200, lambda: web.get("/healthz")), repeat),
    }


def token_costs(app: Flask, tokens: list[str], repeat: int) -> dict[str, float]:
    """Median µs of verifying one token: today's single decode (fresh, and cached) and the extension's path."""
    verifier = TokenVerifier(app.config["JWT_SECRET_KEY"])
    fresh = iter(tokens)
    cached = tokens[0]
    verifier.verify(cached)
    secret = app.config["JWT_SECRET_KEY"]

    def extension() -> object:
        with app.test_request_context(headers={"Authorization": f"Bearer {cached}"}):
            return verify_jwt_in_request()

    once = TokenVerifier(secret)  # a process's verifier: its key prepared once; every token new to it
    return {
        "one PyJWT decode (a new token)": median_us(lambda: once.verify(next(fresh)), repeat),
        "cached token": median_us(lambda: verifier.verify(cached), repeat),
        "flask-jwt-extended, with a request context (replaced)": median_us(extension, repeat),
    }


def revocation_costs(app: Flask, repeat: int, entries: int = 10_000) -> dict[str, float]:
    """The revocation view: µs of one request's in-memory check, and CPU µs of one refresh (once a second a process)."""
    with app.app_context():
        view = current_view()
        view.refresh()
        view._refused.update((FIRST_MEMBER - 1 - i, i) for i in range(entries))  # a view holding ``entries`` members
        iat = time.time()
        check = median_us(lambda: view.check(FIRST_MEMBER, iat), repeat)
        started = time.thread_time()
        for _ in range(repeat // 10):
            view.refresh()
        refresh_cpu = (time.thread_time() - started) / (repeat // 10) * 1e6
    return {f"revocation check, a view of {entries:,} members": check, "one refresh, nothing new (CPU)": refresh_cpu}


def main(argv: list[str] | None = None) -> int:
    """Print each hot endpoint's cost and the token's share of a download."""
    p = argparse.ArgumentParser(
        prog="python -m experiments.hotpath",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--repeat", type=int, default=2000, help="timed calls per figure")
    args = p.parse_args(argv)
    with embedded.serving():
        app = create_app({"ISSUE_STRATEGY": "lua"})
        with app.app_context():
            tokens = [access_token_for(FIRST_MEMBER + i, "member") for i in range(5 * args.repeat + 10)]
        wins = 2 * args.repeat + 3  # the checked call, the median run, the CPU run
        with target_coupon(app, "hot", wins) as coupon_id, member_token(app, "hotpath") as reader:
            costs = endpoint_costs(app, coupon_id, reader, tokens[:wins], args.repeat)
            web = app.test_client()
            later = iter(tokens[wins:])
            sold_out = answering(
                410,
                lambda: web.post(f"/coupons/{coupon_id}/download", headers={"Authorization": f"Bearer {next(later)}"}),
            )
            costs["download (sold out)"] = cost(sold_out, args.repeat)
            tokens_us = token_costs(app, tokens[2 * wins + 4 :], args.repeat // 2)
            tokens_us.update(revocation_costs(app, args.repeat))
    print(f"{'endpoint':<34}{'wall us':>12}{'CPU us':>12}{'Python calls':>14}")
    for name, (wall, cpu, calls) in costs.items():
        print(f"{name:<34}{wall:>12,.1f}{cpu:>12,.1f}{calls:>14,.0f}")
    print(f"\n{'verifying one token; the revocation view':<56}{'us':>10}")
    for name, us in tokens_us.items():
        print(f"{name:<56}{us:>10,.1f}")
    share = tokens_us["one PyJWT decode (a new token)"] / costs["download (lua, a win)"][1]
    print(f"\ntoken share of a winning download's CPU: {share:.0%} (a new token every request; a retry costs less)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
