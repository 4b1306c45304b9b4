"""What one request costs in process: ``python -m experiments.hotpath``.

Times the hot endpoints through the Flask test client (no network, no server: the application's
own CPU per request), and the token's share of a download: one PyJWT decode as app/tokens.py does
it (a token seen for the first time; a retried token is served from the cache), beside the path it
replaced (flask-jwt-extended's verify_jwt_in_request). Uses DATABASE_URL and REDIS_URL (run it
against a database and a Redis db of its own); prints median microseconds per call.
"""

from __future__ import annotations

import argparse
import sys

from flask import Flask
from flask_jwt_extended import verify_jwt_in_request

from app import create_app, embedded
from app.auth import access_token_for
from app.tokens import TokenVerifier
from experiments.bench import target_coupon
from experiments.coupon_count import median_us

FIRST_MEMBER = 7 * 10**15  # tokens' member ids: no row needed on the download path


def endpoint_costs(app: Flask, coupon_id: int, tokens: list[str], repeat: int) -> dict[str, float]:
    """Median µs of each hot endpoint; every download a new member (a win, as in a rush's first second)."""
    web = app.test_client()
    first = {"Authorization": f"Bearer {tokens[0]}"}
    fresh = iter(tokens[1:])

    def download() -> object:
        return web.post(f"/coupons/{coupon_id}/download", headers={"Authorization": f"Bearer {next(fresh)}"})

    return {
        "download (lua, a win)": median_us(download, repeat),
        "download (sold out)": 0.0,  # filled by the caller once the coupon is sold out
        "GET /coupons/<id>": median_us(lambda: web.get(f"/coupons/{coupon_id}", headers=first), repeat),
        "GET /healthz": median_us(lambda: web.get("/healthz"), repeat),
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

    return {
        "one PyJWT decode (a new token)": median_us(lambda: TokenVerifier(secret).verify(next(fresh)), repeat),
        "cached token": median_us(lambda: verifier.verify(cached), repeat),
        "flask-jwt-extended, with a request context (replaced)": median_us(extension, repeat),
    }


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
            tokens = [access_token_for(FIRST_MEMBER + i, "member") for i in range(3 * args.repeat + 10)]
        with target_coupon(app, "hot", args.repeat + 2) as coupon_id:
            costs = endpoint_costs(app, coupon_id, tokens[: args.repeat + 3], args.repeat)
            web = app.test_client()
            later = iter(tokens[args.repeat + 3 :])
            costs["download (sold out)"] = median_us(
                lambda: web.post(f"/coupons/{coupon_id}/download", headers={"Authorization": f"Bearer {next(later)}"}),
                args.repeat,
            )
            tokens_us = token_costs(app, tokens[2 * args.repeat + 6 :], args.repeat // 2)
    print(f"{'endpoint':<34}{'us per request':>16}")
    for name, us in costs.items():
        print(f"{name:<34}{us:>16,.1f}")
    print(f"\n{'verifying one token':<56}{'us':>10}")
    for name, us in tokens_us.items():
        print(f"{name:<56}{us:>10,.1f}")
    share = tokens_us["one PyJWT decode (a new token)"] / costs["download (lua, a win)"]
    print(f"\ntoken share of a winning download: {share:.0%} (a new token every request; a retry costs less)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
