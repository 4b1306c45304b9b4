"""The lab report's plots: TPS over time and latency percentiles, as PNG files through Agg (no display)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import LogFormatter

Run = dict[str, Any]
PERCENTILES = (("p50", "C0"), ("p95", "C1"), ("p99", "C3"))


def _name(run: Run) -> str:
    """A run's label, e.g. 'lua ×2', with its repeat when there are several."""
    return f"{run['strategy']} ×{run['instances']}" + (f" #{run['repeat'] + 1}" if run.get("repeat") else "")


def _field(run: Run, section: str, key: str) -> float | None:
    """One figure of a nested section, or None where the section is null."""
    return (run.get(section) or {}).get(key)


def _finish(fig: Figure, ax: Axes, has_data: bool, path: Path) -> None:
    """Legend (or a 'no data' note), then the PNG through Agg: no display, no pyplot state."""
    if has_data:
        fig.legend(loc="outside right upper")
    else:
        ax.text(0.5, 0.5, "no data recorded", transform=ax.transAxes, ha="center", va="center")
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=120)


def _plot_tps(runs: list[Run], path: Path) -> None:
    """TPS over time, one line per run, a dashed line at each sell-out."""
    fig = Figure(figsize=(9, 4.5), layout="constrained")
    ax = fig.add_subplot()
    for i, run in enumerate(runs):
        color, points = f"C{i % 10}", run.get("timeline") or []
        ax.plot([p["t"] for p in points], [p["tps"] for p in points], color=color, label=_name(run))
        if run.get("sellout_s") is not None:
            ax.axvline(run["sellout_s"], color=color, linestyle="--", linewidth=1)
    ax.set(xlabel="seconds since start", ylabel="requests per second", title="TPS over time (dashed: sell-out)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    _finish(fig, ax, any(run.get("timeline") for run in runs), path)


def _plot_latency(runs: list[Run], path: Path) -> None:
    """Grouped p50/p95/p99 bars per run on a log scale, the max as a marker."""
    fig = Figure(figsize=(max(6.0, 1.5 * len(runs) + 3), 4.5), layout="constrained")
    ax = fig.add_subplot()
    values: list[float] = []
    for j, (key, color) in enumerate(PERCENTILES):
        bars = [(i + (j - 1) * 0.25, v) for i, run in enumerate(runs) if (v := _field(run, "latency_ms", key))]
        ax.bar([x for x, _ in bars], [v for _, v in bars], width=0.25, color=color, label=key)
        values += [v for _, v in bars]
    tops = [(i, v) for i, run in enumerate(runs) if (v := _field(run, "latency_ms", "max"))]
    ax.plot([x for x, _ in tops], [v for _, v in tops], marker="v", color="black", linestyle="none", label="max")
    values += [v for _, v in tops]
    if values:  # a log axis needs a positive value; the bars start below the smallest one
        ax.set_yscale("log")
        ax.set_ylim(min(values) / 2, max(values) * 1.5)
        ax.yaxis.set_major_formatter(LogFormatter())
        ax.yaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.5)))
    ax.set_xticks(range(len(runs)), [_name(r) for r in runs])
    ax.set(ylabel="latency ms (log scale)", title="Latency per run")
    ax.grid(axis="y", which="both", alpha=0.3)
    _finish(fig, ax, bool(values), path)


def plot_all(runs: list[Run], out_dir: Path) -> tuple[Path, Path]:
    """tps.png and latency.png in ``out_dir``."""
    tps, latency = out_dir / "tps.png", out_dir / "latency.png"
    _plot_tps(runs, tps)
    _plot_latency(runs, latency)
    return tps, latency
