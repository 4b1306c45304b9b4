"""Lab results written by hand, as results.json holds them, for the tests of the lab's reports and plans."""

from __future__ import annotations

from typing import Any

PASSED_AUDIT = {"ok": True, "rows": 500, "winners": 500, "expected_winners": 500, "distinct_askers": 4100}
CHECKS = ("rows == winners", "winners == min(quantity, distinct askers)", "no member twice", "queue empty")


def make_run(strategy: str, instances: int, tps: float, while_stock: float | None, **extra: Any) -> dict[str, Any]:
    """One run as the lab writes it; a sell-out at 3.5 s and a passing audit unless told otherwise."""
    read = strategy == "read"
    run: dict[str, Any] = {
        "strategy": strategy,
        "instances": instances,
        "duration_s": 10.0,
        "requests": int(tps * 10),
        "tps": tps,
        "tps_while_stock": while_stock,
        "tps_after_sellout": None if read else tps * 1.1,
        "sellout_s": None if read else 3.5,
        "latency_ms": {"mean": 90.0, "p50": 80.0, "p95": 150.0, "p99": 210.0, "max": 350.0},
        "statuses": {"200": int(tps * 10)} if read else {"202": 500, "409": 20, "410": int(tps * 10) - 520},
        "errors": {} if read else {"already_issued": 20, "sold_out": int(tps * 10) - 520},
        "failures": 0,
        "winners": None if read else 500,
        "audit": None if read else {**PASSED_AUDIT, "checks": dict.fromkeys(CHECKS, True)},
        "drain": {"lag_s": 0.21, "rows_per_s": 48000.0} if strategy == "lua" else None,
        "loadgen_cpu_share": 0.41,
        "timeline": [
            {"t": t, "tps": tps, "ok": 50, "refused": tps - 50, "errors": 0, "p50_ms": 80.0} for t in range(10)
        ],
    }
    return {**run, **extra}


def make_results(*runs: dict[str, Any]) -> dict[str, Any]:
    """A results.json document holding ``runs``."""
    return {
        "run_id": "20261124-201500",
        "started_at": "2026-11-24T20:15:00+00:00",
        "git_commit": "a709c2e",
        "machine": {"cpus": 2, "memory_gb": 23.4, "platform": "Linux-6.1-x86_64", "python": "3.11.7"},
        "config": {
            "users": 1600,
            "duration_s": 60,
            "quantity": 5000,
            "locust_workers": 2,
            "web_workers": 2,
            "web_threads": 32,
            "database": "mysql",
            "redis": "redis 7.0.15 (tcp)",
            "spawn_rate": 1600,
        },
        "runs": list(runs),
    }


def costs(api_us: float, redis_us: float, hold_ms: float | None = None) -> dict[str, Any]:
    """Per-tier costs as the lab records them, the same in both phases."""
    phase = {
        "seconds": 3.0,
        "requests": 900,
        "api_us": api_us,
        "redis_us": redis_us,
        "database_us": None,
        "loadgen_us": 300.0,
        "evalsha_us_per_call": 20.0,
    }
    hold = (
        None
        if hold_ms is None
        else {
            "samples": 500,
            "p50_ms": hold_ms,
            "p99_ms": hold_ms * 3,
            "mean_ms": hold_ms,
            "ceiling_tps": 1000 / hold_ms,
        }
    )
    return {"sellout_at_s": 3.5, "stock": phase, "sold_out": dict(phase), "database": "n/a: SQLite", "lock_hold": hold}
