"""The state commands: ``flask --app wsgi check-state`` and ``rebuild-state`` (the logic: strategies/recovery.py)."""

from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from app import embedded
from app.extensions import clients, db
from app.models import Coupon
from strategies import recovery, state


def check() -> list[int]:
    """Find open coupons without state with the app's clients, record them for /healthz; the ids."""
    return recovery.check(clients().state_redis, db.engine)


@click.command("check-state")
@with_appcontext
def check_state_command() -> None:
    """List open coupons whose Redis state is missing; exit 1 if there are any."""
    with embedded.serving_app(current_app):
        missing = check()
    click.echo(f"{len(missing)} open coupons without Redis state" + (f": {missing}" if missing else ""))
    if missing:
        raise SystemExit(1)


@click.command("rebuild-state")
@click.argument("coupon_ids", nargs=-1, type=int)
@with_appcontext
def rebuild_state_command(coupon_ids: tuple[int, ...]) -> None:
    """Rebuild the Redis state of COUPON_IDS (default: every open coupon missing it) from the database."""
    unknown = [coupon_id for coupon_id in coupon_ids if db.session.get(Coupon, coupon_id) is None]
    if unknown:
        raise click.ClickException(f"no such coupon: {', '.join(map(str, unknown))}; nothing rebuilt")
    with embedded.serving_app(current_app):
        client = clients().state_redis
        targets = list(coupon_ids) or state.missing(client, recovery.open_coupon_ids(client, db.engine))
        for coupon_id in targets:
            done = recovery.rebuild(client, db.engine, coupon_id)
            click.echo(f"coupon {coupon_id}: {'rebuilt' if done else 'left as it was (it has its Redis state)'}")
    if not targets:
        click.echo("every open coupon has its Redis state")


def register_commands(app: Flask) -> None:
    """Attach the state commands (on embedded defaults they start the embedded Redis for their run)."""
    app.cli.add_command(check_state_command)
    app.cli.add_command(rebuild_state_command)
