"""Command-line tools: ``flask --app wsgi create-user``."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import with_appcontext

from app.auth import ROLES, create_member
from app.errors import ApiError


@click.command("create-user")
@click.argument("username")
@click.option(
    "--password",
    required=True,
    prompt=True,
    hide_input=True,
    confirmation_prompt=True,
    help="The account's password; asked for, unseen and twice, when not given.",
)
@click.option("--role", type=click.Choice(ROLES), default="member", show_default=True)
@with_appcontext
def create_user(username: str, password: str, role: str) -> None:
    """Create a member or seller account."""
    try:
        member = create_member(username, password, role)
    except ApiError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"created {role} {member.username} (id {member.id})")


def register_commands(app: Flask) -> None:
    """Attach the CLI commands."""
    app.cli.add_command(create_user)
