"""Repeated runs of one configuration as one figure: the median with its min-max."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

Run = dict[str, Any]
STRATEGY_ORDER = {"lock": 0, "lua": 1, "read": 2}


@dataclass(frozen=True)
class Spread:
    """The median of a figure's repeats, and the lowest and highest."""

    median: float
    low: float
    high: float
    n: int

    def text(self, digits: int = 1) -> str:
        """'123.4', or '123.4 (110.0-130.0)' when there were several repeats."""
        value = f"{self.median:,.{digits}f}"
        return value if self.n < 2 else f"{value} ({self.low:,.{digits}f}–{self.high:,.{digits}f})"


def spread(values: Iterable[float | None]) -> Spread | None:
    """The spread of the values given (None ignored), or None if there are none."""
    present = [float(v) for v in values if v is not None]
    if not present:
        return None
    return Spread(statistics.median(present), min(present), max(present), len(present))


def text(value: Spread | None, digits: int = 1) -> str:
    """A spread as text, or '-' when absent."""
    return "-" if value is None else value.text(digits)


def groups(results: dict[str, Any]) -> dict[tuple[str, int], list[Run]]:
    """The runs by configuration (strategy, instances), in report order, each list in repeat order."""
    out: dict[tuple[str, int], list[Run]] = {}
    for run in results["runs"]:
        out.setdefault((run["strategy"], run["instances"]), []).append(run)
    return dict(sorted(out.items(), key=lambda kv: (kv[0][1], STRATEGY_ORDER.get(kv[0][0], 99))))


def figure(runs: list[Run], get: Callable[[Run], float | None]) -> Spread | None:
    """One figure over a configuration's repeats."""
    return spread(get(r) for r in runs)


def path(*names: str) -> Callable[[Run], float | None]:
    """A getter of a nested figure, e.g. path('latency_ms', 'p99'); None where any level is missing."""

    def get(run: Run) -> float | None:
        value: Any = run
        for name in names:
            value = value.get(name) if isinstance(value, dict) else None
        return value if isinstance(value, int | float) and not isinstance(value, bool) else None

    return get


def paired_ratio(top: list[Run], bottom: list[Run], get: Callable[[Run], float | None]) -> Spread | None:
    """top/bottom per repeat (the runs of one round side by side), as a spread."""
    by_repeat = {r.get("repeat", 0): get(r) for r in bottom}
    ratios = []
    for run in top:
        a, b = get(run), by_repeat.get(run.get("repeat", 0))
        ratios.append(a / b if a and b else None)
    return spread(ratios)
