"""The lab's fixed parts, and one run: a fresh coupon, the service, the load sampled, the drain, the audit."""

from __future__ import annotations

import argparse
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from flask import Flask

from app.validation import NewCoupon
from experiments.engine import audit as audits
from experiments.engine import costs, network, provenance
from experiments.engine.analysis import percentile, sellout_answer, summarise
from experiments.engine.drain_bench import drain_benchmark
from experiments.engine.live import Live
from experiments.engine.results import Drain, DrainBench, LockHold, RunResult
from experiments.engine.stack import LoadResult, run_locust, service
from strategies import clock, keys
from support.procs import GRANIAN_BACKLOG, ROOT, gunicorn_settings, wait_for

if TYPE_CHECKING:
    from experiments.engine.target import TargetLab

log = logging.getLogger("lab")
PROBE = ROOT / "experiments" / "engine" / "probe"


@dataclass
class Lab:
    """The experiment's fixed parts: settings, app, database, Redis, process env, tokens, live page."""

    args: argparse.Namespace
    out: Path
    app: Flask
    engine: sa.Engine
    client: Any
    env: dict[str, str]
    seller_id: int
    token_dir: Path
    live: Live
    db_pids: list[int]
    db_figure: str

    def config(self) -> dict[str, Any]:
        """The load configuration and every setting, as results.json records them."""
        a = self.args
        server = gunicorn_settings(self.server_env())
        return {
            **provenance.load_config(a, self.engine, self.client, self.db_figure),
            "server": a.server,
            "web_workers": server["workers"],
            "web_threads": server["threads"],
            "api_cpus": sorted(a.api_cpus) if a.api_cpus else None,
            "rtt_ms": a.rtt_ms,
            a.server: (
                {k: server[k] for k in ("worker_class", "workers", "threads", "worker_connections", "backlog")}
                if a.server == "gunicorn"
                else {"workers": server["workers"], "blocking_threads": server["threads"], "backlog": GRANIAN_BACKLOG}
            ),
        }

    def server_env(self) -> dict[str, str]:
        """The environment API instances start with: the lab's, plus any --web-* override."""
        overrides = (("WEB_WORKERS", self.args.web_workers), ("WEB_THREADS", self.args.web_threads))
        return dict(self.env, **{k: str(v) for k, v in overrides if v is not None})

    def drain_benchmarks(self, winners: int) -> list[DrainBench]:
        """Drain throughput at a few batch sizes."""
        if not winners:
            return []
        results = []
        with self.app.app_context():
            for batch in (100, 1000, 5000):
                log.info("drain benchmark: %s winners in batches of %s", winners, batch)
                results.append(drain_benchmark(self.client, self.engine, winners, batch))
        return results


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


def one_run(lab: Lab, mode: str, instances: int, repeat: int = 0, rtt_ms: float = 0.0) -> RunResult:
    """Rush ``mode`` (lock, lua, or read: the ceiling) on ``instances`` API instances, ``rtt_ms`` between tiers."""
    a = lab.args
    strategy = "lua" if mode == "read" else mode
    with lab.app.app_context():
        from app import issuance

        coupon_id = issuance.register_coupon(lab.seller_id, NewCoupon(name=f"lab {mode}", quantity=a.quantity))["id"]
    at_rtt = f" rtt {rtt_ms:g} ms" if rtt_ms else ""
    label = f"{mode} x{instances}{at_rtt}" + (f" #{repeat + 1}" if a.repeat > 1 else "")
    logs = lab.out / "logs" / (f"{mode}-{instances}" + (f"-rtt{rtt_ms:g}" if rtt_ms else ""))
    logs = logs / str(repeat + 1) if a.repeat > 1 else logs
    holds = logs / "lock-hold"
    holds.mkdir(parents=True, exist_ok=True)
    env = dict(lab.server_env(), ISSUE_STRATEGY=strategy)
    if mode == "lock":
        env.update(LAB_LOCK_HOLD_DIR=str(holds), PYTHONPATH=_pythonpath(env))
    net = logs / "net"
    net.mkdir(exist_ok=True)
    served = dict(env, LAB_NET_DIR=str(net), LAB_RTT_MS=str(rtt_ms), PYTHONPATH=_pythonpath(env))
    print(f"== {label}: {a.users} users for {a.duration} s on coupon {coupon_id} (quantity {a.quantity})", flush=True)
    with service(served, instances, logs, drain=strategy == "lua", cpus=a.api_cpus, server=a.server) as running:
        monitor = Monitor(lab.engine, coupon_id)
        sampler = costs.Sampler(running.pids, lab.client, lab.db_pids)
        servers = network.ServerCounters(lab.client, lab.engine)
        sampler.listeners.append(servers.take)
        lab.live.begin(label, coupon_id, mode, a.quantity, lab.client, monitor, logs)

        def progress(elapsed: float) -> None:
            if line := progress_line(label, elapsed, a.duration, monitor.rows):
                print(line, flush=True)

        sampler.start()  # just before Locust starts
        load = run_locust(
            env,
            running.hosts,
            coupon_id,
            "read" if mode == "read" else "download",
            a.users,
            a.spawn_rate,
            a.duration,
            a.locust_workers,
            lab.token_dir,
            logs,
            progress,
            started_pids=lambda pids: setattr(sampler.loadgen, "roots", pids),
            cpus=a.loadgen_cpus,
        )
        sampler.stop()  # just after it stopped, the service still up
        if mode != "read":
            winners = audits.winners_in_redis(lab.client, strategy, coupon_id, a.quantity)
            wait_for(
                lambda: monitor.rows >= winners and not lab.client.zcard(keys.queue(coupon_id)),
                120,
                f"{label}: the drain of {winners} winners",
            )
        monitor.stop()
        lab.live.end()
    result = _result(lab, mode, instances, repeat, coupon_id, load, monitor, sampler, holds)
    result.rtt_ms = rtt_ms
    sold_out_at = sellout_answer(load.records) if mode != "read" else None
    result.round_trips = network.round_trips(
        servers, net, sampler.samples, load.records, sold_out_at, result.costs, sampler.api.pids
    )
    return result


def progress_line(label: str, elapsed: float, duration: int, rows: int) -> str | None:
    """Every 5 s of load, a line: seconds of load so far out of the run's, rows persisted; none past the end
    (Locust then lets the last requests finish)."""
    if int(elapsed) % 5 or not 5 <= elapsed < duration + 1:
        return None
    return f"   {label}: {int(elapsed):3d}/{duration} s, rows persisted {rows}"


def _pythonpath(env: dict[str, str]) -> str:
    """The probe's folder first on PYTHONPATH, so its sitecustomize loads in the API processes (and the project's)."""
    return ":".join(dict.fromkeys(p for p in (str(PROBE), str(ROOT), *env.get("PYTHONPATH", "").split(":")) if p))


def lock_hold(folder: Path, start: float, end: float) -> LockHold | None:
    """The holds the probe recorded that ended between ``start`` and ``end`` (the stock phase)."""
    lines = [
        line.split()
        for path in folder.glob("hold-*.txt")
        for line in path.read_text().splitlines()
        if line.strip() and start <= float(line.split()[0]) <= end
    ]
    held = sorted(float(fields[1]) / 1000 for fields in lines)
    if not held:
        return None
    mean = sum(held) / len(held)
    trips = [int(fields[2]) for fields in lines if len(fields) > 2]
    return LockHold(
        samples=len(held),
        p50_ms=percentile(held, 50),
        p99_ms=percentile(held, 99),
        mean_ms=round(mean, 3),
        ceiling_tps=round(1000 / mean, 1) if mean else None,
        round_trips=round(sum(trips) / len(trips), 2) if trips else None,
    )


def _drain(mode: str, rows: int, last_win: float | None, monitor: Monitor) -> Drain | None:
    if mode != "lua" or not rows or last_win is None:
        return None
    first_row, last_row = monitor.first_at(1), monitor.first_at(rows)
    if first_row is None or last_row is None:
        return None
    return Drain(
        lag_s=round(max(last_row - last_win, 0.0), 3), rows_per_s=round(rows / max(last_row - first_row, 1e-3))
    )


def _result(
    lab: Lab | TargetLab,
    mode: str,
    instances: int,
    repeat: int,
    coupon_id: int,
    load: LoadResult,
    monitor: Monitor,
    sampler: costs.Sampler,
    holds: Path,
) -> RunResult:
    a, rush = lab.args, mode != "read"
    rows = audits.persisted(lab.engine, coupon_id) if rush else []
    last_win = max((clock.epoch_s(t) for _, t in rows), default=None)
    summary = summarise(load.records, last_win if len(rows) >= a.quantity else None, rush=rush)
    won = sum(v for k, v in summary.statuses.items() if k.startswith("2")) if rush else 0
    audit = (
        audits.audit(
            lab.client, lab.engine, mode, coupon_id, a.quantity, load.asked, won, summary.failures, load.in_flight
        )
        if rush
        else None
    )
    sold_out_at = sellout_answer(load.records) if rush else None
    split = costs.split(sampler.samples, load.records, sold_out_at, lab.db_figure)
    if mode == "lock":
        split.lock_hold = lock_hold(holds, sampler.samples[0].at, sold_out_at or sampler.samples[-1].at)
    result = RunResult(
        strategy=mode,
        instances=instances,
        coupon_id=coupon_id,
        summary=summary,
        winners=len(rows) if rush else None,
        audit=audit,
        drain=_drain(mode, len(rows), last_win, monitor),
        loadgen_cpu_share=round(load.cpu_s / (load.wall_s * len(a.loadgen_cpus or range(os.cpu_count() or 1))), 3),
        api_cpu_us_per_request=costs.api_cpu_us_per_request(sampler.samples, load.records),
        repeat=repeat,
        costs=split,
    )
    verdict = "n/a" if audit is None else ("OK" if audit.ok else "FAIL")
    print(
        f"   {mode} x{instances}: {summary.tps:.0f} TPS, p50 {summary.latency_ms.p50 or 0:.0f} ms, "
        f"API CPU {_us(result.api_cpu_us_per_request)}, audit {verdict}",
        flush=True,
    )
    return result


def _us(value: float | None) -> str:
    """A CPU cost a request as the progress line prints it; n/a where it could not be measured."""
    return "n/a" if value is None else f"{value:.0f} us/request"
