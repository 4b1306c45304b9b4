"""The TPS lab: ``python -m experiments.lab`` rushes each strategy and reports them side by side.

For each number of API instances and each strategy: a fresh coupon, the service started
(gunicorn instances on their own ports, plus the drain's worker and scheduler for lua), Locust
headless for the set duration, then the drain awaited and every guarantee audited. A "read" run
(GET /coupons/<id>: JWT + one Redis read) under the same server config measures the framework's
ceiling. Results go to reports/<run-id>/ (results.json, report.md, plots).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from app import embedded
from app.logs import configure as configure_logging
from experiments import report
from experiments.procs import ROOT
from experiments.runs import Lab, one_run

log = logging.getLogger("lab")
DEMO = {"users": 200, "duration": 8, "quantity": 500, "members": 5000, "locust_workers": 1, "drain_winners": 5000}


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The lab's options; ``--demo`` is the quickstart's short run on embedded defaults."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--strategies", default="lock,lua", help="comma-separated, run in this order")
    p.add_argument("--instances", default="1", help="comma-separated API instance counts, e.g. 1,2,4")
    p.add_argument("--users", type=int, default=1600, help="Locust users (the study's vusers)")
    p.add_argument("--spawn-rate", type=int, default=0, help="users started per second (default: all at once)")
    p.add_argument("--duration", type=int, default=60, help="seconds of load per run")
    p.add_argument("--quantity", type=int, default=5000, help="the coupon's quantity")
    p.add_argument("--members", type=int, default=100_000, help="members seeded and given tokens")
    p.add_argument("--locust-workers", type=int, default=2, help="Locust worker processes, one token file each")
    p.add_argument("--web-workers", type=int, help="gunicorn workers per API instance (default: gunicorn.conf.py's)")
    p.add_argument("--web-threads", type=int, help="gunicorn threads per worker (default: gunicorn.conf.py's)")
    p.add_argument("--no-read", action="store_true", help="skip the ceiling run (GET /coupons/<id>)")
    p.add_argument("--drain-winners", type=int, default=50_000, help="winners for the drain benchmark (0: skip)")
    p.add_argument("--out", type=Path, default=ROOT / "reports", help="where reports/<run-id>/ goes")
    p.add_argument("--demo", action="store_true", help=f"a short run: {DEMO}")
    if p.parse_known_args(argv)[0].demo:
        p.set_defaults(**DEMO)  # defaults only: options given explicitly still win
    args = p.parse_args(argv)
    args.spawn_rate = args.spawn_rate or args.users
    return args


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    return {
        "cpus": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def git_commit() -> str:
    """HEAD's short hash, marked dirty if the tree has changes."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    return commit + ("-dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def main(argv: list[str] | None = None) -> int:
    """Run the experiment, write the report, print the comparison; non-zero if an audit failed."""
    args = parse(argv)
    configure_logging("lab")
    run_id = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    out = args.out / run_id
    out.mkdir(parents=True, exist_ok=True)
    with embedded.serving():  # on embedded defaults: started for the run, stopped after if the lab started it
        results, runs = run_all(args, run_id, out)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    report.render(results, out)
    print(report.summary_table(results))
    print(f"\nreport: {out / 'report.md'}")
    return 0 if all(r["audit"] is None or r["audit"]["ok"] for r in runs) else 1


def run_all(args: argparse.Namespace, run_id: str, out: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Every configuration's run, then the drain benchmark: the results and the runs."""
    lab = Lab.prepare(args, out)
    runs = []
    for instances in [int(n) for n in args.instances.split(",")]:
        modes = [s.strip() for s in args.strategies.split(",")] + ([] if args.no_read else ["read"])
        for mode in modes:
            runs.append(one_run(lab, mode, instances))
    results = {
        "run_id": run_id,
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "machine": machine(),
        "config": lab.config(),
        "runs": runs,
        "drain_benchmark": lab.drain_benchmarks(args.drain_winners),
    }
    return results, runs


if __name__ == "__main__":
    sys.exit(main())
