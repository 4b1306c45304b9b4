"""Abuse through a real gunicorn: failed logins throttled, no username oracle, no token outliving its account."""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import jwt as pyjwt
import requests
from flask import Flask

from app import revocations
from app.extensions import clients
from support.procs import start_gunicorn, wait_for
from tests.helpers import TEST_SECRET, assert_error, bearer, make_members


@contextmanager
def gunicorn(process_env: dict[str, str], tmp_path: Path, **env: str) -> Iterator[str]:
    """One gunicorn worker with ``env`` on top of the suite's; yields its base URL."""
    proc, base = start_gunicorn(dict(process_env, **env), tmp_path / "gunicorn.log", workers=1, threads=4)
    try:
        yield base
    finally:
        proc.stop()


def login(base: str, username: str, password: str) -> requests.Response:
    return requests.post(f"{base}/auth/login", json={"username": username, "password": password}, timeout=10)


def test_failed_logins_per_username_answer_429_and_others_still_log_in(
    app: Flask, process_env: dict[str, str], tmp_path: Path
) -> None:
    make_members(app, 2, prefix="user")
    with gunicorn(
        process_env, tmp_path, LOGIN_FAILURES_PER_USERNAME="3 per minute", LOGIN_FAILURES_PER_ADDRESS="100 per minute"
    ) as base:
        for _ in range(5):  # successes never count
            assert login(base, "user0", "password").status_code == 200
        for _ in range(3):
            assert_error(login(base, "user0", "wrong"), 401, "bad_credentials")
        for password in ("wrong", "password"):  # over the limit, even the right password waits
            refused = login(base, "USER0", password)  # names compare without case, so does the limit
            assert_error(refused, 429, "too_many_requests")
            assert 1 <= int(refused.headers["Retry-After"]) <= 61  # the window, rounded up
        assert login(base, "user1", "password").status_code == 200


def test_failed_logins_per_address_answer_429(app: Flask, process_env: dict[str, str], tmp_path: Path) -> None:
    make_members(app, 1, prefix="user")
    with gunicorn(
        process_env, tmp_path, LOGIN_FAILURES_PER_USERNAME="100 per minute", LOGIN_FAILURES_PER_ADDRESS="4 per minute"
    ) as base:
        for i in range(4):
            assert_error(login(base, f"nobody{i}", "wrong"), 401, "bad_credentials")
        assert_error(login(base, "user0", "password"), 429, "too_many_requests")


def test_behind_a_proxy_the_forwarded_address_is_counted(
    app: Flask, process_env: dict[str, str], tmp_path: Path
) -> None:
    with gunicorn(process_env, tmp_path, PROXY_HOPS="1", LOGIN_FAILURES_PER_ADDRESS="2 per minute") as base:

        def from_(address: str, username: str) -> requests.Response:
            body = {"username": username, "password": "wrong"}
            return requests.post(f"{base}/auth/login", json=body, headers={"X-Forwarded-For": address}, timeout=10)

        for i in range(2):
            assert_error(from_("10.0.0.1", f"a{i}"), 401, "bad_credentials")
        assert_error(from_("10.0.0.1", "a9"), 429, "too_many_requests")
        assert_error(from_("10.0.0.2", "a9"), 401, "bad_credentials")  # another client behind the same nginx


def test_unknown_and_known_usernames_fail_alike(app: Flask, process_env: dict[str, str], tmp_path: Path) -> None:
    make_members(app, 1, prefix="user")

    def median_s(username: str) -> float:
        times = []
        for _ in range(3):
            start = time.perf_counter()
            assert_error(login(base, username, "wrong"), 401, "bad_credentials")
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    with gunicorn(process_env, tmp_path) as base:
        login(base, "warm-up", "wrong")
        known, unknown = median_s("user0"), median_s("nobody")
    # Both check one scrypt hash (~90 ms here); without the dummy hash an unknown name took 1-4 ms.
    assert unknown > 0.5 * known, (known, unknown)


def test_deleted_accounts_are_refused_everywhere(app: Flask, process_env: dict[str, str], tmp_path: Path) -> None:
    (seller_id, seller_token), (_, gone_seller_token) = make_members(app, 2, role="seller", prefix="shop")
    ((member_id, member_token),) = make_members(app, 1)
    with gunicorn(process_env, tmp_path) as base:
        coupon = requests.post(f"{base}/coupons", json={"name": "c", "quantity": 5}, headers=bearer(seller_token))
        assert coupon.status_code == 201, coupon.text
        coupon_id = coupon.json()["id"]
        with app.app_context():  # as `flask delete-user` does
            revocations.delete(clients().broker, "shop1")
            revocations.delete(clients().broker, "m0")

        def refused() -> bool:
            return requests.get(f"{base}/members/me/coupons", headers=bearer(member_token)).status_code == 401

        wait_for(refused, 5, "the deletion to reach the worker")
        new = requests.post(f"{base}/coupons", json={"name": "x", "quantity": 1}, headers=bearer(gone_seller_token))
        assert_error(new, 401, "unauthorized")  # never a 500 from the foreign key
        assert_error(requests.get(f"{base}/coupons/{coupon_id}", headers=bearer(member_token)), 401, "unauthorized")
        # The hot path too: the revocation view answers in memory, with no database trip.
        won = requests.post(f"{base}/coupons/{coupon_id}/download", headers=bearer(member_token))
        assert_error(won, 401, "unauthorized")
        assert requests.get(f"{base}/coupons/{coupon_id}", headers=bearer(seller_token)).status_code == 200
    assert seller_id and member_id


def test_a_signed_token_without_exp_is_refused(app: Flask, process_env: dict[str, str], tmp_path: Path) -> None:
    ((member_id, _),) = make_members(app, 1)
    now = int(time.time())
    claims = {"sub": str(member_id), "role": "member", "type": "access", "fresh": False, "jti": "j", "iat": now}
    token = pyjwt.encode(claims, TEST_SECRET, algorithm="HS256")
    with gunicorn(process_env, tmp_path) as base:
        assert_error(requests.post(f"{base}/coupons/1/download", headers=bearer(token)), 401, "unauthorized")
        assert_error(requests.get(f"{base}/members/me/coupons", headers=bearer(token)), 401, "unauthorized")


def test_passwords_are_kept_as_typed_and_times_out_of_range_are_refused(
    app: Flask, process_env: dict[str, str], tmp_path: Path
) -> None:
    ((_, seller_token),) = make_members(app, 1, role="seller", prefix="shop")
    with gunicorn(process_env, tmp_path) as base:
        signup = requests.post(f"{base}/auth/signup", json={"username": "  bob ", "password": "  secret  "})
        assert signup.status_code == 201 and signup.json()["username"] == "bob", signup.text
        assert_error(login(base, "bob", "secret"), 401, "bad_credentials")
        assert login(base, " bob", "  secret  ").status_code == 200
        for field, value in (("starts_at", "0001-01-01T00:00:00+23:00"), ("ends_at", "9999-12-31T23:59:59-10:00")):
            body = {"name": "c", "quantity": 1, field: value}
            assert_error(
                requests.post(f"{base}/coupons", json=body, headers=bearer(seller_token)), 400, "invalid_request"
            )


def test_create_user_prompts_for_a_hidden_confirmed_password(app: Flask) -> None:
    runner = app.test_cli_runner()
    done = runner.invoke(args=["create-user", "carol", "--role", "seller"], input="a\nb\ns3cret \ns3cret \n")
    assert done.exit_code == 0, done.output
    assert "do not match" in done.output.lower() and "s3cret" not in done.output
    with app.test_client() as client:
        ok = client.post("/auth/login", json={"username": "carol", "password": "s3cret "})
        assert ok.status_code == 200, ok.data


def test_the_download_path_runs_no_limiter_hook(app: Flask) -> None:
    from app.extensions import limiter

    app_wide = [*app.before_request_funcs.get(None, []), *app.after_request_funcs.get(None, [])]
    assert not [
        hook for hook in app_wide if limiter in getattr(hook, "args", ()) or getattr(hook, "__self__", None) is limiter
    ]
    assert app.after_request_funcs["auth"], "the failed-login deductions run for the auth blueprint"
