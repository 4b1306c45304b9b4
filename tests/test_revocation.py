"""Revocation in one process: the operator commands, the view's refresh, log-ins, and the token's claims."""

from __future__ import annotations

import time
from pathlib import Path

import jwt
import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from app import create_app, revocation_view, revocations
from app.errors import Unauthorized
from app.extensions import clients, db
from app.models import Member, Revocation
from app.revocation_view import RevocationView, current_view
from tests.helpers import TEST_SECRET, app_config, assert_error, bearer, make_members


def cli(app: Flask, *args: str, input: str | None = None) -> tuple[int, str]:
    """Run ``flask --app wsgi <args>`` in process: exit code and output."""
    result = app.test_cli_runner().invoke(args=list(args), input=input)
    return result.exit_code, result.output


def refreshed(app: Flask) -> RevocationView:
    """This process's view, brought up to date now (a test need not wait for the refresher)."""
    with app.app_context():
        view = current_view()
        view.refresh()
        return view


def login(client: FlaskClient, username: str, password: str = "password") -> str:
    resp = client.post("/auth/login", json={"username": username, "password": password})
    assert resp.status_code == 200, resp.data
    return str(resp.json["access_token"])


def test_ban_refuses_every_token_and_log_in_until_unbanned(app: Flask, client: FlaskClient) -> None:
    ((member_id, token),) = make_members(app, 1)
    assert client.get("/members/me/coupons", headers=bearer(token)).status_code == 200
    assert cli(app, "ban", "m0")[0] == 0
    refreshed(app)
    assert_error(client.get("/members/me/coupons", headers=bearer(token)), 401, "unauthorized")
    assert_error(client.post("/coupons/1/download", headers=bearer(token)), 401, "unauthorized")
    # As a wrong password does: counted by the log-in limiter, and no oracle of the ban.
    assert_error(client.post("/auth/login", json={"username": "m0", "password": "password"}), 401, "bad_credentials")
    with app.app_context():
        row = db.session.get(Revocation, member_id)
        assert row is not None and row.status == revocations.BANNED
    code, out = cli(app, "unban", "m0")
    assert code == 0 and "unbanned" in out
    refreshed(app)
    assert_error(client.get("/members/me/coupons", headers=bearer(token)), 401, "unauthorized")  # before the ban
    fresh = login(client, "m0")
    assert client.get("/members/me/coupons", headers=bearer(fresh)).status_code == 200
    assert cli(app, "unban", "m0") == (0, "m0 was not banned\n")


@pytest.mark.parametrize("command", ["ban", "unban", "delete-user", "set-password"])
def test_an_unknown_username_fails_clearly(app: Flask, command: str) -> None:
    code, out = cli(app, command, "nobody", input="pw\npw\n")
    assert code != 0 and "no member is named 'nobody'" in out


def test_set_role_refuses_the_old_tokens_and_the_new_role_applies(
    app: Flask, client: FlaskClient, seller: tuple[int, str]
) -> None:
    _, token = seller
    assert client.post("/coupons", json={"name": "a", "quantity": 1}, headers=bearer(token)).status_code == 201
    assert cli(app, "set-role", "seller0", "seller")[1] == "seller0 is a seller already: nothing changed\n"
    assert cli(app, "set-role", "seller0", "member")[0] == 0
    refreshed(app)
    assert_error(client.post("/coupons", json={"name": "b", "quantity": 1}, headers=bearer(token)), 401, "unauthorized")
    member_token = login(client, "seller0")  # signed once this clock passed revoked_at: valid at once
    assert_error(
        client.post("/coupons", json={"name": "b", "quantity": 1}, headers=bearer(member_token)), 403, "forbidden"
    )
    assert client.get("/members/me/coupons", headers=bearer(member_token)).status_code == 200


def test_set_password_prompts_twice_and_refuses_the_old_tokens(app: Flask, client: FlaskClient) -> None:
    (_, token), _ = make_members(app, 2)
    code, out = cli(app, "set-password", "m0", input="new-secret\nnew-secret\n")
    assert code == 0 and "new-secret" not in out
    refreshed(app)
    assert_error(client.get("/members/me/coupons", headers=bearer(token)), 401, "unauthorized")
    assert_error(client.post("/auth/login", json={"username": "m0", "password": "password"}), 401, "bad_credentials")
    assert client.get("/members/me/coupons", headers=bearer(login(client, "m0", "new-secret"))).status_code == 200
    code, out = cli(app, "set-password", "m1", input="one\ntwo\none\none\n")  # a mismatch is asked again
    assert code == 0 and "do not match" in out


def test_delete_user_refuses_its_tokens_and_keeps_a_sellers_coupons(
    app: Flask, client: FlaskClient, seller: tuple[int, str]
) -> None:
    ((member_id, token),) = make_members(app, 1)
    assert client.post("/coupons", json={"name": "a", "quantity": 1}, headers=bearer(seller[1])).status_code == 201
    code, out = cli(app, "delete-user", "seller0")
    assert code != 0 and "ban the account instead" in out
    assert cli(app, "delete-user", "m0")[0] == 0
    refreshed(app)
    assert_error(client.get("/members/me/coupons", headers=bearer(token)), 401, "unauthorized")
    with app.app_context():
        assert db.session.get(Member, member_id) is None
    signup = client.post("/auth/signup", json={"username": "newcomer", "password": "pw"})
    assert signup.status_code == 201 and signup.json["id"] > member_id  # never the old id


def test_sqlite_never_reuses_a_member_id(services, tmp_path: Path) -> None:
    """The highest member deleted, the next sign-up still gets a new id (the old id's tokens are refused)."""
    from flask_migrate import upgrade

    app = create_app(app_config(services, SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'ids.sqlite3'}"))
    with app.app_context():
        upgrade()
        clients().broker.flushdb()
    client = app.test_client()
    first = client.post("/auth/signup", json={"username": "alpha", "password": "pw"}).json["id"]
    assert cli(app, "delete-user", "alpha")[0] == 0
    second = client.post("/auth/signup", json={"username": "bravo", "password": "pw"}).json["id"]
    with app.app_context():
        clients().broker.flushdb()
        db.engine.dispose()
    assert second > first


def test_the_view_reads_only_what_changed_and_reloads_whole_after_a_rebuild(app: Flask) -> None:
    members = make_members(app, 3)
    view = revocation_view.build(app)  # a view of the test's own: no refresher thread races it
    view.refresh()
    with app.app_context():
        client = clients().broker
        revocations.ban(client, "m0")
        assert view.refresh() == 1  # one entry read, not every one
        assert view.refresh() == 0
        revocations.ban(client, "m1")
        assert view.refresh() == 1
        client.flushdb()  # Redis lost the entries: the next refresh rebuilds them from the rows
        assert view.refresh() == 2
    for member_id, _ in members[:2]:
        with pytest.raises(Unauthorized):
            view.check(member_id, time.time())
    view.check(members[2][0], time.time())


def test_a_command_on_an_emptied_redis_rebuilds_every_entry_first(app: Flask) -> None:
    make_members(app, 2)
    with app.app_context():
        client = clients().broker
        revocations.ban(client, "m0")
        client.flushdb()
        revocations.ban(client, "m1")
        assert sorted(client.hgetall(revocations.ENTRIES)) == sorted(
            str(m).encode() for m in db.session.scalars(sa.select(Revocation.member_id))
        )
        assert len(client.hgetall(revocations.ENTRIES)) == 2


def test_a_view_not_refreshed_for_5_s_answers_503_until_it_is(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    ((_, token),) = make_members(app, 1)
    view = refreshed(app)
    assert client.get("/members/me/coupons", headers=bearer(token)).status_code == 200
    now = time.monotonic()
    monkeypatch.setattr(revocation_view.time, "monotonic", lambda: now + revocation_view.STALE_S + 1)
    assert_error(client.get("/members/me/coupons", headers=bearer(token)), 503, "unavailable")  # Redis is up
    view.refresh()
    assert client.get("/members/me/coupons", headers=bearer(token)).status_code == 200


def test_a_failing_refresher_logs_and_recovers(app: Flask, caplog: pytest.LogCaptureFixture) -> None:
    view = refreshed(app)
    owner = app.extensions["revocation_view"]
    broken = RevocationView(lambda g, s: [], lambda: None)
    owner.tick(broken)  # Redis answers "not loaded" even after a rebuild: logged, not raised
    assert "cannot refresh the revocations" in caplog.text
    owner.tick(view)
    assert "refreshed again" in caplog.text


def _signed(**claims: object) -> str:
    now = int(time.time())
    base = {"sub": "7", "role": "member", "type": "access", "iat": now, "exp": now + 60}
    return jwt.encode({k: v for k, v in {**base, **claims}.items() if v is not None}, TEST_SECRET)


@pytest.mark.parametrize(
    "claims",
    [
        {"sub": "\u0663"},  # an Arabic-Indic digit: int() takes it, a member id is ASCII
        {"sub": "007"},
        {"sub": "0"},
        {"sub": "-7"},
        {"exp": str(int(time.time()) + 60)},  # PyJWT takes digits in a string
        {"iat": str(int(time.time()))},
        {"iat": None},
        {"exp": True},
    ],
)
def test_claims_that_are_not_what_they_say_answer_401_every_time(client: FlaskClient, claims: dict) -> None:
    token = _signed(**claims)
    for _ in range(2):  # the second use would come from the cache
        assert_error(client.get("/members/me/coupons", headers=bearer(token)), 401, "unauthorized")


def test_a_workers_start_loads_the_view_and_an_error_app_is_left_alone(app: Flask) -> None:
    revocation_view.start(object())  # gunicorn's error app, when the import failed: no view, no failure
    revocation_view.start(app)
    with app.app_context():
        assert current_view().age_s < revocation_view.STALE_S


def test_a_stopped_view_ends_its_refresher_and_the_next_use_starts_another(app: Flask) -> None:
    """Stopped, the refresher ends within a tick, so none outlives the app's Redis (say, an embedded one)."""
    import threading

    def refreshers() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name == "revocations" and t.is_alive()]

    before = set(refreshers())
    revocation_view.start(app)
    (mine,) = set(refreshers()) - before
    app.extensions["revocation_view"].stop()
    mine.join(timeout=revocation_view.REFRESH_S * 3)
    assert not mine.is_alive()
    with app.app_context():
        assert current_view().age_s < revocation_view.STALE_S  # started again on use
    (again,) = set(refreshers()) - before
    revocation_view.stop_all()  # as the suite does before its embedded Redis stops
    again.join(timeout=revocation_view.REFRESH_S * 3)
    assert not again.is_alive()


def test_recording_gives_up_when_redis_keeps_losing_the_entries(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    make_members(app, 1)
    monkeypatch.setattr(revocations, "restore", lambda client, found: False)  # a rebuild that never lands
    with app.app_context():
        clients().broker.flushdb()
        with pytest.raises(RuntimeError, match="could not be recorded"):
            revocations.ban(clients().broker, "m0")
