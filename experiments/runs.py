"""One lab run: a fresh coupon, the service, the load, the drain awaited, the audit."""

from __future__ import annotations

import argparse
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import Flask

from app import create_app
from app.extensions import clients, db
from app.validation import NewCoupon
from experiments import audit as audits
from experiments.analysis import summarise
from experiments.bench import drain_benchmark
from experiments.procs import ROOT, gunicorn_settings, wait_for
from experiments.stack import run_locust, service
from strategies import keys

log = logging.getLogger("lab")
SELLER = "lab-seller"


@dataclass
class Lab:
    """The experiment's fixed parts: settings, app, database, Redis, process env, tokens."""

    args: argparse.Namespace
    out: Path
    app: Flask
    engine: sa.Engine
    client: Any
    env: dict[str, str]
    seller_id: int
    token_dir: Path

    @classmethod
    def prepare(cls, args: argparse.Namespace, out: Path) -> Lab:
        """Migrate, seed members, mint one token file per Locust worker."""
        from flask_migrate import upgrade

        from experiments.seed import seed
        from experiments.tokens import write_token_files

        app = create_app()
        with app.app_context():
            upgrade(directory=str(ROOT / "migrations"))
            engine, client = db.engine, clients().state_redis
            log.info("seeding %s members", args.members)
            seed(engine, args.members, 0, 0, progress=None)
            seller_id = _seller(app)
            token_dir = out / "tokens"
            log.info("minting %s tokens in %s files", args.members, args.locust_workers)
            write_token_files(args.members, args.locust_workers, token_dir)
        env = dict(
            os.environ,
            DATABASE_URL=app.config["SQLALCHEMY_DATABASE_URI"],
            REDIS_URL=app.config["REDIS_URL"],
            JWT_SECRET_KEY=app.config["JWT_SECRET_KEY"],
            PYTHONWARNINGS="ignore",
        )
        return cls(args, out, app, engine, client, env, seller_id, token_dir)

    def config(self) -> dict[str, Any]:
        """The load configuration as results.json records it."""
        a = self.args
        info = self.client.info("server")
        server = gunicorn_settings(self.server_env())
        return {
            "users": a.users,
            "duration_s": a.duration,
            "quantity": a.quantity,
            "members": a.members,
            "locust_workers": a.locust_workers,
            "web_workers": server["workers"],
            "web_threads": server["threads"],
            "spawn_rate": a.spawn_rate,
            "database": self.engine.dialect.name,
            "redis": f"redis {info.get('redis_version')}",
        }

    def server_env(self) -> dict[str, str]:
        """The environment API instances start with: the lab's, plus any --web-* override."""
        overrides = (("WEB_WORKERS", self.args.web_workers), ("WEB_THREADS", self.args.web_threads))
        return dict(self.env, **{k: str(v) for k, v in overrides if v is not None})

    def drain_benchmarks(self, winners: int) -> list[dict[str, float]]:
        """Drain throughput at a few batch sizes."""
        if not winners:
            return []
        results = []
        with self.app.app_context():
            for batch in (100, 1000, 5000):
                log.info("drain benchmark: %s winners in batches of %s", winners, batch)
                results.append(drain_benchmark(self.client, self.engine, winners, batch))
        return results


def _seller(app: Flask) -> int:
    from app.auth import create_member
    from app.models import Member

    found = db.session.scalar(sa.select(Member.id).where(Member.username == SELLER))
    return found if found is not None else create_member(SELLER, os.urandom(16).hex(), "seller").id


@dataclass
class Monitor:
    """Samples the coupon's persisted rows every 20 ms: when did the last row land?"""

    engine: sa.Engine
    coupon_id: int
    samples: list[tuple[float, int]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        query = sa.text("SELECT COUNT(*) FROM member_coupon WHERE coupon_id = :c")
        with self.engine.connect() as conn:
            while not self._stop.wait(0.02):
                rows = int(conn.execute(query, {"c": self.coupon_id}).scalar_one())
                conn.rollback()  # a fresh snapshot next time
                if not self.samples or self.samples[-1][1] != rows:
                    self.samples.append((time.time(), rows))

    @property
    def rows(self) -> int:
        """Rows seen so far."""
        return self.samples[-1][1] if self.samples else 0

    def stop(self) -> None:
        """Stop sampling."""
        self._stop.set()
        self._thread.join()

    def first_at(self, rows: int) -> float | None:
        """When the row count first reached ``rows``."""
        return next((t for t, n in self.samples if n >= rows), None)


def one_run(lab: Lab, mode: str, instances: int) -> dict[str, Any]:
    """Rush ``mode`` (lock, lua, or read: the ceiling) on ``instances`` API instances."""
    a = lab.args
    strategy = "lua" if mode == "read" else mode
    with lab.app.app_context():
        from app import issuance

        coupon_id = issuance.register_coupon(lab.seller_id, NewCoupon(name=f"lab {mode}", quantity=a.quantity))["id"]
    label = f"{mode} x{instances}"
    logs = lab.out / "logs" / f"{mode}-{instances}"
    logs.mkdir(parents=True, exist_ok=True)
    env = dict(lab.server_env(), ISSUE_STRATEGY=strategy)
    print(f"== {label}: {a.users} users for {a.duration} s on coupon {coupon_id} (quantity {a.quantity})", flush=True)
    with service(env, instances, logs, drain=strategy == "lua") as hosts:
        monitor = Monitor(lab.engine, coupon_id)

        def progress(elapsed: float) -> None:
            if int(elapsed) % 5 == 0:
                print(f"   {label}: {elapsed:3.0f}/{a.duration} s, rows persisted {monitor.rows}", flush=True)

        load = run_locust(
            env,
            hosts,
            coupon_id,
            "read" if mode == "read" else "download",
            a.users,
            a.spawn_rate,
            a.duration,
            a.locust_workers,
            lab.token_dir,
            logs,
            progress,
        )
        if mode != "read":
            winners = audits.winners_in_redis(lab.client, strategy, coupon_id, a.quantity)
            wait_for(
                lambda: monitor.rows >= winners and not lab.client.zcard(keys.queue(coupon_id)),
                120,
                f"{label}: the drain of {winners} winners",
            )
        monitor.stop()
    return _result(lab, mode, instances, coupon_id, load, monitor)


def _result(lab: Lab, mode: str, instances: int, coupon_id: int, load: Any, monitor: Monitor) -> dict[str, Any]:
    a = lab.args
    rows = audits.persisted(lab.engine, coupon_id) if mode != "read" else []
    last_win = max((audits.epoch(t) for _, t in rows), default=None)
    sold_out = last_win if len(rows) >= a.quantity else None
    result: dict[str, Any] = {
        "strategy": mode,
        "instances": instances,
        "coupon_id": coupon_id,
        **summarise(load.records, sold_out, rush=mode != "read"),
    }
    won = sum(v for k, v in result["statuses"].items() if k.startswith("2")) if mode != "read" else 0
    result["winners"] = len(rows) if mode != "read" else None
    result["audit"] = (
        None
        if mode == "read"
        else audits.audit(
            lab.client, lab.engine, mode, coupon_id, a.quantity, load.asked, won, result["failures"], load.in_flight
        )
    )
    result["drain"] = None
    if mode == "lua" and rows and last_win is not None:
        first_row, last_row = monitor.first_at(1), monitor.first_at(len(rows))
        if first_row is not None and last_row is not None:
            result["drain"] = {
                "lag_s": round(max(last_row - last_win, 0.0), 3),
                "rows_per_s": round(len(rows) / max(last_row - first_row, 1e-3)),
            }
    result["loadgen_cpu_share"] = round(load.cpu_s / (load.wall_s * (os.cpu_count() or 1)), 3)
    verdict = "n/a" if result["audit"] is None else ("OK" if result["audit"]["ok"] else "FAIL")
    print(
        f"   {mode} x{instances}: {result['tps']:.0f} TPS, p50 {result['latency_ms']['p50'] or 0:.0f} ms, "
        f"audit {verdict}",
        flush=True,
    )
    return result
