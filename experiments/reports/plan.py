"""A capacity plan from a lab report: ``python -m experiments.plan REPORT --api-servers N --api-cores C``.

For each strategy, the TPS each tier allows while stock remains and after the sell-out, from the
report's measured costs per request; the lowest binds:

- API CPU: servers x cores / API CPU seconds per request (requests spread evenly over the servers);
  on the lab's own machine, unpinned, every tier shares the cores: cores / every tier's CPU seconds per
  request (API, Redis, database and the load generator), which is what the predicted-vs-measured lines use;
- the lock's serialisation (lock, while stock remains): 1 / mean hold time;
- Redis: one core per hot coupon (every key of a coupon is on one node, and Redis runs commands on one
  thread): 1 / Redis CPU seconds per request;
- the database: its cores / database CPU seconds per request, where it was measured.

The API figure assumes the target's API costs what ours does per request (Python, gunicorn, JWT check):
the study's JVM per-request cost was not published, so its API bound is the same number of cores running
our code.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from experiments.engine.results import load
from experiments.reports.spread import figure, groups, path

Run = dict[str, Any]
STUDY_SETUPS = ((2, 2), (4, 2))  # (API servers, vCPU each); one Redis, one MySQL
STUDY_TPS = {  # published: (servers, strategy) -> (TPS overall, TPS while stock remained or None)
    (2, "lock"): "145.2 (60–120 while stock remained)",
    (2, "lua"): "597.7",
    (4, "lua"): "929.7",
}
PHASES = (("stock", "while stock remained"), ("sold_out", "after sell-out"))


@dataclass(frozen=True)
class Prediction:
    """The TPS one phase allows, the tier that binds, and every tier's bound."""

    tps: float | None
    binding: str | None
    bounds: dict[str, float]


def bounds(runs: list[Run], phase: str, api_cores: float, db_cores: float, shared: bool = False) -> dict[str, float]:
    """Each tier's TPS bound for one strategy's runs (median costs) in one phase.

    ``shared``: every tier runs on the same ``api_cores`` (the lab's own machine, unpinned), so the
    CPU bound is those cores over the CPU every tier spends on a request, the load generator's included.
    """
    out: dict[str, float] = {}
    tiers = ("api_us", "redis_us", "database_us", "loadgen_us")
    cost = {tier: figure(runs, path("costs", phase, tier)) for tier in tiers}
    api = cost["api_us"] or figure(runs, path("api_cpu_us_per_request"))
    if api and api.median > 0 and shared:
        total = sum(c.median for c in (api, cost["redis_us"], cost["database_us"], cost["loadgen_us"]) if c)
        out["CPU shared by every tier"] = api_cores * 1e6 / total
    elif api and api.median > 0:
        out["API CPU"] = api_cores * 1e6 / api.median
    if phase == "stock" and (hold := figure(runs, path("costs", "lock_hold", "mean_ms"))) and hold.median > 0:
        out["lock serialisation"] = 1000 / hold.median
    if (redis := cost["redis_us"]) and redis.median > 0:
        out["Redis (one core per coupon)"] = 1e6 / redis.median
    if (database := cost["database_us"]) and database.median > 0:
        out["database"] = db_cores * 1e6 / database.median
    return out


def predict(runs: list[Run], phase: str, api_cores: float, db_cores: float = 2, shared: bool = False) -> Prediction:
    """The lowest bound, and which tier it is."""
    found = bounds(runs, phase, api_cores, db_cores, shared)
    if not found:
        return Prediction(None, None, {})
    binding = min(found, key=lambda k: found[k])
    return Prediction(round(found[binding], 1), binding, {k: round(v, 1) for k, v in found.items()})


def strategies(results: dict[str, Any]) -> dict[str, list[Run]]:
    """The rush runs by strategy (all instance counts: a cost per request does not depend on them)."""
    out: dict[str, list[Run]] = {}
    for (strategy, _), runs in groups(results).items():
        if strategy != "read":
            out.setdefault(strategy, []).extend(runs)
    return out


def _tps(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


def plan_lines(results: dict[str, Any], servers: int, cores: float, db_cores: float, users: int | None) -> list[str]:
    """The plan for one setup, one line per strategy and phase."""
    lines = []
    for strategy, runs in strategies(results).items():
        for phase, label in PHASES:
            p = predict(runs, phase, servers * cores, db_cores)
            if p.tps is None:
                continue
            detail = ", ".join(f"{k} {_tps(v)}" for k, v in p.bounds.items())
            little = f"; {users:,} users at that rate wait {users / p.tps * 1000:,.0f} ms each" if users else ""
            lines.append(f"{strategy} {label}: {_tps(p.tps)} TPS, bound by {p.binding} ({detail}){little}")
    return lines


def study_lines(results: dict[str, Any]) -> list[str]:
    """The plan for the study's setups beside its published figures."""
    if not any(r.get("costs") or r.get("api_cpu_us_per_request") for r in results.get("runs", [])):
        return []
    lines = []
    for servers, cores in STUDY_SETUPS:
        lines.append(f"- **{servers} API servers × {cores} vCPU**, one Redis, one MySQL:")
        published = [f"{s} {v}" for (n, s), v in STUDY_TPS.items() if n == servers]
        lines += [f"  - model: {line}" for line in plan_lines(results, servers, cores, cores, None)]
        lines.append(f"  - study (published): {'; '.join(published)}")
    return [
        *lines,
        "",
        "The model assumes the study's API costs what ours does per request (its JVM cost was not published) and "
        "a database of 2 cores. Where the model is far above the study, the study lost TPS to something no "
        "per-request CPU cost shows: for lock, waiting on the lock and the database round trips inside it "
        "(the hold time, not CPU, is the bound); for Lua, the load generator and network of a real deployment.",
    ]


def measured_lines(results: dict[str, Any]) -> list[str]:
    """For every configuration run here: the model's TPS for this machine beside the TPS measured."""
    c, m = results["config"], results["machine"]
    cores = len(c.get("api_cpus") or []) or m.get("cpus_usable") or m["cpus"]
    shared = not c.get("api_cpus")  # unpinned, every tier competes for the same cores
    lines = []
    for (strategy, n), runs in groups(results).items():
        if strategy == "read":
            continue
        for phase, label in PHASES:
            p = predict(runs, phase, cores, cores, shared)
            measured = figure(runs, path("tps_while_stock" if phase == "stock" else "tps_after_sellout"))
            if p.tps is None or measured is None:
                continue
            lines.append(
                f"- {strategy} ×{n} {label}: predicted {_tps(p.tps)} TPS ({p.binding}), measured "
                f"{measured.text(1)} ({measured.median / p.tps:.0%} of the prediction)"
            )
    return lines


def main(argv: list[str] | None = None) -> int:
    """Print the plan for the setup given, then the study's setups."""
    cli = argparse.ArgumentParser(
        prog="python -m experiments.plan",
        description=(__doc__ or "").splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    cli.add_argument("report", type=Path, help="a report folder or its results.json")
    # Required: no default, so none is shown in --help (SUPPRESS), where argparse would print None.
    needed = argparse.SUPPRESS
    cli.add_argument("--api-servers", type=int, required=True, default=needed, help="API servers in the target setup")
    cli.add_argument("--api-cores", type=float, required=True, default=needed, help="CPU cores of each API server")
    cli.add_argument("--db-cores", type=float, default=2, help="the database server's cores")
    cli.add_argument("--users", type=int, help="concurrent users, to print the wait they imply (None: not printed)")
    args = cli.parse_args(argv)
    results = load(args.report)
    lines = plan_lines(results, args.api_servers, args.api_cores, args.db_cores, args.users)
    print(f"{args.api_servers} API servers × {args.api_cores:g} cores, database {args.db_cores:g} cores:")
    print(*(f"  {line}" for line in lines or ["no per-tier costs in this report"]), sep="\n")
    print("\nThe study's setups:", *study_lines(results), sep="\n")
    return 0 if lines else 1


if __name__ == "__main__":
    raise SystemExit(main())
