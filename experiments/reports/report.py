"""Render a TPS lab run's results.json as a human report: report.md, report.html, tps.png and latency.png."""

from __future__ import annotations

import argparse
import json
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

from experiments.engine.network import at_rtt, distinct_rtts
from experiments.reports import network_sections, rtt_plot, sections
from experiments.reports.network_sections import by_rtt
from experiments.reports.plan import measured_lines
from experiments.reports.plots import plot_all
from experiments.reports.report_html import write_html
from experiments.reports.spread import Spread, figure, groups, paired_ratio, path, text

Run = dict[str, Any]
CEILING_GOAL = 0.8  # lua TPS over the read ceiling we aim for
# What the headline's ratios are and the terms they use, said before them: in the report and on the terminal.
TERMS = (
    "TPS ratios for each number of API instances (×N). The study is the original project's published measurement "
    "(Kotlin/Spring, 1,600 users, a coupon of 5,000). The ceiling is the read run's TPS: GET /coupons/<id> through "
    "the same server, with the same signed-in check (in memory) and one Redis read, the most this framework answers "
    f"on this machine; lua aims at {CEILING_GOAL} of it or more."
)


def _audit_cell(runs: list[Run]) -> str:
    """OK, FAIL, 'OK 2/3', or '-' for runs without an audit."""
    audits = [r["audit"] for r in runs if r.get("audit") is not None]
    if not audits:
        return "-"
    passed = sum(1 for a in audits if a["ok"])
    return "OK" if passed == len(audits) else ("FAIL" if len(audits) == 1 else f"OK {passed}/{len(audits)}")


def _sellout_cell(runs: list[Run]) -> str:
    """When the coupon sold out; 'none' when stock remained to the end."""
    if runs[0]["strategy"] == "read":
        return "-"
    return text(figure(runs, path("sellout_s"))) if any(r.get("sellout_s") is not None for r in runs) else "none"


def _pct(value: Spread | None) -> str:
    if value is None:
        return "-"
    share = f"{value.median:.0%}"
    return share if value.n < 2 else f"{share} ({value.low:.0%}–{value.high:.0%})"


def _num(keys: tuple[str, ...], digits: int = 1) -> Callable[[list[Run]], str]:
    return lambda runs: text(figure(runs, path(*keys)), digits)


# (row label in report.md, column header in the terminal table or None for report.md only, cell)
METRICS: tuple[tuple[str, str | None, Callable[[list[Run]], str]], ...] = (
    ("requests", None, _num(("requests",), 0)),
    ("TPS (whole run)", "TPS", _num(("tps",))),
    ("TPS while stock remained", "TPS stock", _num(("tps_while_stock",))),
    ("TPS after sell-out", "TPS after", _num(("tps_after_sellout",))),
    ("sold out after s", None, _sellout_cell),
    ("latency mean ms", None, _num(("latency_ms", "mean"))),
    ("latency p50 ms", "p50 ms", _num(("latency_ms", "p50"))),
    ("latency p95 ms", "p95 ms", _num(("latency_ms", "p95"))),
    ("latency p99 ms", "p99 ms", _num(("latency_ms", "p99"))),
    ("latency max ms", "max ms", _num(("latency_ms", "max"))),
    ("latency p99 ms, sent after the first second", None, _num(("latency_after_first_s_ms", "p99"))),
    ("latency max ms, sent after the first second", None, _num(("latency_after_first_s_ms", "max"))),
    ("winners", "winners", _num(("winners",), 0)),
    ("connection failures", None, _num(("failures",), 0)),
    ("audit", "audit", _audit_cell),
    ("drain lag s", "drain lag s", _num(("drain", "lag_s"), 2)),
    ("drain rows/s", None, _num(("drain", "rows_per_s"), 0)),
    ("API CPU µs/request", "API us/req", _num(("api_cpu_us_per_request",), 0)),
    ("load generator CPU share", "loadgen CPU", lambda runs: _pct(figure(runs, path("loadgen_cpu_share")))),
)


def name(key: tuple[str, int]) -> str:
    """A configuration's label, e.g. 'lua ×2'."""
    return f"{key[0]} ×{key[1]}"


def ratios(results: dict[str, Any]) -> dict[int, dict[str, Spread | None]]:
    """Per instance count: lua/lock TPS (whole run, while stock remained), lua and lock over the read ceiling."""
    by_key = groups(results)
    out: dict[int, dict[str, Spread | None]] = {}
    for n in sorted({k[1] for k in by_key}):
        lock, lua, read = (by_key.get((s, n), []) for s in ("lock", "lua", "read"))
        out[n] = {
            "lua_over_lock": paired_ratio(lua, lock, path("tps")),
            "lua_over_lock_while_stock": paired_ratio(lua, lock, path("tps_while_stock")),
            "lua_over_ceiling": paired_ratio(lua, read, path("tps")),
            "lock_over_ceiling": paired_ratio(lock, read, path("tps")),
        }
    return out


def _ratio_text(value: Spread | None, suffix: str = "") -> str:
    """A ratio with two decimals (and its min-max over repeats), or 'n/a'."""
    return "n/a" if value is None else value.text(2).replace(" (", f"{suffix} (", 1) + ("" if value.n > 1 else suffix)


def ratio_lines(results: dict[str, Any]) -> list[str]:
    """One headline line per instance count."""
    lines = []
    for n, r in ratios(results).items():
        ceiling = r["lua_over_ceiling"]
        goal = "n/a" if ceiling is None else ("met" if ceiling.median >= CEILING_GOAL else "NOT met")
        lines.append(
            f"×{n}: lua/lock {_ratio_text(r['lua_over_lock'], 'x')} overall (study: 4.1x), "
            f"{_ratio_text(r['lua_over_lock_while_stock'], 'x')} while stock remained; "
            f"lua/ceiling {_ratio_text(ceiling)} (goal >= {CEILING_GOAL}: {goal}); "
            f"lock/ceiling {_ratio_text(r['lock_over_ceiling'])}"
        )
    return lines


def summary_table(results: dict[str, Any]) -> str:
    """A plain-text table for the terminal, one row per configuration, then the headline ratios."""
    metrics = [(short, cell) for _, short, cell in METRICS if short]
    header = ["strategy", "inst", *(short for short, _ in metrics)]
    rows = [header]
    rows += [[k[0], str(k[1]), *(cell(runs) for _, cell in metrics)] for k, runs in groups(results).items()]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join([row[0].ljust(widths[0]), *(c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True))])
        for row in rows
    ]
    return "\n".join([*lines, "", textwrap.fill(TERMS, 116), "", *ratio_lines(results)])


def comparison(results: dict[str, Any]) -> list[str]:
    """The configurations side by side (medians, min-max over repeats), then the headline ratios."""
    by_key = groups(results)
    lines = ["## Results", "", "| | " + " | ".join(name(k) for k in by_key) + " |", "|---|" + "---:|" * len(by_key)]
    lines += [f"| {label} | " + " | ".join(cell(runs) for runs in by_key.values()) + " |" for label, _, cell in METRICS]
    repeats = max(len(runs) for runs in by_key.values()) if by_key else 1
    note = [f"Each figure: the median of {repeats} interleaved runs (min–max)."] if repeats > 1 else []
    return [*lines, "", *note]


def headline(results: dict[str, Any]) -> list[str]:
    """The ratios the lab exists for, one line per instance count (and per RTT when the runs had several)."""
    delays = distinct_rtts(results)
    if len(delays) < 2:
        lines = [f"- {line}" for line in ratio_lines(results)]
    else:
        lines = [f"- RTT {rtt:g} ms, {line}" for rtt in delays for line in ratio_lines(at_rtt(results, rtt))]
    return ["## Headline", "", TERMS, "", *lines]


def model(results: dict[str, Any]) -> list[str]:
    """The capacity model: this machine's predicted TPS beside the measured, then the study's setups."""
    measured = measured_lines(results)
    predicted = ["", "### Predicted vs measured (this machine)", "", *measured] if measured else []
    setups = sections.plan(results)
    return ["## The capacity model", "", sections.MODEL, *predicted, *setups] if predicted or setups else []


def rtt_section(results: dict[str, Any]) -> list[str]:
    """The TPS-against-RTT plot's place in the report, when the runs had several RTTs."""
    if len(distinct_rtts(results)) < 2:
        return []
    return ["![TPS against RTT](rtt.png)", "", f"*{rtt_plot.CAPTION}*"]


def report_markdown(results: dict[str, Any]) -> str:
    """The whole report.md text: the headline, what was measured, then the model, then the details."""
    parts = [
        sections.title(results),
        headline(results),
        [sections.MEASURED],
        *by_rtt(results, comparison),
        *by_rtt(results, sections.costs),
        network_sections.round_trips(results),
        model(results),
        network_sections.predicted_vs_measured(results),
        sections.study(results),
        sections.audits(results),
        sections.drain_benchmark(results),
        [sections.PLOTS],
        rtt_section(results),
        sections.loadgen(results),
    ]
    return "\n\n".join("\n".join(part).rstrip() for part in parts if part) + "\n"


def render(results: dict[str, Any], out_dir: Path) -> list[Path]:
    """Write report.md, tps.png, latency.png and report.html into out_dir; return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    report = out_dir / "report.md"
    runs = [run for group in groups(results).values() for run in group]
    tps, latency = plot_all(runs, out_dir)
    rtt = [rtt_plot.draw([results], out_dir / "rtt.png")] if rtt_section(results) else []
    markdown = report_markdown(results)
    report.write_text(markdown, encoding="utf-8")
    html = write_html(results, markdown, out_dir)
    return [report, tps, latency, *rtt, html]


def main(argv: list[str] | None = None) -> int:
    """Render the report next to a results.json and print the summary table."""
    parser = argparse.ArgumentParser(
        prog="python -m experiments.report",
        description=(__doc__ or "").splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("results", type=Path, help="a run's results.json")
    parser.add_argument("--out", type=Path, help="output directory (None: the results file's directory)")
    args = parser.parse_args(argv)
    results = json.loads(args.results.read_text(encoding="utf-8"))
    print(*render(results, args.out or args.results.parent), sep="\n")
    print(network_sections.summary_tables(results, summary_table))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
