"""Target mode's runs: each a fresh coupon on the target, the load, the target's drain awaited, the audit."""

from __future__ import annotations

import argparse
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from experiments.engine import audit as audits
from experiments.engine import costs, network, provenance
from experiments.engine.analysis import sellout_answer
from experiments.engine.live import Live
from experiments.engine.results import RunResult
from experiments.engine.runs import Monitor, _result
from experiments.engine.stack import Remote, roll_call, run_locust
from experiments.engine.target import TargetLab, cleanup, prepare, register_coupon
from strategies import keys
from support.procs import wait_for

DRAIN_WAIT_S = 120  # for the target's own worker and scheduler to persist every winner


def run_all(args: argparse.Namespace, run_id: str, out: Path, live: Live) -> tuple[dict[str, Any], list[RunResult]]:
    """Check, seed, rush the target ``--repeat`` times, optionally clean up: the results and the runs."""
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    remote = remote_workers(args) if args.locust_workers_remote else None

    def call_the_roll() -> None:  # every remote worker connects before anything is seeded
        if remote:
            roll_call(os.environ, remote, out / "logs" / "roll-call")

    lab = prepare(args, out, live, run_id, before_seeding=call_the_roll)
    lab.remote = remote
    try:
        runs = []
        for i in range(args.repeat):
            if lab.remote:
                lab.remote.final = i == args.repeat - 1
            runs.append(target_run(lab, args.strategies[0], i))
        results = {
            **provenance.record(run_id, started_at),
            "config": lab.config(),
            "runs": [r.to_json() for r in runs],
            "drain_benchmark": [],
        }
    finally:
        if args.cleanup:
            cleanup(lab)
    return results, runs


def remote_workers(args: argparse.Namespace) -> Remote:
    """The remote workers each run's master waits for, and the command that starts one (printed for the tester)."""
    from experiments.engine.remote import advertised_host, command

    host = args.locust_master_host or advertised_host(args.target)
    started = command(host, args.locust_master_port)
    print(
        f"waiting for {args.locust_workers_remote} remote Locust workers (up to {args.locust_workers_wait} s a run); "
        f"on each load machine run: {started}",
        flush=True,
    )
    return Remote(args.locust_workers_remote, args.locust_master_port, args.locust_workers_wait, started)


def target_run(lab: TargetLab, strategy: str, repeat: int = 0) -> RunResult:
    """Rush the target's instances with ``strategy`` (the one they run); drain and audit as the lab's own runs."""
    a, instances = lab.args, len(lab.args.target)
    coupon_id = register_coupon(lab, strategy)
    label = f"{strategy} target x{instances}" + (f" #{repeat + 1}" if a.repeat > 1 else "")
    logs = lab.out / "logs" / f"{strategy}-target" / (str(repeat + 1) if a.repeat > 1 else "")
    holds = logs / "lock-hold"  # stays empty: the probe runs only in processes the lab starts
    holds.mkdir(parents=True, exist_ok=True)
    print(f"== {label}: {a.users} users for {a.duration} s on coupon {coupon_id} (quantity {a.quantity})", flush=True)
    monitor = Monitor(lab.engine, coupon_id)
    sampler = costs.Sampler([], lab.client, lab.db_pids, api_cpu=lab.api_cpu.seconds if lab.api_cpu else _none)
    servers = network.ServerCounters(lab.client, lab.engine)  # the target's stores count what it sent them
    sampler.listeners.append(servers.take)
    lab.live.begin(label, coupon_id, strategy, a.quantity, lab.client, monitor, logs)
    try:

        def progress(elapsed: float) -> None:
            if int(elapsed) % 5 == 0:
                print(f"   {label}: {elapsed:3.0f}/{a.duration} s, rows persisted {monitor.rows}", flush=True)

        sampler.start()
        load = run_locust(
            lab.server_env(),
            a.target,
            coupon_id,
            "download",
            a.users,
            a.spawn_rate,
            a.duration,
            a.locust_workers,
            lab.token_dir,
            logs,
            progress,
            started_pids=lambda pids: setattr(sampler.loadgen, "roots", pids),
            cpus=a.loadgen_cpus,
            remote=lab.remote,
        )
        sampler.stop()
        winners = audits.winners_in_redis(lab.client, strategy, coupon_id, a.quantity)
        wait_for(
            lambda: monitor.rows >= winners and not lab.client.zcard(keys.queue(coupon_id)),
            DRAIN_WAIT_S,
            f"{label}: the target's drain of {winners} winners",
        )
    finally:
        monitor.stop()
        lab.live.end()
    result = _result(lab, strategy, instances, repeat, coupon_id, load, monitor, sampler, holds)
    result.round_trips = network.round_trips(
        servers, logs, sampler.samples, load.records, sellout_answer(load.records), result.costs, None
    )
    return result


def _none() -> None:
    return None
