"""The lab report's prose sections: header, per-tier costs, the study, audits, drain benchmark, load generator."""

from __future__ import annotations

from typing import Any

from experiments.reports.plan import study_lines
from experiments.reports.spread import figure, groups, path, text
from experiments.reports.target import api_cost_known, target_lines

Run = dict[str, Any]
# The original study (Kotlin/Spring, nGrinder, 1,600 vusers, coupon of 5,000, 2 vCPU servers), as published.
STUDY_ROWS = (
    ("lock", "2", "145.2", "9,435", "60-120 TPS while stock remained"),
    ("Lua + queue", "2", "597.7", "66.77", ""),
    ("Lua + queue", "4", "929.7", "-", ""),
)

MEASURED = """## What was measured

Each run registers a fresh coupon; every Locust user picks a random member token from its worker's token file and
sends POST /coupons/<id>/download, again and again, for the run's duration. *TPS while stock remained* is requests
per second from the start until the coupon sold out; *TPS after sell-out* is requests per second from then to the end.
The *read* run sends GET /coupons/<id> (the signed-in check, in memory, plus one Redis read) under the same server
config: the ceiling. *API CPU µs/request* is the CPU time of the API instances' processes (server masters and
workers) over the run, divided by the requests they answered."""

MODEL = """Each tier allows a TPS: its CPU over its cost per request (above), or for lock, one issue per mean hold of
the lock; the lowest binds. The same model gives a setup's TPS (`python -m experiments.plan`)."""

PLOTS = """## Plots

![TPS over time](tps.png)

*Requests per second over time, one line per run; the dashed line in a run's colour marks its sell-out.*

![Latency percentiles](latency.png)

*Latency p50, p95 and p99 per run (bars, log scale); the triangle marks the maximum.*"""


def _name(run: Run) -> str:
    return f"{run['strategy']} ×{run['instances']}" + (f" #{run['repeat'] + 1}" if run.get("repeat") else "")


def _runs(results: dict[str, Any]) -> list[Run]:
    return [run for group in groups(results).values() for run in group]


def _n(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def title(results: dict[str, Any]) -> list[str]:
    """Run id, date, commit, machine and load config."""
    m, c = results["machine"], results["config"]
    cpu = f"{m['cpus']} CPUs" + (f" ({m['cpu_model']})" if m.get("cpu_model") else "")
    pins = [f"API pinned to CPUs {c['api_cpus']}"] if c.get("api_cpus") else []
    pins += [f"Locust pinned to CPUs {c['loadgen_cpus']}"] if c.get("loadgen_cpus") else []
    return [
        f"# Coupon rush TPS lab: run {results['run_id']}",
        "",
        f"- **Date:** {results['started_at']}",
        f"- **Commit:** `{results['git_commit']}`",
        f"- **Machine:** {cpu}, {m['memory_gb']} GB memory, {m['platform']}, Python {m['python']}",
        f"- **Load:** {c['users']:,} Locust users (spawn rate {c['spawn_rate']}/s) on "
        f"{c['locust_workers'] + (c.get('locust_workers_remote') or 0)} Locust workers, {c['duration_s']} s per run, "
        f"coupon quantity {c['quantity']:,}",
        *target_lines(c),
        *(
            []
            if c.get("targets")
            else [
                f"- **Server:** {c.get('server', 'gunicorn')} {c['web_workers']} workers × {c['web_threads']} "
                f"threads; database {c.get('database_version') or c['database']}; Redis {c['redis']}"
            ]
        ),
        *(f"- **Pinning:** {p}" for p in pins),
    ]


def plan(results: dict[str, Any]) -> list[str]:
    """The capacity plan for the study's setups, from this run's per-tier costs."""
    lines = study_lines(results) if api_cost_known(results["config"]) else []
    return ["", "### The study's setups", "", *lines] if lines else []


def costs(results: dict[str, Any]) -> list[str]:
    """CPU µs per request per tier, before and after the sell-out; the lock's hold time."""
    rows = []
    for (strategy, n), runs in groups(results).items():
        for phase in ("stock", "sold_out"):
            cells = [
                text(figure(runs, path("costs", phase, tier)), 0)
                for tier in ("api_us", "redis_us", "database_us", "loadgen_us")
            ]
            evalsha = text(figure(runs, path("costs", phase, "evalsha_us_per_call")), 1)
            if any(c != "-" for c in cells):
                label = "while stock remained" if phase == "stock" else "after sell-out"
                label = "whole run" if strategy == "read" else label
                rows.append(f"| {strategy} ×{n} | {label} | " + " | ".join(cells) + f" | {evalsha} |")
    if not rows:
        return []
    database = next((r["costs"]["database"] for r in _runs(results) if r.get("costs")), "n/a")
    holds = [
        f"- {_name(r)}: lock held p50 {_n(h['p50_ms'], 2)} ms, p99 {_n(h['p99_ms'], 2)} ms, mean "
        f"{_n(h['mean_ms'], 3)} ms over {h['samples']:,} holds: a ceiling of {_n(h['ceiling_tps'], 0)} issues/s "
        f"while stock remained (measured: {_n(r.get('tps_while_stock'), 1)} TPS)"
        for r in _runs(results)
        if (h := (r.get("costs") or {}).get("lock_hold"))
    ]
    return [
        "## Cost per request, per tier (CPU µs)",
        "",
        "| run | phase | API | Redis | database | load generator | EVALSHA µs/call |",
        "|---|---|---:|---:|---:|---:|---:|",
        *rows,
        "",
        f"Counters sampled once a second, split at the first sold_out answer. Database: {database}.",
        *(
            ["", "**The lock's hold time** (acquire returned to release returned, in the API processes)", "", *holds]
            if holds
            else []
        ),
    ]


def study(results: dict[str, Any]) -> list[str]:
    """The original study's published rows, and why they are not comparable in absolute terms."""
    return [
        "## Reference: the original study",
        "",
        "Kotlin/Spring, load from nGrinder with 1,600 vusers, a coupon of 5,000, servers of 2 vCPU each.",
        "",
        "| strategy | servers | TPS | mean latency ms | note |",
        "|---|---:|---:|---:|---|",
        *(f"| {' | '.join(row)} |" for row in STUDY_ROWS),
        "",
        f"This machine runs the load generator, the API, Redis and the database ({results['config']['database']}) "
        f"on the same {results['machine']['cpus']} cores, so absolute numbers are not comparable to the study's: "
        "compare the ratios.",
    ]


def _responses(run: Run) -> list[str]:
    statuses = ", ".join(f"{k}: {v:,}" for k, v in sorted(run["statuses"].items())) or "none"
    errors = ", ".join(f"{k}: {v:,}" for k, v in sorted(run["errors"].items())) or "none"
    return [
        f"- responses by status: {statuses}; connection failures (no status): {run['failures']:,}",
        f"- refusals by error code: {errors}",
    ]


def _drain_line(run: Run) -> str:
    drain = run.get("drain")
    if drain:
        return f"- drain: last row persisted {drain['lag_s']:,.2f} s after sell-out, {drain['rows_per_s']:,.0f} rows/s"
    if run["strategy"] == "lock":
        return "- drain: none, the lock strategy writes each row inside the request"
    return "- drain: not measured (no sell-out in this run)"


def _audit(run: Run) -> list[str]:
    audit = run.get("audit")
    if audit is None:
        return [f"### {_name(run)}: no audit (read-only run)", "", *_responses(run), ""]
    expected = audit.get("expected_winners")
    return [
        f"### {_name(run)}: audit {'OK' if audit['ok'] else 'FAIL'}",
        "",
        *(f"- {'OK' if passed else 'FAIL'}: {check}" for check, passed in audit["checks"].items()),
        f"- rows {_n(audit.get('rows'))}, winners {_n(audit.get('winners'))}, expected winners "
        f"{expected if isinstance(expected, str) else _n(expected)}, distinct askers "
        f"{_n(audit.get('distinct_askers'))}, unanswered requests {_n(audit.get('unanswered', 0))}",
        _drain_line(run),
        *_responses(run),
        "",
    ]


def audits(results: dict[str, Any]) -> list[str]:
    """Every run's audit verdict, its checks, the drain and the responses."""
    return ["## Audit", "", *(line for run in _runs(results) for line in _audit(run))]


def loadgen(results: dict[str, Any]) -> list[str]:
    """The load generator's CPU share per run."""
    return [
        "## Load generator CPU share",
        "",
        *(f"- {_name(r)}: {r['loadgen_cpu_share']:.0%}" for r in _runs(results)),
        "",
        "A share of the CPUs it may use (CPU seconds / (wall seconds x those CPUs)). "
        "The load generator shares the cores with the server: CPU it takes is CPU the API, Redis and the "
        "database do not get, so a high share lowers the TPS measured.",
    ]


def drain_benchmark(results: dict[str, Any]) -> list[str]:
    """The drain's throughput on its own, by batch size."""
    rows = results.get("drain_benchmark") or []
    if not rows:
        return []
    return [
        "## Drain benchmark",
        "",
        "A queue of winners filled through the issue script, then one drain timed.",
        "",
        "| winners | batch | seconds | rows/s |",
        "| ---: | ---: | ---: | ---: |",
        *(f"| {b['winners']:,} | {b['batch']:,} | {b['seconds']:.3f} | {b['rows_per_s']:,.0f} |" for b in rows),
    ]
