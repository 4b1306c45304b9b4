"""A capacity plan from a lab report: ``python -m experiments.plan REPORT --api-servers N --api-cores C``.

For each strategy, the TPS each tier allows while stock remains and after the sell-out, from the
report's measured costs per request; the lowest binds:

- API CPU: servers x cores / API CPU seconds per request (requests spread evenly over the servers);
  on the lab's own machine, unpinned, every tier shares the cores: cores / every tier's CPU seconds per
  request (API, Redis, database and the load generator), which is what the predicted-vs-measured lines use;
- the lock's serialised chain (lock, while stock remains): 1 / (its local time + its round trips x RTT),
  from one holder's SET to the next's: the holder's round trips (its release included) plus the
  hand-over to the next waiter (experiments.network); its local time is the mean hold measured,
  less the round trips x the RTT the run delivered;
- the API's thread pool, by Little's law: threads / (API time a request + its round trips x RTT),
  the API time being its CPU a request (a lower bound of the time a thread is busy with it);
- Redis: one core per hot coupon (every key of a coupon is on one node, and Redis runs commands on one
  thread): 1 / Redis CPU seconds per request;
- the database: its cores / database CPU seconds per request, where it was measured.

The API figure assumes the target's API costs what ours does per request (Python, gunicorn, JWT check):
the study's JVM per-request cost was not published, so its API bound is the same number of cores running
our code. ``--rtt-ms`` is the target's RTT between the API and Redis and the database (default
``STUDY_RTT_MS``, a data centre's), also used for the study's setups.
"""

from __future__ import annotations

import argparse
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from experiments.engine.network import at_rtt, delivered_rtt_ms, distinct_rtts
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
STUDY_RTT_MS = 0.5  # a round trip between rented servers in one data centre: 0.2-1 ms
LOCK_CHAIN_ROUND_TRIPS = 10.0  # the lock's chain as counted (9.98), for reports from before the count


@dataclass(frozen=True)
class Prediction:
    """The TPS one phase allows, the tier that binds, and every tier's bound."""

    tps: float | None
    binding: str | None
    bounds: dict[str, float]


def _round_trips(run: Run, phase: str) -> float | None:
    """Round trips a request made to Redis and the database in one phase (None: not counted)."""
    redis, database = (path("round_trips", phase, tier, "round_trips")(run) for tier in ("redis", "database"))
    return None if redis is None else redis + (database or 0.0)


def lock_chain(runs: list[Run], rtt_ms: float) -> float | None:
    """The lock's serialised chain at ``rtt_ms``, in ms: the median run's local time + its round trips x RTT."""
    local, trips = [], []
    for run in runs:
        hold = path("costs", "lock_hold", "mean_ms")(run)
        chain = path("round_trips", "stock", "lock_chain")(run)
        if hold is None:
            continue
        if chain is None:  # a report from before round trips were counted: loopback's hold, today's chain
            local.append(hold)
            trips.append(LOCK_CHAIN_ROUND_TRIPS)
            continue
        local.append(hold - (chain - 1) * delivered_rtt_ms(run))
        trips.append(chain)
    if not local:
        return None
    return statistics.median(local) + statistics.median(trips) * rtt_ms


def bounds(
    runs: list[Run],
    phase: str,
    api_cores: float,
    db_cores: float,
    shared: bool = False,
    rtt_ms: float = 0.0,
    threads: int | None = None,
) -> dict[str, float]:
    """Each tier's TPS bound for one strategy's runs (median costs) in one phase, ``rtt_ms`` between tiers.

    ``shared``: every tier runs on the same ``api_cores`` (the lab's own machine, unpinned), so the
    CPU bound is those cores over the CPU every tier spends on a request, the load generator's included.
    ``threads``: the API's request threads in all (servers x workers x threads), for Little's law.
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
    if phase == "stock" and (chain := lock_chain(runs, rtt_ms)):
        out["lock serialisation"] = 1000 / chain
    trips = figure(runs, lambda run: _round_trips(run, phase))
    if threads and api and trips is not None:
        out["API threads (Little's law)"] = threads / (api.median / 1e6 + trips.median * rtt_ms / 1000)
    if (redis := cost["redis_us"]) and redis.median > 0:
        out["Redis (one core per coupon)"] = 1e6 / redis.median
    if (database := cost["database_us"]) and database.median > 0:
        out["database"] = db_cores * 1e6 / database.median
    return out


def predict(
    runs: list[Run],
    phase: str,
    api_cores: float,
    db_cores: float = 2,
    shared: bool = False,
    rtt_ms: float = 0.0,
    threads: int | None = None,
) -> Prediction:
    """The lowest bound, and which tier it is."""
    found = bounds(runs, phase, api_cores, db_cores, shared, rtt_ms, threads)
    if not found:
        return Prediction(None, None, {})
    binding = min(found, key=lambda k: found[k])
    return Prediction(round(found[binding], 1), binding, {k: round(v, 1) for k, v in found.items()})


def loopback_runs(results: dict[str, Any], strategy: str, instances: int) -> list[Run]:
    """A configuration's runs at loopback (no RTT asked), or all of them where none was: the costs a plan
    for a rented setup starts from, before it adds the RTT."""
    runs = [r for r in results["runs"] if r["strategy"] == strategy and r["instances"] == instances]
    return [r for r in runs if not r.get("rtt_ms")] or runs


def server_threads(results: dict[str, Any]) -> int | None:
    """Request threads of one API server as the lab ran it (workers x threads), if recorded."""
    c = results.get("config", {})
    workers, threads = c.get("web_workers"), c.get("web_threads")
    return int(workers) * int(threads) if workers and threads else None


def machine(results: dict[str, Any]) -> tuple[float, bool]:
    """The cores the lab's API had, and whether every tier shared them (unpinned)."""
    c, m = results["config"], results["machine"]
    cores = len(c.get("api_cpus") or []) or m.get("cpus_usable") or m["cpus"]
    return cores, not c.get("api_cpus")


def predict_runs(results: dict[str, Any]) -> None:
    """Each run's own prediction, for the CPUs it had and the RTT it delivered, set on the run."""
    cores, shared = machine(results)
    per_server = server_threads(results)
    for run in results["runs"]:
        if run["strategy"] == "read":
            continue
        threads = per_server * run["instances"] if per_server else None
        for phase, key in (("stock", "predicted_tps_while_stock"), ("sold_out", "predicted_tps_after_sellout")):
            run[key] = predict([run], phase, cores, cores, shared, delivered_rtt_ms(run, phase), threads).tps


def strategies(results: dict[str, Any]) -> dict[str, list[Run]]:
    """The rush runs by strategy (all instance counts: a cost per request does not depend on them)."""
    out: dict[str, list[Run]] = {}
    for (strategy, _), runs in groups(results).items():
        if strategy != "read":
            out.setdefault(strategy, []).extend(runs)
    return out


def _tps(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


def plan_lines(
    results: dict[str, Any],
    servers: int,
    cores: float,
    db_cores: float,
    users: int | None,
    rtt_ms: float = STUDY_RTT_MS,
) -> list[str]:
    """The plan for one setup at ``rtt_ms`` between tiers, one line per strategy and phase."""
    lines = []
    per_server = server_threads(results)
    for strategy, runs in strategies(results).items():
        for phase, label in PHASES:
            threads = per_server * servers if per_server else None
            p = predict(runs, phase, servers * cores, db_cores, rtt_ms=rtt_ms, threads=threads)
            if p.tps is None:
                continue
            detail = ", ".join(f"{k} {_tps(v)}" for k, v in p.bounds.items())
            little = f"; {users:,} users at that rate wait {users / p.tps * 1000:,.0f} ms each" if users else ""
            lines.append(f"{strategy} {label}: {_tps(p.tps)} TPS, bound by {p.binding} ({detail}){little}")
    return lines


def study_lines(results: dict[str, Any], rtt_ms: float = STUDY_RTT_MS) -> list[str]:
    """The plan for the study's setups, ``rtt_ms`` between tiers, beside its published figures."""
    if not any(r.get("costs") or r.get("api_cpu_us_per_request") for r in results.get("runs", [])):
        return []
    lines = []
    for servers, cores in STUDY_SETUPS:
        lines.append(f"- **{servers} API servers × {cores} vCPU**, one Redis, one MySQL, RTT {rtt_ms:g} ms:")
        published = [f"{s} {v}" for (n, s), v in STUDY_TPS.items() if n == servers]
        lines += [f"  - model: {line}" for line in plan_lines(results, servers, cores, cores, None, rtt_ms)]
        lines.append(f"  - study (published): {'; '.join(published)}")
    return [
        *lines,
        "",
        f"The model assumes the study's API costs what ours does per request (its JVM cost was not published), "
        f"a database of 2 cores, and {rtt_ms:g} ms between the API and Redis and the database (`--rtt-ms`). "
        "The lock's bound is its serialised chain: every round trip from one holder's SET to the next holder's "
        "SET waits one RTT, which no per-request CPU cost shows.",
    ]


def measured_lines(results: dict[str, Any]) -> list[str]:
    """For every configuration run here: the model's TPS for this machine beside the TPS measured."""
    cores, shared = machine(results)
    per_server = server_threads(results)
    lines = []
    for rtt in distinct_rtts(results):
        for (strategy, n), runs in groups(at_rtt(results, rtt)).items():
            if strategy == "read":
                continue
            threads = per_server * n if per_server else None
            for phase, label in PHASES:
                delivered = statistics.median(delivered_rtt_ms(r, phase) for r in runs)
                p = predict(runs, phase, cores, cores, shared, delivered, threads)
                measured = figure(runs, path("tps_while_stock" if phase == "stock" else "tps_after_sellout"))
                if p.tps is None or measured is None:
                    continue
                at = f" at RTT {rtt:g} ms (delivered {delivered:.2f})" if rtt or delivered else ""
                lines.append(
                    f"- {strategy} ×{n}{at} {label}: predicted {_tps(p.tps)} TPS ({p.binding}), measured "
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
    cli.add_argument(
        "--users", type=int, help="concurrent users: prints the wait Little's law implies (None: not printed)"
    )
    cli.add_argument(
        "--rtt-ms", type=float, default=STUDY_RTT_MS, help="RTT between the API and Redis and the database, ms"
    )
    args = cli.parse_args(argv)
    results = load(args.report)
    lines = plan_lines(results, args.api_servers, args.api_cores, args.db_cores, args.users, args.rtt_ms)
    print(
        f"{args.api_servers} API servers × {args.api_cores:g} cores, database {args.db_cores:g} cores, "
        f"RTT {args.rtt_ms:g} ms:"
    )
    print(*(f"  {line}" for line in lines or ["no per-tier costs in this report"]), sep="\n")
    print("\nThe study's setups:", *study_lines(results, args.rtt_ms), sep="\n")
    return 0 if lines else 1


if __name__ == "__main__":
    raise SystemExit(main())
