"""The report's sections on the network: round trips per request per tier, the RTT delivered, predicted vs measured."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

from experiments.engine.network import at_rtt, delivered_rtt_ms, distinct_rtts
from experiments.reports.plan import PHASES, loopback_runs, machine, predict, server_threads
from experiments.reports.spread import Run, figure, groups, path, text


def _cell(runs: list[Run], *names: str, digits: int = 2) -> str:
    return text(figure(runs, path("round_trips", *names)), digits)


def round_trips(results: dict[str, Any]) -> list[str]:
    """Per configuration and phase: round trips a request made, per tier, the RTT delivered and its CPU."""
    rows = []
    for rtt in distinct_rtts(results):
        for (strategy, n), runs in groups(at_rtt(results, rtt)).items():
            for phase, label in PHASES:
                if not any((r.get("round_trips") or {}).get(phase) for r in runs):
                    continue
                cells = [
                    _cell(runs, phase, "delay", "delivered_rtt_ms", digits=3),
                    _cell(runs, phase, "redis", "round_trips"),
                    _cell(runs, phase, "redis", "commands"),
                    _cell(runs, phase, "database", "round_trips"),
                    _cell(runs, phase, "database", "statements"),
                    f"{_cell(runs, phase, 'drain', 'redis_round_trips')} / "
                    f"{_cell(runs, phase, 'drain', 'database_round_trips')}",
                    _cell(runs, phase, "lock_chain"),
                    _cell(runs, phase, "delay", "cpu_us_per_request", digits=1),
                ]
                label = "whole run" if strategy == "read" else label
                rows.append(f"| {strategy} ×{n} | {rtt:g} | {label} | " + " | ".join(cells) + " |")
    if not rows:
        return []
    return [
        "## Round trips per request, per tier",
        "",
        "| run | RTT asked ms | phase | RTT delivered ms | Redis round trips | Redis commands (server) "
        "| database round trips | database statements (server) | drain round trips (Redis / database) "
        "| lock chain round trips | delay CPU µs/request |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        "Round trips: counted by the API processes themselves (a pipeline or a script is one), per request answered "
        "in the phase. Commands and statements: the servers' own counters (Redis INFO commandstats, MariaDB Com_*), "
        "every client's, so an upper bound. The lock's chain: the holder's round trips from acquire to release, plus "
        "the hand-over to the next waiter. RTT delivered: the mean pause the clients really waited a round trip "
        "(support/delay.py), its wait for the GIL included; the delay's CPU is its own tier here, and is inside the "
        "API's CPU figure.",
    ]


def predicted_vs_measured(results: dict[str, Any]) -> list[str]:
    """Strategy x phase x RTT: the plan's TPS for this machine at the RTT delivered, beside the TPS measured."""
    cores, shared = machine(results)
    per_server = server_threads(results)
    rows = []
    for rtt in distinct_rtts(results):
        for (strategy, n), runs in groups(at_rtt(results, rtt)).items():
            if strategy == "read":
                continue
            for phase, label in PHASES:
                delivered = statistics.median(delivered_rtt_ms(r, phase) for r in runs)
                threads = per_server * n if per_server else None
                p = predict(runs, phase, cores, cores, shared, delivered, threads)
                ahead = predict(loopback_runs(results, strategy, n), phase, cores, cores, shared, delivered, threads)
                measured = figure(runs, path("tps_while_stock" if phase == "stock" else "tps_after_sellout"))
                if p.tps is None or measured is None:
                    continue
                spread = (measured.high - measured.low) / measured.median if measured.median else 0.0
                before = "-" if ahead.tps is None else f"{ahead.tps:,.0f} ({measured.median / ahead.tps:.0%})"
                rows.append(
                    f"| {strategy} ×{n} | {label} | {rtt:g} | {delivered:.3f} | {p.tps:,.0f} | {p.binding} "
                    f"| {measured.text(1)} | {measured.median / p.tps:.0%} | {before} | {spread:.0%} |"
                )
    if len(distinct_rtts(results)) < 2 and not any(r.get("rtt_ms") for r in results["runs"]):
        return []
    return [
        "## Predicted against measured, by RTT",
        "",
        "| run | phase | RTT asked ms | RTT delivered ms | predicted TPS | binding tier | measured TPS | "
        "measured / predicted | predicted from loopback (measured / it) | min-max spread |",
        "|---|---|---:|---:|---:|---|---:|---:|---:|---:|",
        *rows,
        "",
        "Predicted: from the configuration's own runs at that RTT (their costs and hold), at the RTT they delivered. "
        "Predicted from loopback: from the runs at RTT 0 alone, the RTT delivered added, as the plan predicts a "
        "rented setup. Where a configuration's min-max spread is over 40%, repeat it more rather than read its "
        "median.",
    ]


def by_rtt(results: dict[str, Any], section: Callable[[dict[str, Any]], list[str]]) -> list[list[str]]:
    """A section once per RTT asked for, its heading naming the RTT, when the runs had several; else once."""
    delays = distinct_rtts(results)
    if len(delays) < 2:
        return [section(results)]
    parts = []
    for rtt in delays:
        lines = section(at_rtt(results, rtt))
        if lines and lines[0].startswith("#"):
            lines = [f"{lines[0]} (RTT {rtt:g} ms)", *lines[1:]]
        parts.append(lines)
    return parts


def summary_tables(results: dict[str, Any], table: Callable[[dict[str, Any]], str]) -> str:
    """The terminal's summary table, once per RTT asked for when the runs had several."""
    delays = distinct_rtts(results)
    if len(delays) < 2:
        return table(results)
    return "\n\n".join(f"RTT {rtt:g} ms:\n{table(at_rtt(results, rtt))}" for rtt in delays)
