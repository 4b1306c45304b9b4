"""Turn Locust workers' raw records into the lab's figures: TPS, the sell-out split, percentiles."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence

from experiments.engine.results import Latency, Record, Second, Summary

__all__ = ["Record", "latency", "percentile", "summarise", "timeline", "sellout_answer"]

# In a rush these statuses have exactly one error code each (see the contract).
ERROR_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    404: "coupon_not_found",
    409: "already_issued",
    410: "sold_out",
    503: "unavailable",
}


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) by nearest rank; None for no values."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return float(sorted_values[rank - 1])


def latency(records: Sequence[Record]) -> Latency:
    """Mean, p50, p95, p99 and max of the responses' latency in ms."""
    values = sorted(r[2] for r in records if r[1])
    return Latency(
        mean=sum(values) / len(values) if values else None,
        p50=percentile(values, 50),
        p95=percentile(values, 95),
        p99=percentile(values, 99),
        max=values[-1] if values else None,
    )


def sellout_answer(records: Sequence[Record]) -> float | None:
    """When the first sold_out answer arrived (epoch s), or None if none did."""
    return min((r[0] + r[2] / 1000 for r in records if r[1] == 410), default=None)


def timeline(records: Sequence[Record], start: float, end: float) -> list[Second]:
    """One row per whole second from ``start`` to ``end``: requests, 2xx, 4xx, failures, median latency."""
    seconds: dict[int, list[Record]] = defaultdict(list)
    for record in records:
        seconds[int(record[0] - start)].append(record)
    rows = []
    # A last second less than half covered would read as a drop: it is left out, a fuller one kept
    # (an 8 s run's requests are sent over 7.9 s or so: eight seconds, not seven).
    for t in range(round(end - start)):
        bucket = seconds.get(t, [])
        rows.append(
            Second(
                t=t,
                tps=len(bucket),
                ok=sum(1 for r in bucket if 200 <= r[1] < 300),
                refused=sum(1 for r in bucket if 400 <= r[1] < 500),
                errors=sum(1 for r in bucket if r[1] == 0 or r[1] >= 500),
                p50_ms=percentile(sorted(r[2] for r in bucket), 50),
            )
        )
    return rows


def summarise(records: Sequence[Record], sellout_at: float | None, rush: bool = True) -> Summary:
    """TPS overall, while stock remained and after sell-out; latency; responses by status and code.

    For a rush that never sold out, stock remained the whole run: TPS while stock is the overall TPS.
    """
    if not records:
        return Summary()
    start = min(r[0] for r in records)
    end = max(r[0] for r in records)
    duration = max(end - start, 1e-9)
    statuses = Counter(r[1] for r in records if r[1])
    errors = Counter(ERROR_CODES.get(s, f"http_{s}") for s in (r[1] for r in records) if s >= 400)
    result = Summary(
        duration_s=round(duration, 3),
        requests=len(records),
        tps=len(records) / duration,
        latency_ms=latency(records),
        latency_after_first_s_ms=latency([r for r in records if r[0] >= start + 1.0]),
        statuses={str(k): v for k, v in sorted(statuses.items())},
        errors=dict(errors),
        failures=sum(1 for r in records if r[1] == 0),
        timeline=timeline(records, start, end),
    )
    if rush and sellout_at is None:
        result.tps_while_stock = result.tps
    if sellout_at is not None:
        sellout = min(max(sellout_at, start), end)
        before = sum(1 for r in records if r[0] < sellout)
        result.sellout_s = round(sellout - start, 3)
        result.tps_while_stock = before / max(sellout - start, 1e-9) if sellout > start else None
        result.tps_after_sellout = (len(records) - before) / (end - sellout) if end > sellout else None
    return result
