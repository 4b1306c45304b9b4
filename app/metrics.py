"""Prometheus metrics at ``GET /metrics``: counters on the hot path, drain gauges computed when scraped.

Under gunicorn every worker writes its counters and histograms to PROMETHEUS_MULTIPROC_DIR
(set by gunicorn.conf.py before the workers fork) and a scrape sums them. The drain's figures live
in Redis, so they are read at scrape time: the hot path pays one counter increment and a histogram
observation, nothing more.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, request
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.registry import Collector
from rq import Queue
from rq.registry import FailedJobRegistry

from strategies import keys, state

bp = Blueprint("metrics", __name__)

DOWNLOADS = Counter("coupon_rush_downloads_total", "Download answers by strategy and outcome.", ["strategy", "outcome"])
DURATION = Histogram(
    "coupon_rush_request_duration_seconds",
    "Time to answer a request, by route.",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
# Labelled children resolved once each: labels() costs more than the increment itself (measured in
# multiprocess mode: labels() + observe ~10.6 us, observe alone ~3.9 us, inc ~2.5 us).
_counted: dict[tuple[str, str], Any] = {}  # per (strategy, outcome)
_timed: dict[str, Any] = {}  # per route: the url rules, a bounded set


def count_download(outcome: str) -> None:
    """One download answered with ``outcome`` (issued, pending, or the error code)."""
    key = (current_app.config["ISSUE_STRATEGY"], outcome)
    child = _counted.get(key)
    if child is None:
        child = _counted[key] = DOWNLOADS.labels(*key)
    child.inc()


def drain_status(client: Any, broker: Any) -> dict[str, Any]:
    """Winners waiting, the oldest one's age and the scheduler's heartbeat age (seconds, by Redis's clock)."""
    due = [int(c) for c in client.smembers(keys.DRAIN_DUE)]
    pipe = client.pipeline(transaction=False)
    for coupon_id in due:
        pipe.zcard(keys.queue(coupon_id))
        pipe.zrange(keys.queue(coupon_id), 0, 0, withscores=True)
    replies = pipe.execute() if due else []
    now_s = state.now_ms(client) / 1000
    oldest = [entries[0][1] / 1e6 for entries in replies[1::2] if entries]
    heartbeat = scheduler_heartbeat(broker)
    return {
        "pending_winners": sum(replies[0::2]),
        "oldest_pending_age_s": round(max(now_s - min(oldest), 0.0), 3) if oldest else None,
        "scheduler_heartbeat_age_s": round(max(now_s - heartbeat, 0.0), 3) if heartbeat is not None else None,
    }


def scheduler_heartbeat(broker: Any) -> float | None:
    """When the scheduler last ticked, in epoch seconds; None if it never did."""
    raw = broker.get(keys.SCHEDULER_HEARTBEAT)
    return None if raw is None else float(raw)


class DrainCollector(Collector):
    """The drain's figures, read from Redis at scrape time."""

    def __init__(self, client: Any, broker: Any, queue_name: str) -> None:
        self._client, self._broker, self._queue_name = client, broker, queue_name

    def collect(self) -> Iterator[Metric]:
        """Yield the drain's gauges and counters."""
        status = drain_status(self._client, self._broker)
        yield GaugeMetricFamily(
            "coupon_rush_drain_pending_winners", "Winners waiting to be persisted.", value=status["pending_winners"]
        )
        yield GaugeMetricFamily(
            "coupon_rush_drain_oldest_pending_seconds",
            "Age of the oldest winner waiting to be persisted (0 when none waits).",
            value=status["oldest_pending_age_s"] or 0.0,
        )
        heartbeat = scheduler_heartbeat(self._broker)
        if heartbeat is not None:
            yield GaugeMetricFamily(
                "coupon_rush_scheduler_last_tick_timestamp_seconds",
                "When the scheduler last ticked (epoch seconds).",
                value=heartbeat,
            )
        # The drain runs in the RQ worker, not under gunicorn: its rows are counted in Redis (one INCRBY
        # a committed batch), which every API instance reads alike, whichever worker drained.
        yield CounterMetricFamily(
            "coupon_rush_drain_rows", "Rows the drain committed.", value=int(self._client.get(keys.DRAIN_ROWS) or 0)
        )
        failed = FailedJobRegistry(queue=Queue(self._queue_name, connection=self._broker)).count
        yield GaugeMetricFamily("coupon_rush_drain_failed_jobs", "Drain jobs in RQ's failed registry.", value=failed)


@bp.get("/metrics")
def metrics() -> Response:
    """Prometheus text format: this app's counters (every worker's), then the drain's figures."""
    from app.extensions import clients

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        process = CollectorRegistry()
        multiprocess.MultiProcessCollector(process)
    else:
        process = REGISTRY
    drain = CollectorRegistry()
    drain.register(DrainCollector(clients().state_redis, clients().broker, current_app.config["DRAIN_QUEUE"]))
    # The 0.0.4 text format: what every Prometheus 2.x reads (the library's newest default is 1.0.0).
    return Response(generate_latest(process) + generate_latest(drain), content_type=CONTENT_TYPE_PLAIN_0_0_4)


def init_app(app: Flask) -> None:
    """Time every request by route; serve /metrics."""

    @app.before_request
    def start_timer() -> None:
        g.metrics_started = time.perf_counter()

    @app.after_request
    def observe(response: Response) -> Response:
        started = g.get("metrics_started")
        if started is not None:
            route = request.url_rule.rule if request.url_rule is not None else "unmatched"
            child = _timed.get(route)
            if child is None:
                child = _timed[route] = DURATION.labels(route)
            child.observe(time.perf_counter() - started)
        return response

    app.register_blueprint(bp)
