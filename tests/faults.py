"""What the fault tests read and do through the service: a coupon's ledger on both sides, a warm-up.

The servers they kill and restart, and the rush they drive, are in support/.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
import requests
import sqlalchemy as sa

from strategies import keys
from support.mariadb import MariaDB, MissingBinary
from support.procs import wait_for
from tests.helpers import bearer, new_coupon, rows_of


def private_mariadb(folder: Path) -> MariaDB:
    """A mariadbd of the test's own; a skip if none is installed, a failure where services are required."""
    try:
        return MariaDB(folder)
    except MissingBinary as exc:
        if os.environ.get("COUPON_RUSH_REQUIRE_SERVICES") == "1":
            pytest.fail(str(exc))
        pytest.skip(str(exc))


@dataclass(frozen=True)
class Ledger:
    """A coupon's state on both sides: rows in the database; winners, queue and stock in Redis."""

    rows: list[int]  # member ids, one per member_coupon row (duplicates would show twice)
    winners: set[int]
    queued: int
    stock: int

    @classmethod
    def read(cls, engine: sa.Engine, client: redis.Redis, coupon_id: int) -> Ledger:
        """Read both sides now."""
        return cls(
            rows=rows_of(engine, coupon_id),
            winners={int(m) for m in client.smembers(keys.winners(coupon_id))},
            queued=int(client.zcard(keys.queue(coupon_id))),
            stock=int(client.hget(keys.coupon(coupon_id), "stock") or 0),
        )

    @property
    def duplicates(self) -> int:
        """Rows beyond one per member."""
        return len(self.rows) - len(set(self.rows))


def warm_up(base: str, seller_token: str, member_token: str, engine: sa.Engine) -> None:
    """One winner of a coupon of its own persisted: the API, the worker and the scheduler all run."""
    coupon_id = new_coupon(base, seller_token, name="warm-up", quantity=1)["id"]
    resp = requests.post(f"{base}/coupons/{coupon_id}/download", headers=bearer(member_token), timeout=10)
    assert resp.status_code == 202, resp.text
    wait_for(lambda: rows_of(engine, coupon_id), 60, "the drain's worker and scheduler to persist a first winner")


def wait_drained(engine: sa.Engine, client: redis.Redis, coupon_id: int, rows: int, timeout_s: float) -> Ledger:
    """Wait for at least ``rows`` rows and an empty queue; the ledger then."""

    def done() -> Ledger | None:
        now = Ledger.read(engine, client, coupon_id)
        return now if len(now.rows) >= rows and now.queued == 0 else None

    return wait_for(done, timeout_s, f"the drain to persist {rows} winners")  # type: ignore[return-value]
