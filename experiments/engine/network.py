"""The network between the lab's tiers: the RTT each run had, and the round trips a request makes, per phase.

Two counts per tier, because they answer different questions:

- the servers' own: Redis's ``INFO commandstats`` (every command's calls) and MariaDB's ``Com_*``
  global status (every statement), sampled with the other counters once a second. They are the
  whole server's, every client's (the lab's own row monitor included): an upper bound.
- the clients': the API processes (and the drain's worker and scheduler) count every round trip
  they make (``support.delay``), which is what a network's RTT multiplies. A pipeline or a
  script is one round trip however many commands it carries. The API's round trips and the
  drain's are counted apart; a phase's figures are per request the API answered in it, and
  include what every process does besides answering (the drain's polls, the revocation view's
  refresh once a second).

The lock's serialised chain, from one holder's SET to the next holder's SET, is the round trips
the holder makes between acquire() returning and release() returning (counted by the hold probe,
``experiments/probe/``) plus one: the next waiter's wake-up (BLPOP's answer) and its SET.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from experiments.engine.costs import Sample, answered_at
from experiments.engine.results import Costs, Record
from support.delay import FLUSH_S, Counts, read_stats

HANDOVER_ROUND_TRIPS = 1  # the next waiter's wake-up (half), its SET (half)


def rtts(value: str) -> list[float]:
    """--rtt-ms: one RTT in ms or several, comma-separated (0 is loopback's own)."""
    try:
        found = [float(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an RTT list in ms: {value!r} (e.g. 0.5 or 0,0.5,1,2)") from None
    if not found or any(v < 0 for v in found):
        raise argparse.ArgumentTypeError(f"RTTs must be 0 or more ms: {value!r}")
    return found


def order(modes: list[str], repeat: int, delays: list[float]) -> list[tuple[str, float, int]]:
    """Each (mode, RTT) ``repeat`` times, every other round reversed, as ``--repeat`` interleaves modes."""
    configs = [(mode, rtt) for rtt in delays for mode in modes]
    return [(m, r, i) for i in range(repeat) for m, r in (configs if i % 2 == 0 else configs[::-1])]


def redis_commands(client: Any) -> int | None:
    """Every command Redis has run so far (INFO commandstats), or None where it cannot say."""
    try:
        return sum(int(v.get("calls", 0)) for v in client.info("commandstats").values())
    except Exception:  # a cluster answers per node: not measured
        return None


def database_statements(engine: sa.Engine) -> int | None:
    """Every statement MariaDB/MySQL has run so far (the Com_* status), or None (SQLite, no access)."""
    if engine.dialect.name != "mysql":
        return None
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SHOW GLOBAL STATUS LIKE 'Com\\_%'")).all()
    except sa.exc.DBAPIError:
        return None
    return sum(int(v) for k, v in rows if str(v).isdigit() and not k.lower().startswith("com_show"))


@dataclass
class ServerCounters:
    """The servers' command counts, taken when the cost sampler samples (a listener of it)."""

    client: Any
    engine: sa.Engine
    samples: list[tuple[float, int | None, int | None]] = field(default_factory=list)

    def take(self, sample: Sample) -> None:
        """Count now, stamped with the cost sample's time."""
        self.samples.append((sample.at, redis_commands(self.client), database_statements(self.engine)))


def _interpolate(points: Sequence[tuple[float, float]], when: float) -> float | None:
    if not points:
        return None
    when = min(max(when, points[0][0]), points[-1][0])
    for (t0, v0), (t1, v1) in zip(points, points[1:], strict=False):
        if t0 <= when <= t1:
            return v0 + (v1 - v0) * ((when - t0) / (t1 - t0) if t1 > t0 else 1.0)
    return points[-1][1]


def client_counts(folder: Path, when: float, pids: set[int] | None = None, other: bool = False) -> Counts:
    """The processes' round-trip counts at ``when``, each interpolated between its own lines.

    ``pids``: only those processes (``other``: every process but those).
    """
    total = Counts()
    for pid, lines in read_stats(folder).items():
        if not lines or (pids is not None and (pid in pids) == other):
            continue
        points = [(lines[0][0] - FLUSH_S, Counts()), *lines]  # nothing counted a flush before the first line
        values = [_interpolate([(t, c.line()[i]) for t, c in points], when) or 0.0 for i in range(len(Counts().line()))]
        total = Counts(*(a + b for a, b in zip(total.line(), values, strict=True)))
    return total


def windows(samples: Sequence[Sample], records: Sequence[Record], sellout_at: float | None) -> dict[str, tuple]:
    """The stock and sold-out phases' (start, end), cut where the cost split cuts them."""
    if len(samples) < 2:
        return {}
    last = samples[-1].at
    first = max(samples[0].at, min((answered_at(r) for r in records if r[1]), default=samples[0].at))
    cut = last if sellout_at is None else min(max(sellout_at, first), last)
    return {"stock": (first, cut), **({"sold_out": (cut, last)} if sellout_at is not None else {})}


def _per(value: float | None, requests: int, digits: int = 2) -> float | None:
    return None if value is None or not requests else round(value / requests, digits)


def _server(server: ServerCounters, index: int, start: float, end: float) -> float | None:
    points = [(s[0], float(v)) for s in server.samples if (v := s[index]) is not None]
    a, b = _interpolate(points, start), _interpolate(points, end)
    return None if a is None or b is None else b - a


def phase_round_trips(
    server: ServerCounters,
    folder: Path,
    records: Sequence[Record],
    window: tuple[float, float],
    api: set[int] | None,
) -> dict[str, Any]:
    """One phase's round trips per answered request, per tier, and the delay the clients really had.

    ``api``: the API processes' pids; the others (the drain's worker and scheduler) count apart. None: the
    lab did not start them (target mode), so only the servers' own counters are known.
    """
    start, end = window
    answered = sum(1 for r in records if r[1] and start <= answered_at(r) < end)
    statements = _server(server, 2, start, end)
    if api is None:
        counted = "n/a" if statements is None else _per(statements, answered)
        return {
            "requests": answered,
            "redis": {"round_trips": None, "commands": _per(_server(server, 1, start, end), answered)},
            "database": {"round_trips": None, "statements": counted},
        }
    made = client_counts(folder, end, api).minus(client_counts(folder, start, api))
    drain = client_counts(folder, end, api, other=True).minus(client_counts(folder, start, api, other=True))
    return {
        "requests": answered,
        "redis": {
            "round_trips": _per(made.redis, answered),
            "commands": _per(_server(server, 1, start, end), answered),
            "round_trip_ms": round(made.redis_wait_s * 1000 / made.redis, 3) if made.redis else None,
        },
        "database": {
            "round_trips": _per(made.database, answered),
            "statements": "n/a" if statements is None else _per(statements, answered),
            "round_trip_ms": round(made.database_wait_s * 1000 / made.database, 3) if made.database else None,
        },
        "drain": {
            "redis_round_trips": _per(drain.redis, answered),
            "database_round_trips": _per(drain.database, answered),
        },
        "delay": {
            "delivered_rtt_ms": round(made.slept_s * 1000 / made.pauses, 3) if made.pauses else None,
            "cpu_us_per_request": _per((made.cpu_s + drain.cpu_s) * 1e6, answered, 1),
        },
    }


def round_trips(
    server: ServerCounters,
    folder: Path,
    samples: Sequence[Sample],
    records: Sequence[Record],
    sellout_at: float | None,
    costs: Costs | None,
    api: set[int] | None,
) -> dict[str, Any]:
    """Per phase: round trips per request per tier, the delay delivered, and the lock's chain (``api`` None:
    the servers' counters alone, see phase_round_trips)."""
    out = {
        name: phase_round_trips(server, folder, records, window, api)
        for name, window in windows(samples, records, sellout_at).items()
    }
    hold = costs.lock_hold if costs else None
    if hold is not None and hold.round_trips is not None and "stock" in out:
        out["stock"]["lock_chain"] = round(hold.round_trips + HANDOVER_ROUND_TRIPS, 2)
    return out


def delivered_rtt_ms(run: dict[str, Any], phase: str = "stock") -> float:
    """The RTT a run's clients really waited (0 at loopback), from its stock phase (else its other)."""
    trips = run.get("round_trips") or {}
    for name in (phase, "sold_out", "stock"):
        value = ((trips.get(name) or {}).get("delay") or {}).get("delivered_rtt_ms")
        if value is not None:
            return float(value)
    return 0.0


def distinct_rtts(results: dict[str, Any]) -> list[float]:
    """The RTTs asked for in a report's runs, in order (0 for runs before the lab had a delay)."""
    return sorted({float(r.get("rtt_ms") or 0.0) for r in results["runs"]})


def at_rtt(results: dict[str, Any], rtt: float) -> dict[str, Any]:
    """The report with only the runs asked for at ``rtt``."""
    return dict(results, runs=[r for r in results["runs"] if float(r.get("rtt_ms") or 0.0) == rtt])
