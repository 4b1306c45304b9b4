"""No long-running process keeps a database transaction open while idle (MariaDB): a migration's DDL never waits."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa
from flask import Flask

from support.procs import Processes, start_drain, start_gunicorn, wait_for
from tests import services as svc
from tests.helpers import bearer, make_members

IDLE_S = 2
DDL_LOCK_WAIT_S = 5


@pytest.fixture
def server(services: svc.Services) -> Iterator[sa.Engine]:
    """A connection to the suite's MariaDB database, outside every process under test."""
    url = sa.engine.make_url(services.database_url)
    if url.get_backend_name() not in ("mysql", "mariadb"):
        pytest.skip("information_schema.innodb_trx and metadata locks are MariaDB's")
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool, isolation_level="AUTOCOMMIT")
    yield engine
    engine.dispose()


def idle_transactions(engine: sa.Engine) -> list[dict]:
    """Open transactions of this database's other connections that are idle (no statement running)."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT t.trx_mysql_thread_id AS id, t.trx_state AS state, t.trx_started AS started,"
                " p.command, p.time AS idle_s, p.info"
                " FROM information_schema.innodb_trx t"
                " JOIN information_schema.processlist p ON p.id = t.trx_mysql_thread_id"
                " WHERE p.db = DATABASE() AND p.id <> CONNECTION_ID() AND p.command = 'Sleep'"
            )
        )
        return [dict(row._mapping) for row in rows]


def run_ddl(engine: sa.Engine) -> None:
    """What a migration does during a release: ALTER each table, with a short wait for its metadata lock."""
    with engine.connect() as conn:
        conn.execute(sa.text(f"SET SESSION lock_wait_timeout = {DDL_LOCK_WAIT_S}"))
        for table in ("member", "coupon", "member_coupon"):
            conn.execute(sa.text(f"ALTER TABLE {table} ADD COLUMN idle_probe INT NULL"))
            conn.execute(sa.text(f"ALTER TABLE {table} DROP COLUMN idle_probe"))


def test_api_worker_and_scheduler_hold_no_transaction_while_idle(
    app: Flask, process_env: dict[str, str], server: sa.Engine, tmp_path: Path
) -> None:
    ((_, seller),) = make_members(app, 1, role="seller", prefix="shop")
    with Processes() as procs:
        api, base = start_gunicorn(process_env, tmp_path / "gunicorn.log", workers=1, threads=4)
        procs.add(api)
        start_drain(procs, process_env, tmp_path)
        # Every kind of work each process does: sign-up, log-in, registration, downloads, reads, the drain.
        assert requests.post(f"{base}/auth/signup", json={"username": "ann", "password": "pw"}).status_code == 201
        token = requests.post(f"{base}/auth/login", json={"username": "ann", "password": "pw"}).json()["access_token"]
        coupon = requests.post(f"{base}/coupons", json={"name": "c", "quantity": 5}, headers=bearer(seller)).json()
        assert requests.post(f"{base}/coupons/{coupon['id']}/download", headers=bearer(token)).status_code == 202
        for _, member in make_members(app, 3):
            assert requests.post(f"{base}/coupons/{coupon['id']}/download", headers=bearer(member)).status_code == 202

        def drained() -> bool:
            stats = requests.get(f"{base}/coupons/{coupon['id']}/stats", headers=bearer(seller)).json()
            return stats["persisted"] == 4

        wait_for(drained, 30, "the drain to persist the 4 winners")
        assert requests.get(f"{base}/members/me/coupons", headers=bearer(token)).status_code == 200
        assert requests.get(f"{base}/healthz").status_code == 200

        # Idle: nothing asked of any process for a while (the scenario itself, not a wait for a
        # condition). No connection of theirs may sit in a transaction.
        time.sleep(IDLE_S)
        idle = idle_transactions(server)
        try:
            run_ddl(server)  # "Lock wait timeout exceeded" if any process holds a table's metadata lock
            ddl_error = None
        except sa.exc.OperationalError as exc:
            ddl_error = exc
        assert (idle, ddl_error) == ([], None)
        for proc in procs._all:
            assert proc.popen.poll() is None, proc.output()[-2000:]  # type: ignore[attr-defined]
