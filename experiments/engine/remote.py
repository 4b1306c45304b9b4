"""Locust workers on other machines: ``python -m experiments.worker --master HOST:PORT``.

A load machine needs this checkout and its Python packages, nothing else: the lab's master hands each
worker its tokens, the coupon, the mode and the API's addresses over Locust's own messages, and takes
its records and live counts back the same way (experiments/engine/locustfile.py). The lab starts one
Locust master a run; a worker exits with its master, so this command starts the next worker for the
next run's master until the master says the last run is over.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import threading

from support.procs import ROOT

LOCUSTFILE = ROOT / "experiments" / "engine" / "locustfile.py"
DEFAULT_PORT = 5557  # Locust's own default master port
MORE_RUNS = 75  # a worker's exit code when its master said another run follows


def master_address(value: str) -> tuple[str, int]:
    """HOST:PORT of the lab's Locust master."""
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"not HOST:PORT: {value!r} (e.g. 10.0.0.5:{DEFAULT_PORT})")
    return host, int(port)


def command(host: str, port: int) -> str:
    """What a tester types on a load machine to add one worker to the lab's runs."""
    return f"python -m experiments.worker --master {host}:{port}"


def advertised_host(targets: list[str]) -> str:
    """This machine's address on the route towards the first target: what remote workers connect to."""
    from urllib.parse import urlsplit

    host = urlsplit(targets[0]).hostname if targets else None
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect((host or "192.0.2.1", 9))  # no packet is sent: it only picks the route
            return str(s.getsockname()[0])
        except OSError:
            return "127.0.0.1"


def serve(host: str, port: int, index: int) -> int:
    """One worker process after another, one per run, until the last run's master lets it go."""
    while True:
        done = subprocess.run(
            [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--worker"]
            + ["--master-host", host, "--master-port", str(port), "--loglevel", "WARNING"],
            cwd=ROOT,
        )
        if done.returncode != MORE_RUNS:
            print(f"worker {index}: done (exit {done.returncode})", flush=True)
            return done.returncode


def main(argv: list[str] | None = None) -> int:
    """Start ``--processes`` workers against the lab's master; the exit code is the worst of theirs."""
    cli = argparse.ArgumentParser(prog="python -m experiments.worker", description=(__doc__ or "").splitlines()[0])
    cli.add_argument("--master", type=master_address, required=True, help="HOST:PORT the lab printed")
    cli.add_argument("--processes", type=int, default=1, help="worker processes on this machine (one a core)")
    args = cli.parse_args(argv)
    host, port = args.master
    codes = [0] * args.processes
    threads = [
        threading.Thread(target=lambda i=i: codes.__setitem__(i, serve(host, port, i)), daemon=True)
        for i in range(args.processes)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return max(codes)
