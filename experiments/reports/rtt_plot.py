"""TPS against the RTT between tiers: what was measured, what the model says, and where the study sits.

``python -m experiments.rtt REPORT [REPORT ...] --out rtt.png`` draws the runs of one or more lab reports
(e.g. the lock's and lua's, pinned and unpinned) on one figure, a panel per strategy; a report whose runs had
several RTTs draws its own as ``rtt.png``.

- A point per configuration and phase: the median TPS measured, its min-max as a bar, at the median RTT the
  clients really waited (support/delay.py), not the one asked for.
- A line per strategy and phase: the plan's prediction for that report's machine (experiments.reports.plan)
  from its loopback runs' costs (all its runs where it has none at loopback), as the RTT grows.
- The study's lock (60-120 TPS while stock remained) where the lock's line crosses it: the chain does not
  depend on the servers' cores, so the RTT that reproduces it is read off the line. The study's lua figures
  are drawn as levels only: the model's lua is bound by CPU, which the RTT barely moves, and the study's JVM
  cost a request is unknown, so no RTT reproduces them.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from experiments.engine.network import at_rtt, delivered_rtt_ms, distinct_rtts
from experiments.engine.results import load
from experiments.reports.plan import PHASES, loopback_runs, machine, predict, server_threads
from experiments.reports.spread import STRATEGY_ORDER, figure, groups, path

Run = dict[str, Any]
STUDY_LOCK = (60.0, 120.0)  # the study's lock while stock remained, 2 API servers of 2 vCPU
STUDY_LUA = ((597.7, "study lua, 2 × 2 vCPU"), (929.7, "study lua, 4 × 2 vCPU"))
MEASURED = {"stock": "tps_while_stock", "sold_out": "tps_after_sellout"}
STYLE = {
    ("lock", "stock"): ("C3", "o", "-"),
    ("lock", "sold_out"): ("C1", "s", ":"),
    ("lua", "stock"): ("C0", "o", "-"),
    ("lua", "sold_out"): ("C2", "s", ":"),
}
CAPTION = (
    "TPS against the RTT the clients waited: a point per strategy and phase (median, min-max bar), the plan's line "
    "for this machine from the loopback runs' costs, the study's lock (60-120 TPS while stock remained) shaded "
    "where the lock's line gives it, and the study's lua figures as levels (its JVM cost a request is unknown)."
)


def label(results: dict[str, Any]) -> str:
    """How a report's machine ran: pinned (the API's cores) or shared."""
    cores, shared = machine(results)
    return "unpinned" if shared else f"API pinned to {cores:g} core{'s' * (cores != 1)}"


def points(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One point per strategy, instances, phase and RTT asked: delivered RTT and measured TPS (median, min, max)."""
    out = []
    for rtt in distinct_rtts(results):
        for (strategy, n), runs in groups(at_rtt(results, rtt)).items():
            for phase, _ in PHASES:
                measured = figure(runs, path(MEASURED[phase]))
                if strategy == "read" or measured is None:
                    continue
                delivered = statistics.median(delivered_rtt_ms(r, phase) for r in runs)
                out.append(
                    {
                        "strategy": strategy,
                        "instances": n,
                        "phase": phase,
                        "rtt_ms": rtt,
                        "delivered_ms": delivered,
                        "tps": measured,
                    }
                )
    return out


def model_line(results: dict[str, Any], strategy: str, n: int, phase: str, rtts: list[float]) -> list[float | None]:
    """The plan's TPS for this machine at each RTT, from the loopback runs' costs (else every run's)."""
    cores, shared = machine(results)
    per_server = server_threads(results)
    loopback = loopback_runs(results, strategy, n)
    threads = per_server * n if per_server else None
    return [predict(loopback, phase, cores, cores, shared, rtt, threads).tps for rtt in rtts]


def crossing(rtts: list[float], tps: list[float | None], level: float) -> float | None:
    """The RTT at which a falling line reaches ``level`` TPS (linear between samples), or None."""
    for (r0, t0), (r1, t1) in zip(zip(rtts, tps, strict=True), zip(rtts[1:], tps[1:], strict=True), strict=False):
        if t0 is not None and t1 is not None and t0 >= level >= t1 and t0 != t1:
            return r0 + (t0 - level) / (t0 - t1) * (r1 - r0)
    return None


def study_lock_rtts(results: dict[str, Any], rtts: list[float]) -> tuple[float | None, float | None]:
    """The RTTs at which this report's lock line gives the study's 120 and 60 TPS while stock remained."""
    line = model_line(results, "lock", 1, "stock", rtts)
    return crossing(rtts, line, STUDY_LOCK[1]), crossing(rtts, line, STUDY_LOCK[0])


def _edge(points_: list[dict[str, Any]], max_rtt: float | None) -> float:
    """A panel's right edge: ``max_rtt``, else 2.5 ms or past the largest RTT delivered (under a saturated CPU
    that includes each waiting thread's wait for the GIL)."""
    return max_rtt if max_rtt is not None else max([2.5, *(p["delivered_ms"] * 1.05 for p in points_)])


def _panel(ax: Axes, reports: list[dict[str, Any]], strategy: str, max_rtt: float | None) -> None:
    """One strategy's points and lines over every report, the study's figures for it marked."""
    found = [
        (results, mine) for results in reports if (mine := [p for p in points(results) if p["strategy"] == strategy])
    ]
    edge = _edge([p for _, mine in found for p in mine], max_rtt)
    rtts = [i * edge / 200 for i in range(201)]
    study_note = None
    for k, (results, mine) in enumerate(found):
        where, shade = label(results), (1.0 if k == 0 else 0.55)
        for p in mine:
            color, marker, _ = STYLE.get((p["strategy"], p["phase"]), ("C7", "x", "-"))
            tps = p["tps"]
            ax.errorbar(
                p["delivered_ms"],
                tps.median,
                yerr=[[tps.median - tps.low], [tps.high - tps.median]],
                color=color,
                marker=marker,
                linestyle="none",
                alpha=shade,
                capsize=3,
                fillstyle="full" if k == 0 else "none",
            )
            ax.annotate(
                f"{p['rtt_ms']:g}",
                (p["delivered_ms"], tps.median),
                fontsize=7,
                alpha=0.7,
                xytext=(4, 4),
                textcoords="offset points",
            )
        for n in sorted({p["instances"] for p in mine}):
            for phase, text in PHASES:
                line = model_line(results, strategy, n, phase, rtts)
                if any(v is not None for v in line):
                    color, _, style = STYLE.get((strategy, phase), ("C7", "x", "-"))
                    ys = [float("nan") if v is None else v for v in line]  # a gap where the model has no figure
                    ax.plot(rtts, ys, color=color, linestyle=style, alpha=shade, label=f"{text}, {where}")
        if strategy == "lock" and study_note is None:
            low, high = study_lock_rtts(results, rtts)
            study_note = (low, high) if low is not None else None
    if study_note:
        low, high = study_note
        right = high if high is not None else edge
        ax.fill_between(
            [low, right],
            *STUDY_LOCK,
            color="C3",
            alpha=0.15,
            label=f"the study: 60-120 while stock, the model at {low:.2f}-{right:.2f} ms",
        )
    if strategy == "lua":
        for level, text in STUDY_LUA:
            ax.axhline(level, color="C0", linewidth=0.8, linestyle="--", alpha=0.6)
            ax.text(edge, level, f"{text}: {level:,.0f}", ha="right", va="bottom", fontsize=8, color="C0")
    ax.set(xlabel="RTT delivered, ms (the number: RTT asked)", ylabel="TPS", title=strategy)
    ax.set_yscale("log")
    ax.set_xlim(-0.05 * edge, edge)
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="lower left", fontsize=7)


def draw(reports: list[dict[str, Any]], out: Path, max_rtt: float | None = None) -> Path:
    """One panel per strategy: every report's points and model lines, the study marked; a PNG through Agg.

    ``max_rtt``: every panel's right edge, in ms (None: each its own, see _edge).
    """
    present = {p["strategy"] for results in reports for p in points(results)}
    strategies = sorted(present, key=lambda s: STRATEGY_ORDER.get(s, 99)) or ["lock"]
    fig = Figure(figsize=(6 * len(strategies), 5.5), layout="constrained")
    for i, strategy in enumerate(strategies):
        _panel(fig.add_subplot(1, len(strategies), i + 1), reports, strategy, max_rtt)
    fig.suptitle(
        "TPS against RTT: measured (median, min-max; filled: a strategy's first report), the model's line from loopback"
        + (
            ""
            if "lua" not in present
            else "\nthe study's lua levels: its JVM cost a request is unknown, no RTT gives them"
        )
    )
    FigureCanvasAgg(fig)
    fig.savefig(out, dpi=120)
    return out


def main(argv: list[str] | None = None) -> int:
    """Draw the reports given on one plot."""
    cli = argparse.ArgumentParser(prog="python -m experiments.rtt", description=(__doc__ or "").splitlines()[0])
    cli.add_argument("reports", type=Path, nargs="+", help="report folders or their results.json")
    cli.add_argument("--out", type=Path, default=Path("rtt.png"), help="the PNG to write")
    cli.add_argument("--max-rtt-ms", type=float, help="the plot's right edge (None: past the largest RTT delivered)")
    args = cli.parse_args(argv)
    reports = [load(r) for r in args.reports]
    if not any(points(r) for r in reports):
        cli.error("no run in these reports has a TPS while stock remained or after the sell-out")
    print(draw(reports, args.out, args.max_rtt_ms))
    for results in reports:
        low, high = study_lock_rtts(results, [i * 0.01 for i in range(1001)])
        if low is not None:
            print(
                f"{results['run_id']} ({label(results)}): the study's lock (60-120 TPS while stock) is the model at "
                f"RTT {low:.2f}-{'more than 10' if high is None else f'{high:.2f}'} ms"
            )
    return 0
