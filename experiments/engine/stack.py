"""The processes of one lab run: N API instances, the drain's worker and scheduler, and Locust."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from experiments.engine.results import Record
from support.procs import ROOT, Proc, free_port, start_granian, start_gunicorn, start_module

LOCUSTFILE = ROOT / "experiments" / "engine" / "locustfile.py"


@dataclass
class Service:
    """The running API instances: their base URLs and their servers' main pids (gunicorn's master)."""

    hosts: list[str]
    pids: list[int]


def pin(pids: list[int], cpus: set[int] | None) -> None:
    """Pin each process tree (an API server and its workers, or Locust's) to ``cpus``; None: leave it."""
    if not cpus:
        return
    for pid in pids:
        try:
            root = psutil.Process(pid)
            for proc in [root, *root.children(recursive=True)]:
                os.sched_setaffinity(proc.pid, cpus)
        except (psutil.Error, ProcessLookupError):
            continue


@contextmanager
def service(
    env: Mapping[str, str],
    instances: int,
    logs: Path,
    drain: bool,
    cpus: set[int] | None = None,
    server: str = "gunicorn",
) -> Iterator[Service]:
    """``instances`` API instances on their own ports (+ worker and scheduler), pinned to ``cpus`` if given.

    ``server`` is gunicorn (the service's) or granian; either takes its worker and thread counts
    from ``env`` and gunicorn.conf.py.
    """
    with ExitStack() as stack:
        running = Service([], [])
        for i in range(instances):
            log = logs / f"api-{i}.log"
            proc, base = start_granian(env, log) if server == "granian" else start_gunicorn(env, log, None, None)
            stack.callback(proc.stop)
            running.hosts.append(base)
            running.pids.append(proc.popen.pid)
        pin(running.pids, cpus)  # workers are up: /healthz answered
        if drain:
            for module in ("jobs.worker", "jobs.scheduler"):
                stack.callback(start_module(module, env, logs / f"{module.split('.')[1]}.log").stop)
        yield running


class WorkersMissing(RuntimeError):
    """Locust workers the master waited for never connected."""


@dataclass
class Remote:
    """Locust workers started on other machines: how many, the master's port, how long to wait for them."""

    workers: int
    port: int
    wait_s: int
    command: str  # what starts one of them, as the lab prints it
    final: bool = True  # False: another run's master follows on the same port


@dataclass
class LoadResult:
    """What the Locust workers saw: raw records, members asked for, and the CPU they used."""

    records: list[Record] = field(default_factory=list)
    asked: set[int] = field(default_factory=set)
    in_flight: set[int] = field(default_factory=set)  # asked, but unanswered when Locust stopped
    cpu_s: float = 0.0
    wall_s: float = 0.0


def run_locust(
    env: Mapping[str, str],
    hosts: list[str],
    coupon_id: int,
    mode: str,
    users: int,
    spawn_rate: int,
    duration_s: int,
    workers: int,
    token_dir: Path,
    out: Path,
    progress: Callable[[float], None] | None = None,
    started_pids: Callable[[list[int]], None] | None = None,
    cpus: set[int] | None = None,
    remote: Remote | None = None,
) -> LoadResult:
    """Locust headless, a master and ``workers`` workers (nGrinder's controller and agents).

    With ``remote``, the master also waits for ``remote.workers`` workers started elsewhere, on its fixed port.
    """
    out.mkdir(parents=True, exist_ok=True)
    port = remote.port if remote else free_port()
    run_env = dict(
        env,
        LAB_TOKEN_DIR=str(token_dir),
        LAB_COUPON_ID=str(coupon_id),
        LAB_HOSTS=",".join(hosts),
        LAB_MODE=mode,
        LAB_OUT=str(out),
        LAB_STARTED=str(out / "load-started"),
        LAB_FINAL="1" if remote is None or remote.final else "0",
    )
    expected = workers + (remote.workers if remote else 0)
    waiting = ["--expect-workers-max-wait", str(remote.wait_s)] if remote else []
    locust = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE)]
    master = Proc(
        [
            *locust,
            "--master",
            "--headless",
            "-u",
            str(users),
            "-r",
            str(spawn_rate),
            "-t",
            f"{duration_s}s",
            "--expect-workers",
            str(expected),
            *waiting,
            "--master-bind-port",
            str(port),
            "--host",
            hosts[0],
            "--csv",
            str(out / "locust"),
            "--only-summary",
            # Let each user finish the request it has in flight: a winner cut off at the stop would
            # hold a row the client never saw (the audit checks every 2xx against the rows).
            "--stop-timeout",
            "30",
            "--loglevel",
            "WARNING",
        ],
        run_env,
        out / "locust-master.log",
    )
    slaves = [
        Proc(
            [*locust, "--worker", "--master-port", str(port), "--loglevel", "WARNING"],
            run_env,
            out / f"locust-worker-{i}.log",
        )
        for i in range(workers)
    ]
    pids = [p.popen.pid for p in [master, *slaves]]
    pin(pids, cpus)
    if started_pids:
        started_pids(pids)
    started = time.monotonic()
    stop_ticker = _ticker(progress, Path(run_env["LAB_STARTED"]))
    cpu_s = sum(_wait_cpu(p) for p in [master, *slaves])
    stop_ticker()
    if remote and "Gave up waiting for workers" in master.output():
        raise WorkersMissing(
            f"{expected} Locust workers expected, not all connected within {remote.wait_s} s "
            f"(see {out}/locust-master.log); start the remote ones with: {remote.command}"
        )
    result = LoadResult(cpu_s=cpu_s, wall_s=time.monotonic() - started)
    for path in sorted(out.glob("records-*.json")):
        data = json.loads(path.read_text())
        result.records.extend((float(t), int(s), float(ms)) for t, s, ms in data["records"])
        result.asked.update(data["asked"])
        result.in_flight.update(data.get("in_flight", []))
    if not result.records:
        raise RuntimeError(f"Locust recorded no request; see {out}/locust-*.log")
    return result


def _began(started: Path) -> float | None:
    """The epoch seconds in ``started``, or None while it is not (fully) written."""
    try:
        return float(started.read_text())
    except (FileNotFoundError, ValueError):
        return None


def roll_call(env: Mapping[str, str], remote: Remote, out: Path) -> None:
    """Before anything is seeded: a Locust master that only waits for the remote workers, then lets them go.

    Its workers get no users and are told another run follows, so each starts afresh for the first run's master.
    """
    out.mkdir(parents=True, exist_ok=True)
    master = Proc(
        [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--master", "--headless", "-u", "0", "-r", "1"]
        + ["-t", "1s", "--expect-workers", str(remote.workers), "--expect-workers-max-wait", str(remote.wait_s)]
        + ["--master-bind-port", str(remote.port), "--host", "http://127.0.0.1", "--only-summary"]
        + ["--loglevel", "WARNING"],
        dict(env, LAB_ROLL_CALL="1", LAB_OUT=str(out), LAB_FINAL="0"),
        out / "locust-roll-call.log",
    )
    try:
        master.popen.wait(remote.wait_s + 60)
    finally:
        master.stop()
    if "Gave up waiting for workers" in master.output():
        raise WorkersMissing(
            f"{remote.workers} remote Locust workers expected, not all connected within {remote.wait_s} s "
            f"(nothing was seeded); start them with: {remote.command}"
        )


def _wait_cpu(proc: Proc) -> float:
    """Wait for the process and return the CPU seconds it (and its waited-for children) used."""
    _, _, usage = os.wait4(proc.popen.pid, 0)
    proc.popen.returncode = 0  # reaped here; keep Popen from waiting again
    proc.stop()
    return float(usage.ru_utime + usage.ru_stime)


def _ticker(progress: Callable[[float], None] | None, started: Path) -> Callable[[], None]:
    """Call ``progress`` once a second with the seconds of load so far, from the time the locustfile's
    master wrote into ``started`` (Locust's own start-up is no load); nothing before it."""
    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(1.0):
            if progress and (began := _began(started)) is not None:
                progress(time.time() - began)

    thread = threading.Thread(target=tick, daemon=True)
    thread.start()

    def halt() -> None:
        stop.set()
        thread.join()

    return halt
