"""The schema has one definition: the migrations build exactly what strategies/tables.py says."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask import Flask

from app import create_app
from app.extensions import db
from strategies import tables
from tests.helpers import app_config


def test_migrations_and_tables_agree(app: Flask) -> None:
    """Alembic's autogenerate, run against the migrated database, finds nothing to change."""
    with app.app_context(), db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), tables.metadata)
    assert diff == []


def test_sqlite_never_reuses_a_coupon_id(services, tmp_path: Path) -> None:
    """The highest coupon row deleted, the next coupon still gets a new id (its Redis state is another's)."""
    from flask_migrate import upgrade

    app = create_app(app_config(services, SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'ids.sqlite3'}"))
    with app.app_context():
        upgrade()
        with db.engine.begin() as conn:
            conn.execute(sa.insert(tables.member).values(id=1, username="s", password_hash="x", role="seller"))
            first = conn.execute(
                sa.insert(tables.coupon).values(name="a", quantity=1, starts_at=tables.utcnow(), seller_id=1)
            ).inserted_primary_key[0]
            conn.execute(sa.delete(tables.coupon).where(tables.coupon.c.id == first))
            second = conn.execute(
                sa.insert(tables.coupon).values(name="b", quantity=1, starts_at=tables.utcnow(), seller_id=1)
            ).inserted_primary_key[0]
        db.engine.dispose()
    assert second > first
