"""Usernames: which names an account may take, and one account per name whatever its spelling, on both databases."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from app import create_app
from app.extensions import clients, db
from app.models import Member
from tests import services as svc
from tests.helpers import app_config, assert_error, make_members

# Spellings MariaDB's utf8mb4_unicode_ci takes for "alice": accent, full-width, zero-width, control.
ALIASES = ["alicé", "ａｌｉｃｅ", "ali\u200bce", "alice\x01"]


def signup(client: FlaskClient, username: str, password: str = "pw-alice"):  # noqa: ANN201
    return client.post("/auth/signup", json={"username": username, "password": password})


def login(client: FlaskClient, username: str, password: str = "pw-alice"):  # noqa: ANN201
    return client.post("/auth/login", json={"username": username, "password": password})


@pytest.fixture
def sqlite_app(services: svc.Services, tmp_path: Path) -> Iterator[Flask]:
    """An app on a fresh, migrated SQLite file (the embedded default's database), on the suite's Redis."""
    from flask_migrate import upgrade

    app = create_app(app_config(services, SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'names.sqlite3'}"))
    with app.app_context():
        upgrade()
        clients().broker.flushdb()
    yield app
    with app.app_context():
        clients().broker.flushdb()
        db.engine.dispose()


@pytest.mark.parametrize(
    "username",
    [*ALIASES, "al", "a" * 33, "o'neil", "bob smith", "김민지", "😀", "ali\nce", "abc\u0663"],
)
def test_signup_refuses_names_outside_the_rule(client: FlaskClient, username: str) -> None:
    assert_error(signup(client, username), 400, "invalid_request")


@pytest.mark.parametrize("username", ["Zed", "a.b_c-d", "A" * 32, "0-9"])
def test_signup_takes_ascii_letters_digits_dot_underscore_dash(client: FlaskClient, username: str) -> None:
    resp = signup(client, username)
    assert resp.status_code == 201 and resp.json["username"] == username, resp.data


@pytest.mark.parametrize("database", ["suite", "sqlite"])
def test_a_name_differing_only_in_case_is_taken(request: pytest.FixtureRequest, database: str) -> None:
    app: Flask = request.getfixturevalue("app" if database == "suite" else "sqlite_app")
    client = app.test_client()
    assert signup(client, "Zed").status_code == 201
    for other in ("zed", "ZED", "zEd"):
        assert_error(signup(client, other), 409, "username_taken")
    # The account answers to its name in any case, on either database.
    assert login(client, "zed").status_code == 200
    assert login(client, "ZED").status_code == 200
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Member)) == 1


def test_the_cli_applies_the_same_rule(app: Flask) -> None:
    runner = app.test_cli_runner()
    done = runner.invoke(args=["create-user", "alicé", "--password", "pw", "--role", "seller"])
    assert done.exit_code != 0 and "ASCII" in done.output, done.output
    assert runner.invoke(args=["create-user", "Alice", "--password", "pw", "--role", "seller"]).exit_code == 0
    done = runner.invoke(args=["create-user", "alice", "--password", "pw", "--role", "seller"])
    assert done.exit_code != 0 and "taken" in done.output, done.output


def test_other_spellings_of_a_name_are_nobody(app: Flask, client: FlaskClient) -> None:
    """On MariaDB the collation finds alice under each alias; none of them logs in as alice."""
    assert signup(client, "alice").status_code == 201
    for alias in ALIASES:
        assert_error(login(client, alias), 401, "bad_credentials")
    assert login(client, "ALICE").status_code == 200


@pytest.fixture
def limited(services: svc.Services, migrated: None) -> Iterator[Flask]:
    """An app allowing 3 failed logins per account a minute (and many per address)."""
    config = app_config(services, LOGIN_FAILURES_PER_USERNAME="3 per minute", LOGIN_FAILURES_PER_ADDRESS="1000/minute")
    app = create_app(config)
    with app.app_context():
        svc.reset(db.engine, clients().broker)
    yield app
    with app.app_context():
        clients().broker.flushdb()
        db.engine.dispose()


def test_failures_count_against_the_account_whatever_the_spelling(limited: Flask) -> None:
    client = limited.test_client()
    assert signup(client, "alice").status_code == 201
    for spelling in ("alice", "ALICE", "Alice"):
        assert_error(login(client, spelling, "wrong"), 401, "bad_credentials")
    # The account's budget is spent: every spelling waits, the right password too.
    for spelling in ("aLiCe", *ALIASES):
        assert login(client, spelling).status_code in (401, 429)
        assert login(client, spelling).status_code != 200
    assert_error(login(client, "alice"), 429, "too_many_requests")


def test_unknown_names_count_by_their_case_folded_form(limited: Flask) -> None:
    client = limited.test_client()
    for spelling in ("nobody", "NOBODY", "NoBody"):
        assert_error(login(client, spelling, "wrong"), 401, "bad_credentials")
    assert_error(login(client, "nObOdY", "wrong"), 429, "too_many_requests")
    assert_error(login(client, "somebody", "wrong"), 401, "bad_credentials")


def test_accounts_made_before_the_rule_still_log_in(app: Flask, client: FlaskClient) -> None:
    """Names outside the rule that exist already keep working, typed as stored (case aside)."""
    for name in ("김민지", "Élise", "m0"):
        make_members(app, 1, prefix=name)  # name + "0", stored as the old rule allowed
        assert login(client, f"{name}0", "password").status_code == 200, name
    with app.app_context():
        sqlite = db.engine.dialect.name == "sqlite"
    # SQLite's lower() folds ASCII letters only: there a legacy non-ASCII name is typed with its own case.
    assert login(client, "élise0", "password").status_code == (401 if sqlite else 200)
    assert_error(login(client, "elise0", "password"), 401, "bad_credentials")
    assert_error(login(client, "Elise0", "password"), 401, "bad_credentials")


def test_sqlite_accounts_that_differ_only_in_case_each_answer_to_their_own_name(sqlite_app: Flask) -> None:
    """Made before the rule, two such accounts may exist on SQLite: each typed exactly is found, ZED is nobody."""
    with sqlite_app.app_context():
        zed, big_zed = (create_member_row(name, password) for name, password in (("zed", "pw-1"), ("Zed", "pw-2")))
    client = sqlite_app.test_client()
    assert login(client, "zed", "pw-1").status_code == 200
    assert login(client, "Zed", "pw-2").status_code == 200
    assert_error(login(client, "ZED", "pw-1"), 401, "bad_credentials")
    assert zed != big_zed


def create_member_row(username: str, password: str) -> int:
    """An account stored directly, as the old rule let it be."""
    from werkzeug.security import generate_password_hash

    db.session.execute(
        sa.insert(Member).values(username=username, password_hash=generate_password_hash(password), role="member")
    )
    db.session.commit()
    return int(db.session.scalar(sa.select(Member.id).where(Member.username == username)) or 0)
