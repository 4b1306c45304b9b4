"""Coupons whose Redis state is missing: found at start, reported, rebuilt from the database on request.

Redis holds every open coupon's stock and winners. A Redis that lost its data (a failover
without persistence, a flushed instance) leaves coupons with a row and no state. The scheduler
checks at its start and records what it finds; ``/healthz`` reports it; downloads of such a
coupon answer 503, never "not found"; ``flask --app wsgi rebuild-state`` restores them.

A rebuild sets stock = quantity - rows and the winners to the members with a row. It cannot
restore winners whose 202 was accepted but whose row was never written (they waited in the lost
queue): their units return to stock. Safe to run at any time: it never touches a coupon that has
state, and a coupon it rebuilds had none, so no download could be using it.
"""

from __future__ import annotations

import logging

import click
import sqlalchemy as sa
from flask import Flask, current_app
from flask.cli import with_appcontext

from app import embedded
from app.extensions import clients, db
from app.models import Coupon, MemberCoupon
from strategies import keys, state
from strategies.clock import epoch_ms, from_epoch_ms

log = logging.getLogger(__name__)


def open_coupon_ids() -> list[int]:
    """Coupons whose window has not ended (by Redis's clock): the ones Redis must know."""
    now = from_epoch_ms(state.now_ms(clients().state_redis))
    query = sa.select(Coupon.id).where(sa.or_(Coupon.ends_at.is_(None), Coupon.ends_at > now)).order_by(Coupon.id)
    return list(db.session.scalars(query))


def check() -> list[int]:
    """Find open coupons without state, record them for /healthz, log them; the ids."""
    client = clients().state_redis
    missing = state.missing(client, open_coupon_ids())
    pipe = client.pipeline(transaction=False)
    pipe.delete(keys.MISSING_STATE)
    if missing:
        pipe.sadd(keys.MISSING_STATE, *missing)
    pipe.execute()
    if missing:
        log.error(
            "%s open coupons have no Redis state (Redis lost its data?): %s; "
            "restore them with 'flask --app wsgi rebuild-state'",
            len(missing),
            missing[:20],
        )
    return missing


def reported() -> list[int]:
    """What the last check recorded and no rebuild has restored since."""
    return sorted(int(c) for c in clients().state_redis.smembers(keys.MISSING_STATE))


def has_row(coupon_id: int) -> bool:
    """Whether the database knows the coupon (for a coupon Redis does not know)."""
    return db.session.get(Coupon, coupon_id) is not None


def rebuild(coupon_id: int) -> bool:
    """Restore one coupon's state from its row and its issued rows; False if it has state or no row."""
    coupon = db.session.get(Coupon, coupon_id)
    if coupon is None:
        return False
    winners = list(db.session.scalars(sa.select(MemberCoupon.member_id).where(MemberCoupon.coupon_id == coupon_id)))
    client = clients().state_redis
    restored = state.restore(
        client, coupon_id, coupon.name, coupon.quantity, epoch_ms(coupon.starts_at), epoch_ms(coupon.ends_at), winners
    )
    client.srem(keys.MISSING_STATE, coupon_id)
    return restored


@click.command("check-state")
@with_appcontext
def check_state_command() -> None:
    """List open coupons whose Redis state is missing; exit 1 if there are any."""
    with embedded.serving(current_app.instance_path):
        missing = check()
    click.echo(f"{len(missing)} open coupons without Redis state" + (f": {missing}" if missing else ""))
    if missing:
        raise SystemExit(1)


@click.command("rebuild-state")
@click.argument("coupon_ids", nargs=-1, type=int)
@with_appcontext
def rebuild_state_command(coupon_ids: tuple[int, ...]) -> None:
    """Rebuild the Redis state of COUPON_IDS (default: every open coupon missing it) from the database."""
    unknown = [coupon_id for coupon_id in coupon_ids if not has_row(coupon_id)]
    if unknown:
        raise click.ClickException(f"no such coupon: {', '.join(map(str, unknown))}; nothing rebuilt")
    with embedded.serving(current_app.instance_path):
        targets = list(coupon_ids) or state.missing(clients().state_redis, open_coupon_ids())
        for coupon_id in targets:
            done = rebuild(coupon_id)
            click.echo(f"coupon {coupon_id}: {'rebuilt' if done else 'left as it was (it has its Redis state)'}")
    if not targets:
        click.echo("every open coupon has its Redis state")


def register_commands(app: Flask) -> None:
    """Attach the state commands (on embedded defaults they start the embedded Redis for their run)."""
    app.cli.add_command(check_state_command)
    app.cli.add_command(rebuild_state_command)
