"""The lab's typed results, handed from one module to the next; results.json is their ``asdict`` form."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

Record = tuple[float, int, float]  # (request start, epoch s; HTTP status, 0 = no response; milliseconds)


@dataclass
class Latency:
    """Latency of the answered requests, in ms."""

    mean: float | None = None
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    max: float | None = None


@dataclass
class Second:
    """One whole second of a run: requests, 2xx, 4xx, failures (no answer or 5xx), median latency."""

    t: int
    tps: int
    ok: int
    refused: int
    errors: int
    p50_ms: float | None


@dataclass
class Summary:
    """TPS overall, while stock remained and after sell-out; latency; answers by status and code."""

    duration_s: float = 0.0
    requests: int = 0
    tps: float = 0.0
    tps_while_stock: float | None = None
    tps_after_sellout: float | None = None
    sellout_s: float | None = None
    latency_ms: Latency = field(default_factory=Latency)
    # Requests sent after the run's first second: the tail without the storm of every user connecting at once.
    latency_after_first_s_ms: Latency = field(default_factory=Latency)
    statuses: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    failures: int = 0
    timeline: list[Second] = field(default_factory=list)


@dataclass
class Audit:
    """Every check of the contract's guarantees for one run, with the counts behind them."""

    ok: bool
    checks: dict[str, bool]
    rows: int
    winners: int
    expected_winners: int | str
    distinct_askers: int
    unanswered: int
    queue_left: int


@dataclass
class Drain:
    """How long after the sell-out the last row landed, and the drain's pace during the run."""

    lag_s: float
    rows_per_s: float


@dataclass
class DrainBench:
    """One drain of a filled queue in batches of ``batch``: seconds and rows/s."""

    winners: int
    batch: int
    seconds: float
    rows_per_s: float


@dataclass
class Phase:
    """One phase's cost per request, per tier, in CPU microseconds (None: not measured)."""

    seconds: float
    requests: int
    api_us: float | None = None
    redis_us: float | None = None
    database_us: float | None = None
    loadgen_us: float | None = None
    evalsha_us_per_call: float | None = None


@dataclass
class LockHold:
    """How long each request held the lock (ms), and the TPS that caps while stock remains."""

    samples: int
    p50_ms: float | None
    p99_ms: float | None
    mean_ms: float | None
    ceiling_tps: float | None
    round_trips: float | None = None  # mean round trips a holder made, its release included


@dataclass
class Costs:
    """Cost per request per tier, split at the sell-out (the first sold_out answer)."""

    sellout_at_s: float | None
    stock: Phase | None
    sold_out: Phase | None
    database: str  # what the database figure covers, or why it is n/a
    lock_hold: LockHold | None = None


@dataclass
class RunResult:
    """One run: which configuration, its figures, its audit."""

    strategy: str
    instances: int
    coupon_id: int
    summary: Summary
    winners: int | None
    audit: Audit | None
    drain: Drain | None
    loadgen_cpu_share: float
    api_cpu_us_per_request: float | None
    repeat: int = 0
    costs: Costs | None = None
    predicted_tps: dict[str, float | None] | None = None
    rtt_ms: float = 0.0  # the RTT asked for between tiers (what the clients really had: round_trips' delay)
    round_trips: dict[str, Any] | None = None  # per phase, per tier (experiments.network)
    predicted_tps_while_stock: float | None = None  # the plan's, for the CPUs and RTT the run had
    predicted_tps_after_sellout: float | None = None

    def to_json(self) -> dict[str, Any]:
        """The run as results.json holds it: the summary's keys at the top level."""
        data = asdict(self)
        return {**{k: v for k, v in data.items() if k != "summary"}, **data["summary"]}


def load(source: Path) -> dict[str, Any]:
    """A report folder's results.json, or the file itself."""
    return dict(json.loads((source / "results.json" if source.is_dir() else source).read_text(encoding="utf-8")))
