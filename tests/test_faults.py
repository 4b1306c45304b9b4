"""kill -9 of the drain's worker and scheduler, again and again, in the middle of drains during a lua rush."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from flask import Flask

from app.extensions import clients, db
from support.procs import Processes, start_drain, start_service, wait_for
from support.rush import Rush, server_errors, statuses, won
from tests.faults import Ledger, wait_drained, warm_up
from tests.helpers import make_members, new_coupon

QUANTITY = 1500
MEMBERS = 1800
KILLS = 3
BATCH = 2  # rows per drain commit: so small that the drain falls behind the rush and is always busy


@pytest.mark.slow
def test_kill9_worker_and_scheduler_mid_drain_during_a_rush(app: Flask, process_env: dict, tmp_path: Path) -> None:
    env = dict(process_env, ISSUE_STRATEGY="lua", DRAIN_BATCH=str(BATCH))
    ((_, seller), (_, warm)) = make_members(app, 1, role="seller", prefix="seller") + make_members(app, 1, prefix="w")
    members = make_members(app, MEMBERS)
    with app.app_context():
        engine, client = db.engine, clients().state_redis
    kills: list[Ledger] = []
    with Processes() as procs:
        base, drain = start_service(procs, env, tmp_path, drain=True)
        warm_up(base, seller, warm, engine)
        coupon_id = new_coupon(base, seller, quantity=QUANTITY)["id"]
        rush = Rush(base, coupon_id, members, threads=32, pause_s=0.08, keep_going=lambda: len(kills) < KILLS)
        rush.start()
        for n in range(1, KILLS + 1):
            before = len(Ledger.read(engine, client, coupon_id).rows)

            def draining(before: int = before) -> bool:  # the last worker committed, and has more to do
                now = Ledger.read(engine, client, coupon_id)
                return len(now.rows) > before and now.queued >= 5 * BATCH

            wait_for(draining, 60, "a drain under way")
            for proc in drain:
                proc.kill9()
            kills.append(Ledger.read(engine, client, coupon_id))
            drain = start_drain(procs, env, tmp_path, n)
        answers = rush.join()
        wins = won(answers)
        final = wait_drained(engine, client, coupon_id, len(wins), 90)

    print(f"\nkill -9 worker+scheduler x{KILLS}: {len(answers)} requests {statuses(answers)}")
    print("  at the kills (rows, queued, stock): " + "; ".join(f"{len(k.rows), k.queued, k.stock}" for k in kills))
    print(f"  202s {len(wins)}, rows {len(final.rows)}, duplicates {final.duplicates}, queued {final.queued}")
    assert server_errors(answers) == []  # no 5xx, no dropped request
    assert all(k.queued > 0 for k in kills), "a kill landed on an idle worker: nothing was in flight"
    assert sum(k.stock > 0 for k in kills) >= 1, "no kill landed while members were still winning"
    assert len(wins) == len(set(wins)) == min(QUANTITY, MEMBERS)  # no oversell, no undersell, nobody twice
    assert final.duplicates == 0
    assert sorted(final.rows) == sorted(wins)  # every 202 is exactly one row, and nothing else is
    assert final.winners == set(wins) and final.queued == 0 and final.stock == 0
    refusals = Counter(a.error for a in answers if a.status >= 400)
    assert set(refusals) <= {"already_issued", "sold_out"}, refusals
