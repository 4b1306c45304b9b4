"""Cost per request per tier, from the processes' own accounting, sampled once a second.

API and load generator: user + system CPU of each process tree (psutil). Redis: its own ``INFO cpu``
and ``INFO commandstats``. The database: its server process's CPU when it runs on this machine.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psutil
import sqlalchemy as sa

from experiments.engine.results import Costs, Phase, Record

DB_SERVERS = ("mariadbd", "mysqld")
LOCAL_HOSTS = (None, "", "localhost", "127.0.0.1", "::1")


@dataclass
class Sample:
    """Cumulative counters at one moment (epoch s); None where a tier is not measured."""

    at: float
    api_s: float | None
    loadgen_s: float
    redis_s: float | None
    database_s: float | None
    evalsha_calls: int | None
    evalsha_usec: int | None


@dataclass
class TreeCpu:
    """CPU seconds of process trees, remembering each process's last reading so one that exits still counts."""

    roots: list[int] = field(default_factory=list)
    _seen: dict[int, float] = field(default_factory=dict)

    @property
    def pids(self) -> set[int]:
        """Every process of the trees seen so far."""
        return set(self._seen)

    def seconds(self) -> float:
        """User + system CPU of the roots and all their descendants so far."""
        for root in list(self.roots):
            try:
                parent = psutil.Process(root)
                procs = [parent, *parent.children(recursive=True)]
            except psutil.Error:
                continue
            for proc in procs:
                try:
                    times = proc.cpu_times()
                except psutil.Error:
                    continue
                self._seen[proc.pid] = times.user + times.system
        return sum(self._seen.values())


def database_pids(engine: sa.Engine) -> tuple[list[int], str]:
    """The local database server's pids and what its figure covers (or why it is n/a)."""
    if engine.dialect.name == "sqlite":
        return [], "n/a: SQLite runs inside the API processes (its CPU is in the API's figure)"
    if engine.url.host not in LOCAL_HOSTS:
        return [], f"n/a: the database server runs on {engine.url.host}"
    pids = [p.pid for p in psutil.process_iter(["name"]) if p.info["name"] in DB_SERVERS]
    if not pids:
        return [], "n/a: no mariadbd/mysqld process on this machine"
    try:
        TreeCpu(pids).seconds()
    except psutil.AccessDenied:
        return [], "n/a: not allowed to read the database server's CPU"
    return pids, "the mariadbd/mysqld process's CPU (all of its clients, the drain's included)"


def redis_counters(client: Any) -> tuple[float | None, int | None, int | None]:
    """Redis's CPU seconds (user + sys) and EVALSHA's calls and microseconds so far."""
    try:
        cpu = client.info("cpu")
        stats = client.info("commandstats").get("cmdstat_evalsha", {})
        return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"]), stats.get("calls", 0), stats.get("usec", 0)
    except Exception:  # a cluster answers per node, an old server may lack a field: not measured
        return None, None, None


class Sampler:
    """Samples every tier's counters every ``every_s`` from start() to stop(), with timestamps."""

    def __init__(
        self,
        api_pids: list[int],
        client: Any,
        db_pids: list[int],
        every_s: float = 1.0,
        api_cpu: Callable[[], float | None] | None = None,
    ) -> None:
        self.api, self.loadgen, self.db = TreeCpu(list(api_pids)), TreeCpu(), TreeCpu(list(db_pids))
        self._api_cpu = api_cpu or self.api.seconds  # another source for API processes on other machines
        self._client, self._every_s = client, every_s
        self._measure_db = bool(db_pids)
        self.samples: list[Sample] = []
        self.listeners: list[Callable[[Sample], None]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def take(self) -> Sample:
        """One sample now."""
        redis_s, calls, usec = redis_counters(self._client)
        sample = Sample(
            time.time(),
            self._api_cpu(),
            self.loadgen.seconds(),
            redis_s,
            self.db.seconds() if self._measure_db else None,
            calls,
            usec,
        )
        self.samples.append(sample)
        for listener in self.listeners:
            listener(sample)
        return sample

    def start(self) -> None:
        """The first sample, just before the load starts; then one a second."""
        self.take()
        self._thread.start()

    def stop(self) -> None:
        """The last sample, just after the load stopped."""
        self._stop.set()
        self._thread.join()
        self.take()

    def _run(self) -> None:
        while not self._stop.wait(self._every_s):
            self.take()


def answered_at(record: Record) -> float:
    """When a request's answer arrived (epoch s)."""
    return record[0] + record[2] / 1000


def at(samples: Sequence[Sample], when: float, name: str) -> float | None:
    """Counter ``name`` at ``when``, interpolated between the samples around it."""
    points = [(s.at, getattr(s, name)) for s in samples if getattr(s, name) is not None]
    if not points:
        return None
    when = min(max(when, points[0][0]), points[-1][0])
    for (t0, v0), (t1, v1) in zip(points, points[1:], strict=False):
        if t0 <= when <= t1:
            return float(v0 + (v1 - v0) * ((when - t0) / (t1 - t0) if t1 > t0 else 1.0))
    return float(points[-1][1])


def _per_request(samples: Sequence[Sample], name: str, start: float, end: float, requests: int) -> float | None:
    """CPU microseconds per request of one tier between ``start`` and ``end``."""
    a, b = at(samples, start, name), at(samples, end, name)
    return None if a is None or b is None or not requests else round((b - a) * 1e6 / requests, 1)


def phase(samples: Sequence[Sample], records: Sequence[Record], start: float, end: float) -> Phase | None:
    """Every tier's cost per request answered between ``start`` and ``end``."""
    if end <= start:
        return None
    answered = sum(1 for r in records if r[1] and start <= answered_at(r) < end)
    calls = [at(samples, t, "evalsha_calls") for t in (start, end)]
    usec = [at(samples, t, "evalsha_usec") for t in (start, end)]
    evalsha = None
    if None not in calls and None not in usec and calls[1] - calls[0] > 0:  # type: ignore[operator]
        evalsha = round((usec[1] - usec[0]) / (calls[1] - calls[0]), 2)  # type: ignore[operator]
    return Phase(
        seconds=round(end - start, 3),
        requests=answered,
        api_us=_per_request(samples, "api_s", start, end, answered),
        redis_us=_per_request(samples, "redis_s", start, end, answered),
        database_us=_per_request(samples, "database_s", start, end, answered),
        loadgen_us=_per_request(samples, "loadgen_s", start, end, answered),
        evalsha_us_per_call=evalsha,
    )


def split(samples: Sequence[Sample], records: Sequence[Record], sellout_at: float | None, database: str) -> Costs:
    """The run's costs before and after the sell-out (the first sold_out answer)."""
    if len(samples) < 2:
        return Costs(None, None, None, database)
    last = samples[-1].at
    # From the first answer: Locust's start-up (imports, spawning users) is no request's cost.
    first = max(samples[0].at, min((answered_at(r) for r in records if r[1]), default=samples[0].at))
    cut = last if sellout_at is None else min(max(sellout_at, first), last)
    return Costs(
        sellout_at_s=None if sellout_at is None else round(cut - first, 3),
        stock=phase(samples, records, first, cut + (1e-9 if cut == last else 0.0)),
        sold_out=phase(samples, records, cut, last + 1e-9) if sellout_at is not None else None,
        database=database,
    )


def api_cpu_us_per_request(samples: Sequence[Sample], records: Sequence[Record]) -> float | None:
    """The API processes' CPU over the run divided by the requests they answered."""
    answered = sum(1 for r in records if r[1])
    if len(samples) < 2 or not answered:
        return None
    first, last = samples[0].api_s, samples[-1].api_s
    return None if first is None or last is None else round((last - first) * 1e6 / answered, 1)
