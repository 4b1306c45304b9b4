"""Two lab reports side by side: ``python -m experiments.compare A B`` marks each figure better, worse or noise.

A figure of B is *better* or *worse* than A's only if the change is larger than its noise: the ranges of the
two reports' repeats (min-max) must not overlap, and with a single run on either side the change must exceed
NOISE (runs of one configuration vary by 15-25% on a shared machine).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from experiments.engine.results import load
from experiments.reports.spread import Spread, figure, groups, path

NOISE = 0.15  # relative change below which single runs are not told apart
# (label, keys into a run, higher is better)
FIGURES: tuple[tuple[str, tuple[str, ...], bool], ...] = (
    ("TPS", ("tps",), True),
    ("TPS while stock remained", ("tps_while_stock",), True),
    ("TPS after sell-out", ("tps_after_sellout",), True),
    ("latency p50 ms", ("latency_ms", "p50"), False),
    ("latency p99 ms", ("latency_ms", "p99"), False),
    ("latency p99 ms, sent after the first second", ("latency_after_first_s_ms", "p99"), False),
    ("API CPU µs/request", ("api_cpu_us_per_request",), False),
    ("API µs/request while stock remained", ("costs", "stock", "api_us"), False),
    ("Redis µs/request while stock remained", ("costs", "stock", "redis_us"), False),
    ("lock hold mean ms", ("costs", "lock_hold", "mean_ms"), False),
)


def verdict(a: Spread, b: Spread, higher_is_better: bool) -> str:
    """better, worse or within noise: B against A."""
    if a.median == 0:
        return "within noise"
    if a.n > 1 and b.n > 1:
        apart = b.low > a.high or b.high < a.low
    else:
        apart = abs(b.median - a.median) / abs(a.median) > NOISE
    if not apart:
        return "within noise"
    return "better" if (b.median > a.median) == higher_is_better else "worse"


def compare(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per configuration and figure both reports have."""
    left, right = groups(a), groups(b)
    rows = []
    for key in [k for k in left if k in right]:
        for label, keys, higher in FIGURES:
            x, y = figure(left[key], path(*keys)), figure(right[key], path(*keys))
            if x is None or y is None:
                continue
            change = (y.median - x.median) / x.median if x.median else None
            rows.append(
                {
                    "run": f"{key[0]} ×{key[1]}",
                    "figure": label,
                    "a": x,
                    "b": y,
                    "change": change,
                    "verdict": verdict(x, y, higher),
                }
            )
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    """The comparison as a Markdown table."""
    lines = ["| run | figure | A | B | change | verdict |", "|---|---|---:|---:|---:|---|"]
    for r in rows:
        change = "-" if r["change"] is None else f"{r['change']:+.0%}"
        lines.append(f"| {r['run']} | {r['figure']} | {r['a'].text()} | {r['b'].text()} | {change} | {r['verdict']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Print the two reports side by side."""
    cli = argparse.ArgumentParser(
        prog="python -m experiments.compare",
        description=(__doc__ or "").splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    cli.add_argument("a", type=Path, help="the baseline: a report folder or its results.json")
    cli.add_argument("b", type=Path, help="the report compared with it")
    args = cli.parse_args(argv)
    a, b = load(args.a), load(args.b)
    rows = compare(a, b)
    print(f"A: {a['run_id']} ({a['git_commit']})  B: {b['run_id']} ({b['git_commit']})\n")
    print(table(rows) if rows else "no configuration in common")
    return 0 if rows else 1


if __name__ == "__main__":
    raise SystemExit(main())
