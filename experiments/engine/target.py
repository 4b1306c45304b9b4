"""Target mode: the lab rushes API instances it did not start (``python -m experiments.lab --target URL,...``).

The deployment's own processes serve; the lab is one more client of its database and Redis (the
DATABASE_URL, REDIS_URL or REDIS_CLUSTER_URL and JWT_SECRET_KEY the target runs with). Before anything
is written the lab checks that every target answers /healthz, runs the strategy asked for, and accepts
a token signed with the secret given. Then it seeds members named after the run's id (so a second run
never collides with the first), mints their tokens, registers each run's coupon through the target's
API, and runs, drains and audits as the lab does on its own processes. ``--cleanup`` removes the run's
members, coupons, rows and Redis state afterwards.
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
import sqlalchemy as sa
from flask import Flask
from werkzeug.security import generate_password_hash

from app import create_app
from app.auth import access_token_for
from app.extensions import clients, db
from experiments.data.tokens import split
from experiments.engine import provenance
from experiments.engine.costs import database_pids
from experiments.engine.live import Live
from experiments.engine.stack import Remote

log = logging.getLogger("lab")
TIMEOUT_S = 5.0  # for each check's request
PROBE_MEMBER = (
    10**18 - 1
)  # no member has this id: its coupon list answers 200 (empty) to a good token, 401 to a bad one
SEED_BATCH = 5000  # members a multi-row INSERT


class TargetError(RuntimeError):
    """The target cannot be rushed as asked; the message says what to fix."""


def targets(value: str) -> list[str]:
    """--target: comma-separated base URLs of the API instances, e.g. http://api-1:8000,http://api-2:8000."""
    urls = [u.strip().rstrip("/") for u in value.split(",") if u.strip()]
    bad = [u for u in urls if urlsplit(u).scheme not in ("http", "https") or not urlsplit(u).hostname]
    if bad or not urls:
        raise argparse.ArgumentTypeError(f"not a base URL: {', '.join(bad) or repr(value)} (e.g. http://api-1:8000)")
    return urls


def check_environment() -> None:
    """The target's database, Redis and secret must be named: the lab's embedded defaults are not the target's."""
    missing = [n for n in ("DATABASE_URL", "JWT_SECRET_KEY") if not os.environ.get(n)]
    if not (os.environ.get("REDIS_URL") or os.environ.get("REDIS_CLUSTER_URL")):
        missing.append("REDIS_URL or REDIS_CLUSTER_URL")
    if missing:
        raise TargetError(f"target mode needs the target's {', '.join(missing)} in the environment")


def check_targets(app: Flask, urls: list[str], strategy: str) -> None:
    """Each target answers /healthz with 200 and ``strategy``, and accepts a token signed with our secret."""
    for url in urls:
        try:
            resp = requests.get(f"{url}/healthz", timeout=TIMEOUT_S)
        except requests.RequestException as exc:
            raise TargetError(f"cannot reach the target {url}: {exc}") from None
        body = _json(resp)
        if resp.status_code != 200:
            raise TargetError(f"the target {url} is not healthy: /healthz answered {resp.status_code} {body}")
        runs = body.get("strategy")
        if runs != strategy:
            said = f"runs {runs}" if runs else "does not name its strategy in /healthz"
            raise TargetError(f"the target {url} {said}, not {strategy} (--strategy {strategy})")
    with app.app_context():
        token = access_token_for(PROBE_MEMBER, "member")
    for url in urls:
        resp = requests.get(
            f"{url}/members/me/coupons", headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT_S
        )
        if resp.status_code == 401:
            raise TargetError(
                f"the target {url} refused a token signed with this JWT_SECRET_KEY ({_json(resp).get('message')}): "
                "give the one the target runs with"
            )
        if resp.status_code != 200:
            raise TargetError(f"the target {url} answered a signed-in probe with {resp.status_code} {_json(resp)}")


def _json(resp: requests.Response) -> dict[str, Any]:
    try:
        body = resp.json()
    except ValueError:
        return {"body": resp.text[:200]}
    return body if isinstance(body, dict) else {"body": body}


@dataclass
class MetricsCpu:
    """The API's CPU seconds: ``process_cpu_seconds_total`` on each target's /metrics, summed."""

    urls: list[str]

    @classmethod
    def of(cls, urls: list[str]) -> MetricsCpu | None:
        """A reader if every target exposes the figure, else None."""
        reader = cls(urls)
        return reader if reader.seconds() is not None else None

    def seconds(self) -> float | None:
        """CPU seconds of all the targets' processes so far; None if one does not say."""
        total = 0.0
        for url in self.urls:
            try:
                text = requests.get(f"{url}/metrics", timeout=TIMEOUT_S).text
            except requests.RequestException:
                return None
            found = [line.split()[-1] for line in text.splitlines() if line.startswith("process_cpu_seconds_total")]
            if not found:
                return None
            total += float(found[0])
        return total


@dataclass
class TargetLab:
    """What a run needs, for a deployment the lab did not start (experiments.engine.runs.Lab's fields)."""

    args: argparse.Namespace
    out: Path
    app: Flask
    engine: sa.Engine
    client: Any
    seller_id: int
    token_dir: Path
    live: Live
    db_pids: list[int]
    db_figure: str
    run_id: str
    seller_token: str
    member_ids: list[int]
    coupons: list[int] = field(default_factory=list)
    remote: Remote | None = None
    api_cpu: MetricsCpu | None = None  # None: the targets do not expose their process CPU

    @property
    def prefix(self) -> str:
        """What every member, seller and coupon name of this run starts with."""
        return f"lab-{self.run_id}-"

    def server_env(self) -> dict[str, str]:
        """The environment Locust starts with: the lab's."""
        return dict(os.environ, PYTHONWARNINGS="ignore")

    def config(self) -> dict[str, Any]:
        """The load configuration, what could be read of the target, and what could not be measured."""
        a = self.args
        return {
            **provenance.load_config(a, self.engine, self.client, self.db_figure),
            "locust_workers_remote": a.locust_workers_remote,
            "targets": a.target,
            "server": "target",
            "web_workers": None,
            "web_threads": None,
            "api_cpus": None,
            "not_measured": not_measured(self),
        }


def not_measured(lab: TargetLab) -> list[str]:
    """The figures a target-mode run could not take, each with the reason."""
    gaps = []
    if lab.api_cpu is None:
        gaps.append(
            "API CPU: the targets' /metrics do not expose process_cpu_seconds_total "
            "(under gunicorn, prometheus-client's multiprocess mode serves no process collector)"
        )
    if not lab.db_pids:
        gaps.append(f"database CPU: {lab.db_figure}")
    if lab.args.locust_workers_remote:
        gaps.append("load generator CPU: the remote Locust workers' (only this machine's Locust processes are counted)")
    if lab.args.strategies == ["lock"]:
        gaps.append("lock hold times: the probe runs only in API processes the lab starts")
    gaps.append(
        "round trips counted by the API's clients, and the RTT they waited: the probe runs only in API processes "
        "the lab starts (the stores' own counters, Redis commands and database statements a request, are taken)"
    )
    return gaps


def prepare(
    args: argparse.Namespace, out: Path, live: Live, run_id: str, before_seeding: Callable[[], object] = lambda: None
) -> TargetLab:
    """Check the target (and call ``before_seeding``), then seed the run's members and mint their tokens."""
    check_environment()
    app = create_app()
    check_targets(app, args.target, args.strategies[0])
    before_seeding()
    with app.app_context():
        engine, client = db.engine, clients().state_redis
        prefix = f"lab-{run_id}-"
        log.info("seeding %s members named %s*", args.members, prefix)
        seller_id, member_ids = seed_members(engine, prefix, args.members)
        seller_token = access_token_for(seller_id, "seller")
        token_dir = out / "tokens"
        write_tokens(member_ids, args.locust_workers + args.locust_workers_remote, token_dir)
    pids, figure = database_pids(engine)
    lab = TargetLab(
        args, out, app, engine, client, seller_id, token_dir, live, pids, figure, run_id, seller_token, member_ids
    )
    lab.api_cpu = MetricsCpu.of(args.target)
    return lab


def seed_members(engine: sa.Engine, prefix: str, count: int) -> tuple[int, list[int]]:
    """A seller and ``count`` members named ``prefix``...; their ids (the database picks them)."""
    member = sa.table("member", *(sa.column(c) for c in ("id", "username", "password_hash", "role", "created_at")))
    unusable = generate_password_hash(os.urandom(16).hex())  # nobody signs in as them: tokens are minted
    now = datetime.now(UTC).replace(tzinfo=None)
    rows = [{"username": f"{prefix}seller", "role": "seller"}]
    rows += [{"username": f"{prefix}m{i}", "role": "member"} for i in range(1, count + 1)]
    with engine.begin() as conn:
        for start in range(0, len(rows), SEED_BATCH):
            batch = [dict(r, password_hash=unusable, created_at=now) for r in rows[start : start + SEED_BATCH]]
            conn.execute(sa.insert(member), batch)
        found = conn.execute(
            sa.select(member.c.id, member.c.role).where(member.c.username.like(f"{prefix}%")).order_by(member.c.id)
        ).all()
    seller = next(i for i, role in found if role == "seller")
    return int(seller), [int(i) for i, role in found if role == "member"]


def write_tokens(member_ids: list[int], files: int, out_dir: Path) -> list[Path]:
    """The members' access tokens in ``files`` CSVs, as experiments.tokens writes them (app context needed)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths, done = [], 0
    for index, size in enumerate(split(len(member_ids), files)):
        path = out_dir / f"tokens_{index:02d}.csv"
        with open(path, "w", newline="", encoding="utf-8") as f:
            rows = csv.writer(f, lineterminator="\n")
            rows.writerow(("member_id", "access_token"))
            rows.writerows((m, access_token_for(m, "member")) for m in member_ids[done : done + size])
        done += size
        paths.append(path)
    return paths


def register_coupon(lab: TargetLab, mode: str) -> int:
    """A fresh coupon, registered by the run's seller through the target's own API."""
    resp = requests.post(
        f"{lab.args.target[0]}/coupons",
        json={"name": f"{lab.prefix}{mode}", "quantity": lab.args.quantity},
        headers={"Authorization": f"Bearer {lab.seller_token}"},
        timeout=30,
    )
    if resp.status_code != 201:
        raise TargetError(f"the target refused the run's coupon: {resp.status_code} {_json(resp)}")
    coupon_id = int(resp.json()["id"])
    lab.coupons.append(coupon_id)
    return coupon_id


def cleanup(lab: TargetLab) -> None:
    """Remove the run's rows, coupons, members and Redis state from the target's stores."""
    from strategies import keys

    client = lab.client
    pipe = client.pipeline(transaction=False)
    for coupon_id in lab.coupons:
        for key in (keys.coupon, keys.winners, keys.queue, keys.unsettled, keys.drain_lock):
            pipe.delete(key(coupon_id))
        pipe.srem(keys.COUPON_REGISTRY, coupon_id)
        pipe.srem(keys.DRAIN_DUE, coupon_id)
    for member_id in lab.member_ids:
        pipe.delete(keys.member_pending(member_id))
    pipe.execute()
    like = {"p": f"{lab.prefix}%"}
    with lab.engine.begin() as conn:
        conn.execute(
            sa.text(
                "DELETE FROM member_coupon WHERE coupon_id IN "
                "(SELECT id FROM coupon WHERE seller_id IN (SELECT id FROM member WHERE username LIKE :p))"
            ),
            like,
        )
        conn.execute(
            sa.text("DELETE FROM coupon WHERE seller_id IN (SELECT id FROM member WHERE username LIKE :p)"), like
        )
        conn.execute(sa.text("DELETE FROM member WHERE username LIKE :p"), like)
    print(f"cleanup: removed {len(lab.member_ids)} members and {len(lab.coupons)} coupons named {lab.prefix}*")
