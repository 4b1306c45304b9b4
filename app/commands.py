"""Command-line tools: ``flask --app wsgi create-user``, and the commands that end a member's access.

``ban``, ``unban``, ``delete-user``, ``set-role`` and ``set-password`` commit their change in the
database and record it in Redis (app/revocations.py); every API process refuses the member's older
tokens within two seconds of the command's return. On embedded defaults they start the embedded
Redis for their run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from app import embedded, revocations
from app.auth import ROLES, create_member
from app.errors import ApiError
from app.extensions import clients

_PASSWORD = {
    "prompt": True,
    "hide_input": True,
    "confirmation_prompt": True,
    "help": "The account's password; asked for, unseen and twice, when not given.",
}


@click.command("create-user")
@click.argument("username")
@click.option("--password", required=True, **_PASSWORD)  # type: ignore[arg-type]
@click.option("--role", type=click.Choice(ROLES), default="member", show_default=True)
@with_appcontext
def create_user(username: str, password: str, role: str) -> None:
    """Create a member or seller account."""
    try:
        member = create_member(username, password, role)
    except ApiError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"created {role} {member.username} (id {member.id})")


@contextmanager
def _broker() -> Iterator[Any]:
    """The broker Redis (started for the run on embedded defaults); a clear failure for an unknown member."""
    with embedded.serving_app(current_app):
        try:
            yield clients().broker
        except (revocations.UnknownMember, revocations.CannotDelete) as exc:
            raise click.ClickException(str(exc)) from None


def _done(what: str, row: revocations.Revocation) -> None:
    click.echo(f"{what}: tokens issued up to {row.revoked_at} (epoch seconds) are refused within 2 s")


@click.command("ban")
@click.argument("username")
@with_appcontext
def ban_command(username: str) -> None:
    """Ban a member: every token refused, log-ins refused, until unbanned."""
    with _broker() as client:
        _done(f"banned {username}", revocations.ban(client, username))


@click.command("unban")
@click.argument("username")
@with_appcontext
def unban_command(username: str) -> None:
    """Let a banned member log in again (tokens from before the ban stay refused)."""
    with _broker() as client:
        row = revocations.unban(client, username)
    click.echo(f"unbanned {username}: it may log in again" if row else f"{username} was not banned")


@click.command("delete-user")
@click.argument("username")
@with_appcontext
def delete_user_command(username: str) -> None:
    """Delete an account; its tokens are refused and its id is never given again."""
    with _broker() as client:
        _done(f"deleted {username}", revocations.delete(client, username))


@click.command("set-role")
@click.argument("username")
@click.argument("role", type=click.Choice(ROLES))
@with_appcontext
def set_role_command(username: str, role: str) -> None:
    """Change an account's role; its tokens (carrying the old role) are refused."""
    with _broker() as client:
        row = revocations.set_role(client, username, role)
    if row is None:
        click.echo(f"{username} is a {role} already: nothing changed")
    else:
        _done(f"{username} is now a {role}", row)


@click.command("set-password")
@click.argument("username")
@click.password_option(help=_PASSWORD["help"])
@with_appcontext
def set_password_command(username: str, password: str) -> None:
    """Change an account's password (asked for, unseen and twice); its tokens are refused."""
    with _broker() as client:
        _done(f"new password for {username}", revocations.set_password(client, username, password))


COMMANDS: list[Callable[..., Any]] = [
    create_user,
    ban_command,
    unban_command,
    delete_user_command,
    set_role_command,
    set_password_command,
]


def register_commands(app: Flask) -> None:
    """Attach the CLI commands."""
    for command in COMMANDS:
        app.cli.add_command(command)  # type: ignore[arg-type]
