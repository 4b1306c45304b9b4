"""Revocation through real processes: a command mid-rush reaches every gunicorn worker within 2 s.

Each request carries its own X-Request-ID and gunicorn's access log names the worker (pid) that
answered it, so the test knows when each worker started refusing, counted from the command's return.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
import requests
from flask import Flask

from app import revocations
from support.procs import ROOT, Proc, Processes, start_gunicorn, wait_for
from support.redis_servers import RedisServer
from tests import services as svc
from tests.helpers import app_config, bearer, make_members, new_coupon

APPLIES_WITHIN_S = 2.0  # the contract: every API process refuses within 2 s of the command's return
WORKERS = 3
ACCESS = re.compile(r"pid=<?(\d+)>? rid=([0-9a-f]{32}) status=(\d{3})")


@contextmanager
def recorded(env: Mapping[str, str]) -> Iterator[list[float]]:
    """Watch the broker Redis: the list gets time.monotonic() when the next revocation entry is logged."""
    client = redis.Redis.from_url(env["REDIS_URL"])
    before = int(client.hget(revocations.META, "seq") or 0)
    seen: list[float] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set() and not seen:
            if int(client.hget(revocations.META, "seq") or 0) > before:
                seen.append(time.monotonic())
            time.sleep(0.01)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield seen
    finally:
        stop.set()
        watcher.join(5)
        client.close()


def flask_cli(env: Mapping[str, str], *args: str, input: str | None = None) -> float:
    """``flask --app wsgi <args>`` as an operator runs it; time.monotonic() at its return."""
    done = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", *args],
        cwd=ROOT,
        env=dict(env),
        input=input,
        capture_output=True,
        text=True,
        timeout=120,
    )
    returned = time.monotonic()
    assert done.returncode == 0, done.stdout + done.stderr
    return returned


def serve(procs: Processes, env: Mapping[str, str], log_dir: Path, name: str = "gunicorn") -> tuple[Proc, str, Path]:
    """gunicorn with WORKERS workers and an access log naming the worker of each request id."""
    access = log_dir / f"{name}-access.log"
    run_env = dict(
        env,
        ACCESS_LOG=str(access),
        GUNICORN_CMD_ARGS="--access-logformat 'pid=%(p)s rid=%({x-request-id}o)s status=%(s)s'",
    )
    proc, base = start_gunicorn(run_env, log_dir / f"{name}.log", workers=WORKERS, threads=4)
    return procs.add(proc), base, access


@dataclass
class Rush:
    """Threads sending one request after another, each on a new connection (so every worker gets some)."""

    send: Callable[[dict[str, str]], requests.Response]
    threads: int = 6
    sent: dict[str, tuple[float, int]] = field(default_factory=dict)  # request id -> (sent at, status)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def snapshot(self) -> dict[str, tuple[float, int]]:
        """What was sent so far."""
        with self._lock:
            return dict(self.sent)

    def _loop(self) -> None:
        while not self._stop.is_set():
            rid = uuid.uuid4().hex
            at = time.monotonic()
            try:
                status = self.send({"X-Request-ID": rid}).status_code
            except requests.RequestException:
                status = 0
            with self._lock:
                self.sent[rid] = (at, status)
            time.sleep(0.005)  # a member's loop, not a load test: leave the shared cores some air

    @contextmanager
    def running(self) -> Iterator[Rush]:
        workers = [threading.Thread(target=self._loop, daemon=True) for _ in range(self.threads)]
        for w in workers:
            w.start()
        try:
            yield self
        finally:
            self._stop.set()
            for w in workers:
                w.join(30)


def answered_by(access: Path) -> dict[str, int]:
    """Request id -> the worker pid that answered it, from the access log."""
    return {rid: int(pid) for pid, rid, _ in ACCESS.findall(access.read_text())}


def refusing_after(rush: Rush, access: Path, since: float) -> dict[int, float]:
    """Worker pid -> seconds after ``since`` of the last request sent to it that was not refused."""
    workers = answered_by(access)
    last: dict[int, float] = {}
    for rid, (at, status) in rush.snapshot().items():
        pid = workers.get(rid)
        if pid is not None:
            last.setdefault(pid, float("-inf"))
            if status != 401:
                last[pid] = max(last[pid], at - since)
    return last


def wait_every_worker_refusing(rush: Rush, access: Path, since: float) -> dict[int, float]:
    """Rush on until every worker answered requests sent 2 s after ``since``; the per-worker latency."""

    def seen_late() -> bool:
        workers = answered_by(access)
        late = {workers[r] for r, (at, _) in rush.snapshot().items() if at > since + APPLIES_WITHIN_S and r in workers}
        return len(late) == WORKERS

    wait_for(seen_late, 60, f"all {WORKERS} workers to answer after the command", every_s=0.2)
    latency = refusing_after(rush, access, since)
    assert len(latency) == WORKERS, latency
    assert all(s < APPLIES_WITHIN_S for s in latency.values()), latency
    return latency


def login(base: str, username: str, password: str = "password") -> requests.Response:
    return requests.post(f"{base}/auth/login", json={"username": username, "password": password}, timeout=30)


def downloads(base: str, coupon_id: int, token: str) -> Callable[[dict[str, str]], requests.Response]:
    url = f"{base}/coupons/{coupon_id}/download"
    return lambda headers: requests.post(url, headers={**headers, **bearer(token)}, timeout=30)


def test_a_ban_mid_rush_reaches_every_worker_within_2_s_and_unban_restores_log_in(
    backend: tuple[Flask, dict[str, str]], tmp_path: Path
) -> None:
    app, env = backend
    ((_, seller),) = make_members(app, 1, role="seller", prefix="shop")
    ((_, token),) = make_members(app, 1)
    with Processes() as procs:
        _, base, access = serve(procs, env, tmp_path)
        coupon_id = new_coupon(base, seller, quantity=100)["id"]
        with Rush(downloads(base, coupon_id, token)).running() as rush:
            wait_for(lambda: len(rush.sent) > 30, 30, "the rush to start")
            assert {s for _, s in rush.snapshot().values()} <= {202, 409}  # won once, then already_issued
            started = time.monotonic()
            with recorded(env) as at:
                returned = flask_cli(env, "ban", "m0")
            wait_every_worker_refusing(rush, access, returned)
            from_record = refusing_after(rush, access, at[0])
        # From the entry's arrival in Redis (the command's process then still has to exit).
        assert all(s < APPLIES_WITHIN_S for s in from_record.values()), from_record
        print(
            f"ban: command {returned - started:.1f} s, recorded {returned - at[0]:.1f} s before its return; "
            f"last request accepted per worker, s after the record: {from_record}"
        )
        assert login(base, "m0").status_code == 401
        flask_cli(env, "unban", "m0")
        assert requests.get(f"{base}/members/me/coupons", headers=bearer(token)).status_code == 401  # before the ban
        fresh = login(base, "m0")
        assert fresh.status_code == 200, fresh.text
        again = downloads(base, coupon_id, fresh.json()["access_token"])
        # Each worker learns of the unban at its next refresh, as of a ban: within 2 s, every one answers
        # the member (409: it won before the ban), none refuses its new token.
        wait_for(
            lambda: [again({}).status_code for _ in range(2 * WORKERS)] == [409] * (2 * WORKERS),
            APPLIES_WITHIN_S,
            "every worker to take the unbanned member's new token",
        )


def test_delete_user_mid_rush_reaches_every_worker_and_the_id_is_never_given_again(
    app: Flask, process_env: dict[str, str], tmp_path: Path
) -> None:
    ((_, seller),) = make_members(app, 1, role="seller", prefix="shop")
    ((member_id, token),) = make_members(app, 1)
    with Processes() as procs:
        _, base, access = serve(procs, process_env, tmp_path)
        coupon_id = new_coupon(base, seller, quantity=100)["id"]
        with Rush(downloads(base, coupon_id, token)).running() as rush:
            wait_for(lambda: len(rush.sent) > 30, 30, "the rush to start")
            with recorded(process_env) as at:
                returned = flask_cli(process_env, "delete-user", "m0")
            wait_every_worker_refusing(rush, access, returned)
            from_record = refusing_after(rush, access, at[0])
        assert all(s < APPLIES_WITHIN_S for s in from_record.values()), from_record
        print(f"delete-user: last request accepted per worker, s after the record: {from_record}")
        signup = requests.post(f"{base}/auth/signup", json={"username": "newcomer", "password": "pw"}, timeout=30)
        assert signup.status_code == 201 and signup.json()["id"] > member_id


def test_a_demoted_seller_is_refused_within_2_s_and_then_forbidden(
    app: Flask, process_env: dict[str, str], tmp_path: Path
) -> None:
    ((_, seller),) = make_members(app, 1, role="seller", prefix="shop")
    with Processes() as procs:
        _, base, access = serve(procs, process_env, tmp_path)

        def register(headers: dict[str, str]) -> requests.Response:
            body = {"name": "c", "quantity": 1}
            return requests.post(f"{base}/coupons", json=body, headers={**headers, **bearer(seller)}, timeout=30)

        with Rush(register, threads=3).running() as rush:
            wait_for(lambda: len(rush.sent) > 10, 30, "the rush to start")
            assert {s for _, s in rush.snapshot().values()} == {201}
            returned = flask_cli(process_env, "set-role", "shop0", "member")
            wait_every_worker_refusing(rush, access, returned)
        demoted = login(base, "shop0").json()["access_token"]
        refused = requests.post(f"{base}/coupons", json={"name": "c", "quantity": 1}, headers=bearer(demoted))
        assert (refused.status_code, refused.json()["error"]) == (403, "forbidden")


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of the test's own without persistence: a restart loses everything it held."""
    server = RedisServer(tmp_path / "redis", appendfsync=None).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def own_redis_app(services: svc.Services, migrated: None, own_redis: RedisServer) -> Iterator[Flask]:
    """An app on the suite's database (clean tables) and the test's own Redis."""
    from app import create_app
    from app.extensions import clients, db

    app = create_app(app_config(services, "lua", REDIS_URL=own_redis.url))
    with app.app_context():
        svc.reset(db.engine, clients().broker)
    yield app
    with app.app_context():
        db.engine.dispose()


def test_a_ban_survives_a_restart_of_every_process_and_of_redis(
    own_redis_app: Flask, own_redis: RedisServer, process_env: dict[str, str], tmp_path: Path
) -> None:
    app, env = own_redis_app, dict(process_env, REDIS_URL=own_redis.url)
    (_, banned), (_, other) = make_members(app, 2)
    with Processes() as procs:
        server, base, _ = serve(procs, env, tmp_path, "first")
        flask_cli(env, "ban", "m0")
        wait_for(
            lambda: requests.get(f"{base}/members/me/coupons", headers=bearer(banned)).status_code == 401, 5, "ban"
        )
        server.kill9()
        own_redis.kill9()
        own_redis.start()  # empty: no persistence
        assert own_redis.client().dbsize() == 0
        _, base, _ = serve(procs, env, tmp_path, "second")
        for _ in range(2 * WORKERS):
            assert requests.get(f"{base}/members/me/coupons", headers=bearer(banned)).status_code == 401
            assert requests.get(f"{base}/members/me/coupons", headers=bearer(other)).status_code == 200
        assert login(base, "m0").status_code == 401


def test_redis_unreachable_for_6_s_answers_503_then_recovers(
    own_redis_app: Flask, own_redis: RedisServer, process_env: dict[str, str], tmp_path: Path
) -> None:
    app, env = own_redis_app, dict(process_env, REDIS_URL=own_redis.url)
    ((_, token),) = make_members(app, 1)
    with Processes() as procs:
        server, base, _ = serve(procs, env, tmp_path)

        def read() -> requests.Response:
            return requests.get(f"{base}/members/me/coupons", headers=bearer(token), timeout=30)

        assert read().status_code == 200
        own_redis.kill9()
        down_at = time.monotonic()
        # The view's own refusal (not an outage of the request's Redis call): fail closed past 5 s.
        wait_for(
            lambda: read().status_code == 503 and "revocations were last refreshed" in server.output(), 20, "its 503"
        )
        resp = read()
        assert (resp.status_code, resp.json()["error"]) == (503, "unavailable")
        time.sleep(max(0.0, 6 - (time.monotonic() - down_at)))
        own_redis.start()
        wait_for(lambda: all(read().status_code == 200 for _ in range(2 * WORKERS)), 20, "reads to recover")
