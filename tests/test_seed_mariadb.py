"""The lab's seed on MariaDB (CSV files through LOAD DATA LOCAL INFILE), on a private mariadbd on any run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from app import create_app
from app.extensions import db
from experiments.data import seed as seeding
from support.mariadb import MariaDB
from tests import services as svc
from tests.faults import private_mariadb
from tests.helpers import app_config


@pytest.fixture
def mariadb_engine(services: svc.Services, tmp_path: Path) -> Iterator[sa.Engine]:
    """A migrated database on a mariadbd of the test's own (the run's database may be SQLite)."""
    from flask_migrate import upgrade

    server: MariaDB = private_mariadb(tmp_path / "mariadb").install().start()
    try:
        server.create_database("coupon_rush_seed")
        url = server.url("coupon_rush_seed")
        app = create_app(app_config(services, SQLALCHEMY_DATABASE_URI=url))
        with app.app_context():
            upgrade()
            db.engine.dispose()
        engine = sa.create_engine(url)
        yield engine
        engine.dispose()
    finally:
        server.stop()


def test_seed_loads_files_and_a_rerun_fills_only_the_gaps(mariadb_engine: sa.Engine) -> None:
    first = seeding.seed(mariadb_engine, 50, 7, 120, chunk_rows=40)  # several files a table
    assert (first["member"], first["coupon"], first["member_coupon"]) == (51, 7, 120)  # the seller too
    with mariadb_engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM member_coupon WHERE id IN (5, 100)"))
        assert conn.scalar(sa.text("SELECT @@local_infile")) == 1  # the path under test: LOAD DATA
    again = seeding.seed(mariadb_engine, 50, 7, 120, chunk_rows=40)
    assert (again["member"], again["coupon"], again["member_coupon"]) == (0, 0, 2)
    with mariadb_engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT member_id, coupon_id FROM member_coupon ORDER BY id")).all()
    assert len(rows) == len(set(rows)) == 120
