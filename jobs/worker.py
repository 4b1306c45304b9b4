"""The RQ worker that runs drain jobs: ``python -m jobs.worker``.

It is a SimpleWorker: jobs run in this process, on its warm database and Redis pools. A drain
job is short and bounded (DRAIN_MAX_RUN_S), and forking a work horse for each one would cost
more than the drain itself. A kill -9 of this process is safe: see jobs.drain.drain.

RQ's worker quits (or, starting, fails) when Redis goes away at the wrong moment: mid-job, in
its heartbeat, at birth. Winners would then wait in Redis for good after Redis came back, so a
worker that stops without being asked to is replaced by a new one until Redis answers again.
"""

from __future__ import annotations

import argparse
import logging
import time

import redis
from rq import Queue, SimpleWorker
from rq.exceptions import StopRequested

from app import background
from app.adapters import stop_requested

log = logging.getLogger(__name__)
RESTART_WAIT_S = 1.0  # between a worker that quit on an outage and its replacement


def main(argv: list[str] | None = None) -> None:
    """Run a worker on the drain queue until stopped (or until empty with --burst)."""
    parser = argparse.ArgumentParser(prog="python -m jobs.worker", description=__doc__.splitlines()[0])
    parser.add_argument("--burst", action="store_true", help="stop once the queue is empty")
    args = parser.parse_args(argv)
    service = background.start("worker")
    while True:
        try:
            worker = SimpleWorker([Queue(service.drain.queue, connection=service.broker)], connection=service.broker)
            worker.work(burst=args.burst, logging_level="WARNING")
            # RQ notes a SIGTERM or Ctrl-C; anything else that ended work() was a failure.
            if args.burst or stop_requested(worker):
                return
            log.warning("the RQ worker quit without being asked to; starting another in %s s", RESTART_WAIT_S)
        except redis.RedisError as exc:  # unreachable, cluster down, OOM, read-only: replace the worker
            log.warning("Redis error, starting another worker in %s s: %s: %s", RESTART_WAIT_S, type(exc).__name__, exc)
        try:
            time.sleep(RESTART_WAIT_S)
        except StopRequested:  # the last worker's signal handler, still installed
            return


if __name__ == "__main__":
    main()
