"""Locust load for the lab: members rush one coupon's download endpoint (or the cheap read).

Run by experiments.lab, which sets the environment:
  LAB_TOKEN_DIR  token files (tokens_00.csv ...); worker i reads file i (as nGrinder agents did)
  LAB_COUPON_ID  the coupon under test
  LAB_HOSTS      comma-separated API base URLs; users are spread across them round-robin
  LAB_MODE       download (POST /coupons/<id>/download) or read (GET /coupons/<id>, the ceiling)
  LAB_OUT        where each worker writes its raw records at test stop
  LAB_STARTED    the file where the master writes when the load began (epoch seconds)
Each worker records every response as (epoch seconds, status, milliseconds) and the members it
asked for; the lab computes TPS, the sell-out split and percentiles from those, exactly.
"""

from __future__ import annotations

import csv
import itertools
import json
import os
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

import gevent
from locust import FastHttpUser, constant, events, task
from locust.runners import MasterRunner

HOSTS = os.environ.get("LAB_HOSTS", "http://127.0.0.1:8000").split(",")
COUPON_ID = os.environ.get("LAB_COUPON_ID", "1")
MODE = os.environ.get("LAB_MODE", "download")
_next_user = itertools.count()

tokens: list[tuple[int, str]] = []
records: list[tuple[float, int, float]] = []
asked: set[int] = set()  # members with an answered request
in_flight: Counter[int] = Counter()  # requests sent and not yet answered, by member
answers: Counter[int] = Counter()  # answers by HTTP status (0: none), for the live page


@events.test_start.add_listener
def load_tokens(environment: Any, **_kwargs: Any) -> None:
    """Each worker reads its own token file; the master sends no requests and reads none."""
    if isinstance(environment.runner, MasterRunner):
        return
    files = sorted(Path(os.environ["LAB_TOKEN_DIR"]).glob("tokens_*.csv"))
    index = max(getattr(environment.runner, "worker_index", 0), 0)
    with open(files[index % len(files)], newline="") as f:
        tokens[:] = [(int(row["member_id"]), row["access_token"]) for row in csv.DictReader(f)]


@events.test_start.add_listener
def note_the_start(environment: Any, **_kwargs: Any) -> None:
    """On the master: when the load begins (after Locust's start-up), for the lab's progress lines."""
    if isinstance(environment.runner, MasterRunner) and os.environ.get("LAB_STARTED"):
        Path(os.environ["LAB_STARTED"]).write_text(repr(time.time()))


@events.init.add_listener
def write_live_counts(environment: Any, **_kwargs: Any) -> None:
    """On a worker, once a second: answers by status and latency so far, for the lab's live page."""
    if isinstance(environment.runner, MasterRunner) or not os.environ.get("LAB_OUT"):
        return

    def loop() -> None:
        while True:
            gevent.sleep(1.0)
            if not records:
                continue
            index = max(getattr(environment.runner, "worker_index", 0), 0)
            latencies = sorted(r[2] for r in records[-20000:] if r[1])  # the latest: a bounded sort
            live = {
                "at": time.time(),
                "statuses": {str(k): v for k, v in answers.items()},
                "p50_ms": _rank(latencies, 0.5),
                "p99_ms": _rank(latencies, 0.99),
            }
            path = Path(os.environ["LAB_OUT"]) / f"live-{index:02d}.json"
            path.with_suffix(".tmp").write_text(json.dumps(live))
            path.with_suffix(".tmp").replace(path)

    gevent.spawn(loop)


def _rank(values: list[float], q: float) -> float | None:
    return values[min(len(values) - 1, int(q * len(values)))] if values else None


@events.test_stop.add_listener
def write_records(environment: Any, **_kwargs: Any) -> None:
    """Write this worker's raw records for the lab."""
    if isinstance(environment.runner, MasterRunner) or not records:
        return
    index = max(getattr(environment.runner, "worker_index", 0), 0)
    out = Path(os.environ["LAB_OUT"]) / f"records-{index:02d}.json"
    # Locust fires this before users stopping gracefully have their answers: those outcomes are unknown.
    unknown = sorted(m for m, n in in_flight.items() if n > 0)
    out.write_text(json.dumps({"records": records, "asked": sorted(asked), "in_flight": unknown}))


class Member(FastHttpUser):
    """A signed-in member asking again and again, with no think time (a closed loop, like a vuser)."""

    wait_time = constant(0)
    network_timeout = 60.0
    connection_timeout = 60.0

    def __init__(self, environment: Any) -> None:
        self.host = HOSTS[next(_next_user) % len(HOSTS)]
        super().__init__(environment)

    @task
    def rush(self) -> None:
        member_id, token = random.choice(tokens)
        headers = {"Authorization": f"Bearer {token}"}
        if MODE == "read":
            path, method, name = f"/coupons/{COUPON_ID}", self.client.get, "read"
        else:
            path, method, name = f"/coupons/{COUPON_ID}/download", self.client.post, "download"
        in_flight[member_id] += 1
        started = time.time()
        with method(path, headers=headers, name=name, catch_response=True) as resp:
            status = resp.status_code or 0
            if status in (409, 410):
                resp.success()  # already_issued and sold_out are the expected answers of a rush
        records.append((started, status, (time.time() - started) * 1000))
        answers[status] += 1
        in_flight[member_id] -= 1
        if MODE != "read":
            asked.add(member_id)
