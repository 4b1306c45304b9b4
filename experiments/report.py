"""Render a TPS lab run's results.json as a human report: report.md, tps.png and latency.png."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import LogFormatter

Run = dict[str, Any]

STRATEGY_ORDER = {"lock": 0, "lua": 1, "read": 2}
CEILING_GOAL = 0.8  # lua TPS over the read ceiling we aim for
PERCENTILES = (("p50", "C0"), ("p95", "C1"), ("p99", "C3"))
# The original study (Kotlin/Spring, nGrinder, 1,600 vusers, coupon of 5,000, 2 vCPU servers), as published.
STUDY_ROWS = (
    ("lock", "2", "145.2", "9,435", "60-120 TPS while stock remained"),
    ("Lua + queue", "2", "597.7", "66.77", ""),
    ("Lua + queue", "4", "929.7", "-", ""),
)


def _num(value: float | None, digits: int = 1) -> str:
    """A number with thousands separators, or '-' when absent."""
    return "-" if value is None else f"{value:,.{digits}f}"


def _pct(value: float | None) -> str:
    """A share as a percentage, or '-' when absent."""
    return "-" if value is None else f"{value:.0%}"


def _expected(value: float | str | None) -> str:
    """Expected winners: a number, or a range when some requests went unanswered."""
    return value if isinstance(value, str) else _num(value, 0)


def _field(run: Run, section: str, key: str) -> float | None:
    """One figure of a nested section (latency_ms, drain), or None where the section is null."""
    return (run.get(section) or {}).get(key)


def _audit_cell(run: Run) -> str:
    """OK, FAIL, or '-' for a run without an audit."""
    return "-" if run.get("audit") is None else ("OK" if run["audit"]["ok"] else "FAIL")


def _sellout_cell(run: Run) -> str:
    """When the coupon sold out; 'none' when stock remained to the end."""
    return "-" if run["strategy"] == "read" else ("none" if run["sellout_s"] is None else _num(run["sellout_s"]))


# (row label in report.md, column header in the terminal table or None for report.md only, cell)
METRICS: tuple[tuple[str, str | None, Callable[[Run], str]], ...] = (
    ("requests", None, lambda r: _num(r["requests"], 0)),
    ("TPS (whole run)", "TPS", lambda r: _num(r["tps"])),
    ("TPS while stock remained", "TPS stock", lambda r: _num(r["tps_while_stock"])),
    ("TPS after sell-out", "TPS after", lambda r: _num(r["tps_after_sellout"])),
    ("sold out after s", None, _sellout_cell),
    ("latency mean ms", None, lambda r: _num(_field(r, "latency_ms", "mean"))),
    ("latency p50 ms", "p50 ms", lambda r: _num(_field(r, "latency_ms", "p50"))),
    ("latency p95 ms", "p95 ms", lambda r: _num(_field(r, "latency_ms", "p95"))),
    ("latency p99 ms", "p99 ms", lambda r: _num(_field(r, "latency_ms", "p99"))),
    ("latency max ms", "max ms", lambda r: _num(_field(r, "latency_ms", "max"))),
    ("winners", "winners", lambda r: _num(r["winners"], 0)),
    ("connection failures", None, lambda r: _num(r["failures"], 0)),
    ("audit", "audit", _audit_cell),
    ("drain lag s", "drain lag s", lambda r: _num(_field(r, "drain", "lag_s"), 2)),
    ("drain rows/s", None, lambda r: _num(_field(r, "drain", "rows_per_s"), 0)),
    ("load generator CPU share", "loadgen CPU", lambda r: _pct(r["loadgen_cpu_share"])),
)


def _runs(results: dict[str, Any]) -> list[Run]:
    """The runs by instance count, then lock, lua, read."""
    return sorted(results["runs"], key=lambda r: (r["instances"], STRATEGY_ORDER.get(r["strategy"], 99)))


def _name(run: Run) -> str:
    """A run's label, e.g. 'lua ×2'."""
    return f"{run['strategy']} ×{run['instances']}"


def _ratio(top: Run | None, bottom: Run | None, key: str) -> float | None:
    """top[key] / bottom[key]; None where a side is missing or zero."""
    a = None if top is None else top.get(key)
    b = None if bottom is None else bottom.get(key)
    return a / b if a and b else None


def ratios(results: dict[str, Any]) -> dict[int, dict[str, float | None]]:
    """Per instance count: lua/lock TPS while stock remained, and lua and lock TPS over the read ceiling."""
    by_key = {(r["strategy"], r["instances"]): r for r in results["runs"]}
    out: dict[int, dict[str, float | None]] = {}
    for n in sorted({r["instances"] for r in results["runs"]}):
        lock, lua, read = (by_key.get((strategy, n)) for strategy in ("lock", "lua", "read"))
        out[n] = {
            "lua_over_lock": _ratio(lua, lock, "tps"),
            "lua_over_lock_while_stock": _ratio(lua, lock, "tps_while_stock"),
            "lua_over_ceiling": _ratio(lua, read, "tps"),
            "lock_over_ceiling": _ratio(lock, read, "tps"),
        }
    return out


def _ratio_text(value: float | None, suffix: str = "") -> str:
    """A ratio with two decimals, or 'n/a'."""
    return "n/a" if value is None else f"{value:.2f}{suffix}"


def _ratio_lines(results: dict[str, Any]) -> list[str]:
    """One headline line per instance count."""
    lines = []
    for n, r in ratios(results).items():
        ceiling = r["lua_over_ceiling"]
        goal = "n/a" if ceiling is None else ("met" if ceiling >= CEILING_GOAL else "NOT met")
        lines.append(
            f"×{n}: lua/lock {_ratio_text(r['lua_over_lock'], 'x')} overall (study: 4.1x), "
            f"{_ratio_text(r['lua_over_lock_while_stock'], 'x')} while stock remained; "
            f"lua/ceiling {_ratio_text(ceiling)} (goal >= {CEILING_GOAL}: {goal}); "
            f"lock/ceiling {_ratio_text(r['lock_over_ceiling'])}"
        )
    return lines


def summary_table(results: dict[str, Any]) -> str:
    """A plain-text table for the terminal, one row per run, then the headline ratios."""
    metrics = [(short, cell) for _, short, cell in METRICS if short]
    header = ["strategy", "inst", *(short for short, _ in metrics)]
    rows = [header, *([r["strategy"], str(r["instances"]), *(cell(r) for _, cell in metrics)] for r in _runs(results))]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join([row[0].ljust(widths[0]), *(c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True))])
        for row in rows
    ]
    return "\n".join([*lines, "", *_ratio_lines(results)])


def _title(results: dict[str, Any]) -> list[str]:
    """Run id, date, commit, machine and load config."""
    m, c = results["machine"], results["config"]
    return [
        f"# Coupon rush TPS lab: run {results['run_id']}",
        "",
        f"- **Date:** {results['started_at']}",
        f"- **Commit:** `{results['git_commit']}`",
        f"- **Machine:** {m['cpus']} CPUs, {m['memory_gb']} GB memory, {m['platform']}, Python {m['python']}",
        f"- **Load:** {c['users']:,} Locust users (spawn rate {c['spawn_rate']}/s) on {c['locust_workers']} "
        f"Locust workers, {c['duration_s']} s per run, coupon quantity {c['quantity']:,}",
        f"- **Server:** gunicorn {c['web_workers']} workers × {c['web_threads']} threads; "
        f"database {c['database']}; Redis {c['redis']}",
    ]


MEASURED = """## What was measured

Each run registers a fresh coupon; every Locust user picks a random member token from its worker's token file and
sends POST /coupons/<id>/download, again and again, for the run's duration. *TPS while stock remained* is requests
per second from the start until the coupon sold out; *TPS after sell-out* is requests per second from then to the end.
The *read* run sends GET /coupons/<id> (JWT check plus one Redis read) under the same server config: the framework's
ceiling on this machine. ×N is the number of API instances."""

PLOTS = """## Plots

![TPS over time](tps.png)

*Requests per second over time, one line per run; the dashed line in a run's colour marks its sell-out.*

![Latency percentiles](latency.png)

*Latency p50, p95 and p99 per run (bars, log scale); the triangle marks the maximum.*"""


def _comparison(results: dict[str, Any]) -> list[str]:
    """The runs side by side, then the headline ratios."""
    runs = _runs(results)
    lines = ["## Results", "", "| | " + " | ".join(_name(r) for r in runs) + " |", "|---|" + "---:|" * len(runs)]
    lines += [f"| {label} | " + " | ".join(cell(r) for r in runs) + " |" for label, _, cell in METRICS]
    return [*lines, "", "**Headline ratios**", "", *(f"- {line}" for line in _ratio_lines(results))]


def _study(results: dict[str, Any]) -> list[str]:
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
    """Responses by status and by error code."""
    statuses = ", ".join(f"{k}: {v:,}" for k, v in sorted(run["statuses"].items())) or "none"
    errors = ", ".join(f"{k}: {v:,}" for k, v in sorted(run["errors"].items())) or "none"
    return [
        f"- responses by status: {statuses}; connection failures (no status): {run['failures']:,}",
        f"- refusals by error code: {errors}",
    ]


def _drain_line(run: Run) -> str:
    """How long the drain took after sell-out, or why there is none."""
    if run.get("drain"):
        lag, rate = _field(run, "drain", "lag_s"), _field(run, "drain", "rows_per_s")
        return f"- drain: last row persisted {_num(lag, 2)} s after sell-out, {_num(rate, 0)} rows/s"
    if run["strategy"] == "lock":
        return "- drain: none, the lock strategy writes each row inside the request"
    return "- drain: not measured (no sell-out in this run)"


def _audit(run: Run) -> list[str]:
    """One run's audit verdict, its checks, the drain and the responses."""
    audit = run.get("audit")
    if audit is None:
        return [f"### {_name(run)}: no audit (read-only run)", "", *_responses(run), ""]
    return [
        f"### {_name(run)}: audit {_audit_cell(run)}",
        "",
        *(f"- {'OK' if passed else 'FAIL'}: {check}" for check, passed in audit["checks"].items()),
        f"- rows {_num(audit.get('rows'), 0)}, winners {_num(audit.get('winners'), 0)}, expected winners "
        f"{_expected(audit.get('expected_winners'))}, distinct askers {_num(audit.get('distinct_askers'), 0)}, "
        f"unanswered requests {_num(audit.get('unanswered', 0), 0)}",
        _drain_line(run),
        *_responses(run),
        "",
    ]


def _loadgen(results: dict[str, Any]) -> list[str]:
    """The load generator's CPU share per run."""
    return [
        "## Load generator CPU share",
        "",
        *(f"- {_name(r)}: {_pct(r['loadgen_cpu_share'])}" for r in _runs(results)),
        "",
        "A share of the whole machine (CPU seconds / (wall seconds x cores)). "
        "The load generator shares the cores with the server: CPU it takes is CPU the API, Redis and the "
        "database do not get, so a high share lowers the TPS measured.",
    ]


def _drain_benchmark(results: dict[str, Any]) -> list[str]:
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


def report_markdown(results: dict[str, Any]) -> str:
    """The whole report.md text."""
    audits = ["## Audit", "", *(line for run in _runs(results) for line in _audit(run))]
    sections = [
        _title(results),
        [MEASURED],
        _comparison(results),
        _study(results),
        audits,
        _drain_benchmark(results),
        [PLOTS],
        _loadgen(results),
    ]
    return "\n\n".join("\n".join(section).rstrip() for section in sections) + "\n"


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


def render(results: dict[str, Any], out_dir: Path) -> list[Path]:
    """Write report.md, tps.png and latency.png into out_dir; return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    report, tps, latency = out_dir / "report.md", out_dir / "tps.png", out_dir / "latency.png"
    _plot_tps(_runs(results), tps)
    _plot_latency(_runs(results), latency)
    report.write_text(report_markdown(results), encoding="utf-8")
    return [report, tps, latency]


def main(argv: list[str] | None = None) -> int:
    """Render the report next to a results.json and print the summary table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("results", type=Path, help="a run's results.json")
    parser.add_argument("--out", type=Path, help="output directory (default: the results file's directory)")
    args = parser.parse_args(argv)
    results = json.loads(args.results.read_text(encoding="utf-8"))
    print(*render(results, args.out or args.results.parent), sep="\n")
    print(summary_table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
