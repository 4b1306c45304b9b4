"""The TPS lab: ``python -m experiments.lab`` rushes each strategy and reports them side by side.

For each number of API instances and each strategy: a fresh coupon, the service started
(gunicorn instances on their own ports, plus the drain's worker and scheduler for lua), Locust
headless for the set duration, then the drain awaited and every guarantee audited. A "read" run
(GET /coupons/<id>: JWT + one Redis read) under the same server config measures the framework's
ceiling. Every tier's CPU is sampled once a second. Results go to reports/<run-id>/ (results.json,
report.md, report.html, plots).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import Flask
from flask_migrate import upgrade

from app import create_app, embedded
from app.extensions import clients, db
from app.logs import configure as configure_logging
from experiments.data.seed import seed
from experiments.data.tokens import write_token_files
from experiments.engine import network, provenance
from experiments.engine.costs import database_pids
from experiments.engine.live import Live
from experiments.engine.results import RunResult
from experiments.engine.runs import Lab, one_run
from experiments.reports import network_sections, report
from experiments.reports.plan import predict_runs
from strategies import STRATEGIES
from support.procs import ROOT

log = logging.getLogger("lab")
SELLER = "lab-seller"
DEMO = {"users": 200, "duration": 8, "quantity": 500, "members": 5000, "locust_workers": 1, "drain_winners": 5000}


def strategies(value: str) -> list[str]:
    """--strategies: lock and/or lua, comma-separated; anything else is refused at once."""
    names = [s.strip() for s in value.split(",") if s.strip()]
    unknown = [s for s in names if s not in STRATEGIES]
    if unknown or not names:
        named = ", ".join(unknown) or repr(value)
        raise argparse.ArgumentTypeError(f"unknown strategy {named}: choose from lock, lua")
    return names


def cpus(value: str) -> set[int]:
    """A CPU list as taskset takes it: ``0``, ``0,1``, ``0-3``; each CPU one this process may use."""
    chosen: set[int] = set()
    try:
        for part in value.split(","):
            low, _, high = part.partition("-")
            chosen.update(range(int(low), int(high or low) + 1))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a CPU list: {value!r} (e.g. 0 or 0,1 or 0-3)") from None
    usable = os.sched_getaffinity(0)
    if not chosen or not chosen <= usable:
        raise argparse.ArgumentTypeError(f"CPUs {sorted(chosen)} not all usable here (usable: {sorted(usable)})")
    return chosen


def parser() -> argparse.ArgumentParser:
    """The lab's command line."""
    p = argparse.ArgumentParser(
        prog="python -m experiments.lab",
        description=(__doc__ or "").splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--strategies", "--strategy", type=strategies, default="lock,lua", help="lock and/or lua, run in this order"
    )
    p.add_argument("--instances", default="1", help="comma-separated API instance counts, e.g. 1,2,4")
    p.add_argument("--users", type=int, default=1600, help="Locust users (the study's vusers)")
    p.add_argument("--spawn-rate", type=int, default=0, help="users started per second (0: all at once)")
    p.add_argument("--duration", type=int, default=60, help="seconds of load per run")
    p.add_argument("--quantity", type=int, default=5000, help="the coupon's quantity")
    p.add_argument("--members", type=int, default=100_000, help="members seeded and given tokens")
    p.add_argument("--locust-workers", type=int, default=2, help="Locust worker processes, one token file each")
    p.add_argument("--web-workers", type=int, help="server workers per API instance (None: gunicorn.conf.py's)")
    p.add_argument("--web-threads", type=int, help="server threads per worker (None: gunicorn.conf.py's)")
    p.add_argument(
        "--server",
        choices=("gunicorn", "granian"),
        default="gunicorn",
        help="the API's HTTP server: gunicorn (what the service runs) or granian (compared, see docs/lab.md)",
    )
    p.add_argument("--no-read", action="store_true", help="skip the ceiling run (GET /coupons/<id>)")
    p.add_argument("--repeat", type=int, default=1, help="runs of each configuration, interleaved")
    p.add_argument(
        "--rtt-ms",
        type=network.rtts,
        default="0",
        help="the RTT between the API (and the drain) and Redis and the database, ms; several: 0,0.5,1,2",
    )
    p.add_argument("--api-cpus", type=cpus, help="pin the API instances to these CPUs, e.g. 0 or 0,1")
    p.add_argument("--loadgen-cpus", type=cpus, help="pin the Locust processes to these CPUs")
    p.add_argument("--drain-winners", type=int, default=50_000, help="winners for the drain benchmark (0: skip)")
    p.add_argument("--no-live", action="store_true", help="no live page while the runs go")
    p.add_argument("--out", type=Path, default=ROOT / "reports", help="where reports/<run-id>/ goes")
    demo = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in DEMO.items())
    p.add_argument("--demo", action="store_true", help=f"a short run: {demo}")
    remote_options(p)
    return p


def remote_options(p: argparse.ArgumentParser) -> None:
    """Rushing a deployment the lab did not start, from load machines of its own (docs/lab.md)."""
    from experiments.engine.remote import DEFAULT_PORT
    from experiments.engine.target import targets

    p.add_argument(
        "--target",
        type=targets,
        help="rush these API base URLs (comma-separated), started elsewhere, instead of starting the service; "
        "DATABASE_URL, REDIS_URL/REDIS_CLUSTER_URL and JWT_SECRET_KEY must be the target's",
    )
    p.add_argument("--cleanup", action="store_true", help="with --target: remove the run's members and coupons after")
    p.add_argument(
        "--locust-workers-remote", type=int, default=0, help="with --target: Locust workers started on other machines"
    )
    p.add_argument("--locust-master-port", type=int, default=DEFAULT_PORT, help="the Locust master's port (remote)")
    p.add_argument("--locust-master-host", help="the address remote workers reach this machine at (default: guessed)")
    p.add_argument("--locust-workers-wait", type=int, default=120, help="seconds to wait for the remote workers")


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The lab's options; ``--demo`` is the quickstart's short run on embedded defaults."""
    p = parser()
    if p.parse_known_args(argv)[0].demo:
        p.set_defaults(**DEMO)  # defaults only: options given explicitly still win
    args = p.parse_args(argv)
    if args.repeat < 1:
        p.error("--repeat must be at least 1")
    workers = (args.locust_workers, args.locust_workers_remote)
    if min(workers) < 0 or sum(workers) < 1:
        p.error("at least one Locust worker: --locust-workers and/or --locust-workers-remote")
    if args.locust_workers_remote and not args.target:
        p.error("--locust-workers-remote needs --target: the lab's own API instances listen on loopback only")
    if args.target and len(args.strategies) != 1:
        p.error("--target rushes the one strategy the target runs: give --strategy lock or --strategy lua")
    if args.target and any(args.rtt_ms):
        p.error("--rtt-ms delays the lab's own API processes; a target's network is the one it runs on")
    args.spawn_rate = args.spawn_rate or args.users
    return args


def prepare(args: argparse.Namespace, out: Path, live: Live) -> Lab:
    """The lab's fixed parts: the schema migrated, members seeded, one token file per Locust worker."""
    app = create_app()
    with app.app_context():
        upgrade()
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
    pids, figure = database_pids(engine)
    return Lab(args, out, app, engine, client, env, seller_id, token_dir, live, pids, figure)


def _seller(app: Flask) -> int:
    from app.auth import create_member
    from app.models import Member

    found = db.session.scalar(sa.select(Member.id).where(Member.username == SELLER))
    return found if found is not None else create_member(SELLER, os.urandom(16).hex(), "seller").id


def main(argv: list[str] | None = None) -> int:
    """Run the experiment, write the report, print the comparison; non-zero if an audit failed."""
    args = parse(argv)
    configure_logging("lab")
    run_id = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    out = args.out / run_id
    out.mkdir(parents=True, exist_ok=True)
    live = Live(enabled=not args.no_live)
    if args.target:
        from experiments.engine.stack import WorkersMissing
        from experiments.engine.target import TargetError
        from experiments.engine.target_run import run_all as run_target

        try:
            with live:
                results, runs = run_target(args, run_id, out, live)
        except (TargetError, WorkersMissing) as exc:
            print(f"lab: {exc}", file=sys.stderr)
            return 2
    else:
        with embedded.serving(), live:  # the embedded Redis, if the lab started it, stops after
            results, runs = run_all(args, run_id, out, live)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    report.render(results, out)
    print(network_sections.summary_tables(results, report.summary_table))
    print(f"\nreport: {out / 'report.html'} (and report.md)")
    return 0 if all(r.audit is None or r.audit.ok for r in runs) else 1


def run_all(args: argparse.Namespace, run_id: str, out: Path, live: Live) -> tuple[dict[str, Any], list[RunResult]]:
    """Every configuration's runs, interleaved, then the drain benchmark: the results and the runs."""
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    lab = prepare(args, out, live)
    modes = [*args.strategies, *([] if args.no_read else ["read"])]
    runs = [
        one_run(lab, mode, instances, i, rtt)
        for instances in [int(n) for n in args.instances.split(",")]
        for mode, rtt, i in network.order(modes, args.repeat, args.rtt_ms)
    ]
    results = {
        **provenance.record(run_id, started_at),
        "config": lab.config(),
        "runs": [r.to_json() for r in runs],
        "drain_benchmark": [asdict(b) for b in lab.drain_benchmarks(args.drain_winners)],
    }
    predict_runs(results)
    return results, runs


if __name__ == "__main__":
    sys.exit(main())
