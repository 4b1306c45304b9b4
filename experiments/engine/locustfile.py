"""Locust load for the lab: members rush one coupon's download endpoint (or the cheap read).

Run by experiments.lab as a Locust master and workers; the workers may run on other machines
(``python -m experiments.worker --master HOST:PORT``), so everything between them travels over
Locust's own master/worker messages, and only the master reads or writes files:
  lab_setup    master -> worker, before the users spawn: the worker's token file (worker i gets file i,
               as nGrinder agents did), the coupon, the mode, the API base URLs, and whether more runs follow
  lab_live     worker -> master, once a second: answers by status and latency so far, and per whole
               second (the live page)
  lab_stop     master -> worker, when the run time is up: stop the users and send the records
  lab_records  worker -> master: every response as (epoch seconds, status, milliseconds), the members
               asked for and those still in flight
The master's environment (set by the lab):
  LAB_TOKEN_DIR  token files (tokens_00.csv ...)
  LAB_COUPON_ID  the coupon under test
  LAB_HOSTS      comma-separated API base URLs; users are spread across them round-robin
  LAB_MODE       download (POST /coupons/<id>/download) or read (GET /coupons/<id>, the ceiling)
  LAB_OUT        where the master writes each worker's records-NN.json and live-NN.json
  LAB_STARTED    the file where the master writes when the load began (epoch seconds)
  LAB_FINAL      0 when another run follows (remote workers then wait for its master)
  LAB_ROLL_CALL  1: a master that only waits for the workers, before the lab seeds anything
The lab computes TPS, the sell-out split and percentiles from the records, exactly.
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
from locust.runners import MasterRunner, WorkerRunner

from experiments.engine.remote import MORE_RUNS

RECORDS_WAIT_S = 90.0  # beyond the stop timeout: how long the master waits for every worker's records

run: dict[str, Any] = {
    "hosts": os.environ.get("LAB_HOSTS", "http://127.0.0.1:8000").split(","),
    "coupon_id": os.environ.get("LAB_COUPON_ID", "1"),
    "mode": os.environ.get("LAB_MODE", "download"),
    "final": True,
    "set_up": False,
}
_next_user = itertools.count()

tokens: list[tuple[int, str]] = []
records: list[tuple[float, int, float]] = []
asked: set[int] = set()  # members with an answered request
in_flight: Counter[int] = Counter()  # requests sent and not yet answered, by member
answers: Counter[int] = Counter()  # answers by HTTP status (0: none), for the live page
seconds: dict[int, tuple[Counter[int], list[float]]] = {}  # answers and latencies by the second they came in
summaries: dict[int, dict[str, Any]] = {}  # each second's answers by status and p50/p99, as sent
received: set[int] = set()  # on the master: workers whose records arrived


@events.test_start.add_listener
def note_the_start(environment: Any, **_kwargs: Any) -> None:
    """On the master: when the load begins (after Locust's start-up), for the lab's progress lines."""
    if isinstance(environment.runner, MasterRunner) and os.environ.get("LAB_STARTED"):
        Path(os.environ["LAB_STARTED"]).write_text(repr(time.time()))


@events.init.add_listener
def register(environment: Any, **_kwargs: Any) -> None:
    """The lab's messages, each side its own."""
    runner = environment.runner
    if isinstance(runner, MasterRunner):
        runner.register_message("lab_records", lambda msg, **_: _save(runner, msg, "records"))
        runner.register_message("lab_live", lambda msg, **_: _save(runner, msg, "live"))
    elif isinstance(runner, WorkerRunner):
        runner.register_message("lab_setup", lambda msg, **_: _set_up(msg.data))
        runner.register_message("lab_stop", lambda msg, **_: runner.stop(), concurrent=True)
        gevent.spawn(_send_live, runner)


@events.test_start.add_listener
def send_setup(environment: Any, **_kwargs: Any) -> None:
    """On the master, before any user spawns: each worker's tokens and the run's target."""
    runner = environment.runner
    if not isinstance(runner, MasterRunner):
        return
    received.clear()
    roll_call = os.environ.get("LAB_ROLL_CALL") == "1"  # no users, no tokens: the workers only answer
    files = [] if roll_call else sorted(Path(os.environ["LAB_TOKEN_DIR"]).glob("tokens_*.csv"))
    for client in runner.clients.all:
        index = runner.get_worker_index(client.id)
        rows = _tokens(files[index % len(files)]) if files else []
        setup = {k: run[k] for k in ("hosts", "coupon_id", "mode")}
        setup.update(tokens=rows, final=os.environ.get("LAB_FINAL", "1") == "1")
        runner.send_message("lab_setup", setup, client_id=client.id)


def _tokens(path: Path) -> list[tuple[int, str]]:
    with open(path, newline="") as f:
        return [(int(row["member_id"]), row["access_token"]) for row in csv.DictReader(f)]


def _set_up(data: dict[str, Any]) -> None:
    """On a worker: take the run's target and tokens."""
    tokens[:] = [(int(m), str(t)) for m, t in data["tokens"]]
    run.update(hosts=list(data["hosts"]), coupon_id=str(data["coupon_id"]), mode=data["mode"], final=data["final"])
    run["set_up"] = True


@events.test_stop.add_listener
def collect_records(environment: Any, **_kwargs: Any) -> None:
    """Master: ask every worker to stop and wait for its records. Worker: send them."""
    runner = environment.runner
    if isinstance(runner, MasterRunner):
        expected = {runner.get_worker_index(c.id) for c in runner.clients.all}
        for client in runner.clients.all:
            runner.send_message("lab_stop", None, client_id=client.id)
        deadline = time.monotonic() + environment.stop_timeout + RECORDS_WAIT_S
        while not expected <= received and time.monotonic() < deadline:
            gevent.sleep(0.1)
    elif isinstance(runner, WorkerRunner):
        # Locust fires this before users stopping gracefully have their answers: those outcomes are unknown.
        unknown = sorted(m for m, n in in_flight.items() if n > 0)
        runner.send_message("lab_records", {"records": records, "asked": sorted(asked), "in_flight": unknown})


@events.quitting.add_listener
def exit_code(environment: Any, **_kwargs: Any) -> None:
    """A worker tells ``python -m experiments.worker`` whether another run's master follows."""
    if isinstance(environment.runner, WorkerRunner) and run["set_up"] and not run["final"]:
        environment.process_exit_code = MORE_RUNS


def _save(runner: Any, msg: Any, kind: str) -> None:
    """On the master: a worker's records or live counts, as records-NN.json or live-NN.json in LAB_OUT."""
    index = runner.get_worker_index(msg.node_id)
    path = Path(os.environ["LAB_OUT"]) / f"{kind}-{index:02d}.json"
    path.with_suffix(".tmp").write_text(json.dumps(msg.data))
    path.with_suffix(".tmp").replace(path)
    if kind == "records":
        received.add(index)


def _send_live(runner: Any) -> None:
    """On a worker, once a second: answers by status and latency so far, for the lab's live page."""
    while True:
        gevent.sleep(1.0)
        if not records:
            continue
        at = time.time()
        latencies = sorted(r[2] for r in records[-20000:] if r[1])  # the latest: a bounded sort
        for second, (counts, taken) in seconds.items():
            if second not in summaries or second >= int(at) - 1:  # a second summarised once it is over
                ordered = sorted(taken)
                summaries[second] = {
                    "statuses": {str(k): v for k, v in counts.items()},
                    "p50_ms": _rank(ordered, 0.5),
                    "p99_ms": _rank(ordered, 0.99),
                }
        live = {
            "at": at,
            "statuses": {str(k): v for k, v in answers.items()},
            "p50_ms": _rank(latencies, 0.5),
            "p99_ms": _rank(latencies, 0.99),
            "seconds": {str(k): v for k, v in summaries.items()},
        }
        runner.send_message("lab_live", live)


def _rank(values: list[float], q: float) -> float | None:
    return values[min(len(values) - 1, int(q * len(values)))] if values else None


class Member(FastHttpUser):
    """A signed-in member asking again and again, with no think time (a closed loop, like a vuser)."""

    wait_time = constant(0)
    network_timeout = 60.0
    connection_timeout = 60.0

    def __init__(self, environment: Any) -> None:
        self.host = run["hosts"][next(_next_user) % len(run["hosts"])]
        super().__init__(environment)

    @task
    def rush(self) -> None:
        member_id, token = random.choice(tokens)
        headers = {"Authorization": f"Bearer {token}"}
        coupon_id = run["coupon_id"]
        if run["mode"] == "read":
            path, method, name = f"/coupons/{coupon_id}", self.client.get, "read"
        else:
            path, method, name = f"/coupons/{coupon_id}/download", self.client.post, "download"
        in_flight[member_id] += 1
        started = time.time()
        with method(path, headers=headers, name=name, catch_response=True) as resp:
            status = resp.status_code or 0
            if status in (409, 410):
                resp.success()  # already_issued and sold_out are the expected answers of a rush
        answered = time.time()
        records.append((started, status, (answered - started) * 1000))
        answers[status] += 1
        counts, taken = seconds.setdefault(int(answered), (Counter(), []))
        counts[status] += 1
        if status:
            taken.append((answered - started) * 1000)
        in_flight[member_id] -= 1
        if run["mode"] != "read":
            asked.add(member_id)
