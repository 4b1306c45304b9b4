"""What reproduces a run: the code, the packages, the servers, the machine."""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import sqlalchemy as sa

from support.procs import ROOT


def git_commit() -> str:
    """HEAD's short hash, marked dirty if the tree has changes."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    return commit + ("-dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def cpu_model() -> str:
    """The CPU's model name, as /proc/cpuinfo gives it (else the platform's processor string)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    return {
        "cpus": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "cpu_model": cpu_model(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "platform": platform.platform(),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def packages() -> dict[str, Any]:
    """The lock file's and the installed set's fingerprints, and the installed set itself."""
    lock = ROOT / "requirements-dev.lock"
    freeze = subprocess.run(
        [sys.executable, "-m", "pip", "freeze", "--all"], capture_output=True, text=True, check=False
    ).stdout
    return {
        "requirements_dev_lock_sha256": _sha256(lock.read_bytes()) if lock.exists() else None,
        "pip_freeze_sha256": _sha256(freeze.encode()),
        "pip_freeze": freeze.splitlines(),
    }


@dataclass
class Versions:
    """The database's and Redis's versions (Redis None when it cannot say: a cluster answers per node)."""

    database: str
    redis: str | None


def servers(engine: sa.Engine, client: Any) -> Versions:
    """The Redis and database servers' versions."""
    try:
        redis_version = str(client.info("server").get("redis_version"))
    except Exception:  # a cluster answers per node
        redis_version = None
    with engine.connect() as conn:
        query = "SELECT sqlite_version()" if engine.dialect.name == "sqlite" else "SELECT VERSION()"
        database_version = str(conn.scalar(sa.text(query)))
    return Versions(database=f"{engine.dialect.name} {database_version}", redis=redis_version)


def record(run_id: str, started_at: str) -> dict[str, Any]:
    """What every results.json opens with: the run, the code, the machine and the packages it ran on."""
    return {
        "run_id": run_id,
        "started_at": started_at,
        "git_commit": git_commit(),
        "machine": machine(),
        "packages": packages(),
    }


def settings(args: Any) -> dict[str, Any]:
    """Every option of the run as JSON takes it (sets sorted, paths as text)."""
    return {k: sorted(v) if isinstance(v, set) else str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}


def load_config(args: Any, engine: sa.Engine, client: Any, database_cpu: str) -> dict[str, Any]:
    """What results.json records of every run's load and stores, the lab's own or a target's."""
    versions = servers(engine, client)
    return {
        "users": args.users,
        "duration_s": args.duration,
        "quantity": args.quantity,
        "members": args.members,
        "locust_workers": args.locust_workers,
        "spawn_rate": args.spawn_rate,
        "repeat": args.repeat,
        "loadgen_cpus": sorted(args.loadgen_cpus) if args.loadgen_cpus else None,
        "database": engine.dialect.name,
        "database_version": versions.database,
        "redis": f"redis {versions.redis}",
        "database_cpu": database_cpu,
        "settings": settings(args),
    }
