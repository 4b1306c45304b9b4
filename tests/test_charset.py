"""Non-ASCII text on a database whose default character set is latin1: the migrations make it utf8mb4."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa
from flask import Flask

from app import create_app
from support.procs import start_gunicorn
from tests import services as svc
from tests.helpers import app_config, bearer


@pytest.fixture
def latin1_database(services: svc.Services) -> Iterator[str]:
    """A fresh database created with CHARACTER SET latin1 beside the suite's; its URL."""
    url = sa.engine.make_url(services.database_url)
    if url.get_backend_name() not in ("mysql", "mariadb"):
        pytest.skip("a MySQL/MariaDB matter: SQLite stores UTF-8")
    latin1 = url.set(database=f"{url.database}_latin1")
    server = sa.create_engine(url.set(database=None), poolclass=sa.pool.NullPool)
    with server.begin() as conn:
        conn.execute(sa.text(f"DROP DATABASE IF EXISTS {latin1.database}"))
        conn.execute(sa.text(f"CREATE DATABASE {latin1.database} CHARACTER SET latin1 COLLATE latin1_swedish_ci"))
    yield latin1.render_as_string(hide_password=False)
    with server.begin() as conn:
        conn.execute(sa.text(f"DROP DATABASE IF EXISTS {latin1.database}"))
    server.dispose()


def test_hangul_and_emoji_on_a_latin1_database(
    app: Flask, services: svc.Services, process_env: dict[str, str], latin1_database: str, tmp_path: Path
) -> None:
    from flask_migrate import upgrade

    migrated = create_app(app_config(services, SQLALCHEMY_DATABASE_URI=latin1_database))
    with migrated.app_context():
        upgrade()
        engine = migrated.extensions["sqlalchemy"].engine
        with engine.connect() as conn:
            charsets = conn.execute(
                sa.text(
                    "SELECT table_name, table_collation FROM information_schema.tables WHERE table_schema = DATABASE()"
                    " AND table_name IN ('member', 'coupon', 'member_coupon')"
                )
            ).all()
        engine.dispose()
    assert sorted(collation for _, collation in charsets) == ["utf8mb4_unicode_ci"] * 3

    proc, base = start_gunicorn(dict(process_env, DATABASE_URL=latin1_database), tmp_path / "gunicorn.log", 1, 4)
    try:
        name = "minji"  # usernames are ASCII (docs/api.md); the password and the coupon's name are not
        signup = requests.post(f"{base}/auth/signup", json={"username": name, "password": "비밀번호🔑"}, timeout=10)
        assert signup.status_code == 201 and signup.json()["username"] == name, signup.text
        login = requests.post(f"{base}/auth/login", json={"username": name, "password": "비밀번호🔑"}, timeout=10)
        assert login.status_code == 200, login.text
        with migrated.app_context():
            engine = migrated.extensions["sqlalchemy"].engine
            with engine.begin() as conn:
                conn.execute(sa.text("UPDATE member SET role = 'seller' WHERE username = :n"), {"n": name})
            engine.dispose()
        token = requests.post(f"{base}/auth/login", json={"username": name, "password": "비밀번호🔑"}).json()
        coupon = requests.post(
            f"{base}/coupons", json={"name": "🎉 봄 세일 🌸", "quantity": 3}, headers=bearer(token["access_token"])
        )
        assert coupon.status_code == 201 and coupon.json()["name"] == "🎉 봄 세일 🌸", coupon.text
    finally:
        proc.stop()
