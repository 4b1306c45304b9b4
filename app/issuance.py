"""The coupon domain: registration, reads, downloads, a member's coupons, a seller's coupons, stats and close."""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa

from app.errors import CouponNotFound, Forbidden, InvalidRequest
from app.extensions import clients, db
from app.models import Coupon, MemberCoupon
from app.validation import NewCoupon
from strategies import Outcome, Unavailable, keys, state
from strategies.clock import epoch_ms, from_epoch_ms, from_epoch_us, iso

log = logging.getLogger(__name__)
REGISTER_TRIES = 2  # the state load is idempotent: a second try settles a lost reply


def register_coupon(seller_id: int, body: NewCoupon) -> dict[str, Any]:
    """Store the coupon, then load its state into Redis.

    The row is committed first and never deleted: Redis never holds a live coupon without a row.
    If loading the state fails (Redis away, or its reply lost), the row stays, the seller gets a
    503, and the coupon shows up as missing its state (``/healthz``, the ``check-state`` command)
    until ``flask rebuild-state`` loads it. The load never overwrites existing state.
    """
    client = clients().state_redis
    starts_at = body.starts_at or from_epoch_ms(state.now_ms(client))
    if body.ends_at is not None and starts_at is not None and body.ends_at <= starts_at:
        raise InvalidRequest("ends_at: must be after starts_at (the window opens now)")
    coupon = Coupon(
        name=body.name, quantity=body.quantity, starts_at=starts_at, ends_at=body.ends_at, seller_id=seller_id
    )
    db.session.add(coupon)
    db.session.commit()
    load_state(client, coupon)
    return coupon_body(coupon, remaining=coupon.quantity)


def load_state(client: Any, coupon: Coupon) -> None:
    """Load ``coupon``'s Redis state unless it has some; retried once; Unavailable if it cannot be."""
    for attempt in range(1, REGISTER_TRIES + 1):
        try:
            state.register(
                client, coupon.id, coupon.name, coupon.quantity, epoch_ms(coupon.starts_at), epoch_ms(coupon.ends_at)
            )
            return
        except Exception as exc:
            log.warning("loading coupon %s into Redis failed (try %s): %s", coupon.id, attempt, exc)
            if attempt == REGISTER_TRIES:
                raise Unavailable(f"coupon {coupon.id} stored, its state not loaded: {exc}") from exc


def coupon_body(coupon: Coupon, remaining: int | None) -> dict[str, Any]:
    """A coupon as the API shows it, from its row (``remaining`` None: Redis has no state for it)."""
    return {
        "id": coupon.id,
        "name": coupon.name,
        "quantity": coupon.quantity,
        "remaining": remaining,
        "starts_at": iso(coupon.starts_at),
        "ends_at": iso(coupon.ends_at),
    }


def coupon_view(coupon_id: int) -> dict[str, Any]:
    """A coupon as members see it, from one Redis read."""
    found = state.read(clients().state_redis, coupon_id)
    if found is None:
        raise _not_found_or_missing(coupon_id)
    return state_body(coupon_id, found)


def state_body(coupon_id: int, found: state.CouponState) -> dict[str, Any]:
    """A coupon as the API shows it, from its Redis state (the times the downloads obey)."""
    return {
        "id": coupon_id,
        "name": found.name,
        "quantity": found.quantity,
        "remaining": max(found.stock, 0),
        "starts_at": iso(from_epoch_ms(found.starts_ms)),
        "ends_at": iso(from_epoch_ms(found.ends_ms)),
    }


def download(coupon_id: int, member_id: int) -> Outcome:
    """Ask the configured strategy; a coupon with a row but no Redis state is an outage, not "not found"."""
    outcome = clients().strategy.issue(coupon_id, member_id)
    if outcome is Outcome.NOT_FOUND:
        raise _not_found_or_missing(coupon_id)
    return outcome


def _not_found_or_missing(coupon_id: int) -> Exception:
    """CouponNotFound, or Unavailable (logged) when the database has the coupon and Redis lost it."""
    if db.session.get(Coupon, coupon_id) is not None:  # the database knows it: Redis lost it
        log.error("coupon %s has a row but no Redis state; see 'flask --app wsgi rebuild-state'", coupon_id)
        return Unavailable(f"coupon {coupon_id} has no Redis state")
    return CouponNotFound()


def member_coupons(member_id: int) -> list[dict[str, Any]]:
    """The member's coupons: persisted rows, and wins still waiting in a queue.

    Redis is read before the database. A winner's queue entry and pending note leave Redis only
    after its row is committed, so a win missing from the first read has its row in the second:
    a winner is always listed, issued or pending. Costs O(this member's coupons).
    """
    pending = _pending(member_id)
    rows = db.session.execute(
        sa.select(MemberCoupon.coupon_id, MemberCoupon.issued_at)
        .where(MemberCoupon.member_id == member_id)
        .order_by(MemberCoupon.issued_at)
    ).all()
    listed = [{"coupon_id": r.coupon_id, "status": "issued", "issued_at": iso(r.issued_at)} for r in rows]
    persisted = {r.coupon_id for r in rows}
    for coupon_id, accepted_us in pending:
        if coupon_id not in persisted:  # a row may be committed a moment before its entry leaves
            listed.append({"coupon_id": coupon_id, "status": "pending", "issued_at": iso(from_epoch_us(accepted_us))})
    return listed


def _pending(member_id: int) -> list[tuple[int, float]]:
    """(coupon, accepted at in epoch us) of the member's wins still in a queue."""
    client = clients().state_redis
    coupon_ids = sorted(int(c) for c in client.smembers(keys.member_pending(member_id)))
    if not coupon_ids:
        return []
    # Not a transaction: the queues sit in many slots; a cluster pipeline runs across slots only without MULTI.
    pipe = client.pipeline(transaction=False)
    for coupon_id in coupon_ids:
        pipe.zscore(keys.queue(coupon_id), member_id)
    return [(c, score) for c, score in zip(coupon_ids, pipe.execute(), strict=True) if score is not None]


def coupon_stats(coupon_id: int, seller_id: int) -> dict[str, int]:
    """Reserved in Redis, persisted in the database, pending in the queue; the owner only.

    A coupon whose Redis state is lost answers 503, as its view does: its counts are unknown.
    """
    coupon = _owned(coupon_id, seller_id, "Only the coupon's seller may read its stats.")
    client = clients().state_redis
    left = state.stock(client, coupon_id)
    if left is None:
        raise _not_found_or_missing(coupon_id)
    reserved = coupon.quantity - max(left, 0)
    persisted = (
        db.session.scalar(
            sa.select(sa.func.count()).select_from(MemberCoupon).where(MemberCoupon.coupon_id == coupon_id)
        )
        or 0
    )
    pending = int(client.zcard(keys.queue(coupon_id)))
    return {"quantity": coupon.quantity, "reserved": reserved, "persisted": persisted, "pending": pending}


def _owned(coupon_id: int, seller_id: int, refusal: str) -> Coupon:
    """The coupon's row; CouponNotFound, or Forbidden with ``refusal`` if another seller owns it."""
    coupon = db.session.get(Coupon, coupon_id)
    if coupon is None:
        raise CouponNotFound()
    if coupon.seller_id != seller_id:
        raise Forbidden(refusal)
    return coupon


def close_coupon(coupon_id: int, seller_id: int) -> dict[str, Any]:
    """End the coupon's window now (its seller only); idempotent, and never later than it ends already.

    Redis decides first (lua/close.lua): downloads obey its time at once, winners before it keep
    their units and are persisted as usual. The row then takes the same time, so a state rebuilt
    from it stays closed. If that write fails the seller gets a 503; a retry writes the time the
    first close chose.
    """
    coupon = _owned(coupon_id, seller_id, "Only the coupon's seller may close it.")
    client = clients().state_redis
    found = state.read(client, coupon_id) if state.close(client, coupon_id) is not None else None
    if found is None:
        raise _not_found_or_missing(coupon_id)
    # The column keeps whole seconds: truncate rather than let MySQL round up, so a window
    # rebuilt from the row never ends later than the close.
    coupon.ends_at = from_epoch_us(found.ends_ms * 1000).replace(microsecond=0)
    coupon.starts_at = min(coupon.starts_at, coupon.ends_at)  # closed before it opened: an empty window
    db.session.commit()
    return state_body(coupon_id, found)


def seller_coupons(seller_id: int, limit: int, before_id: int | None) -> tuple[list[dict[str, Any]], int | None]:
    """A page of the seller's coupons, newest first, with ids below ``before_id``; the id to go on from, or None.

    Keyset pagination on the id (ids only grow and are never reused): a page costs one range read
    of the seller_id index (InnoDB and SQLite append the primary key to it) however deep it is,
    and coupons registered meanwhile never shift later pages. One pipelined Redis read gives the
    live state; a coupon Redis has no state for shows its row with ``remaining`` None.
    """
    query = sa.select(Coupon).where(Coupon.seller_id == seller_id)
    if before_id is not None:
        query = query.where(Coupon.id < before_id)
    rows = list(db.session.scalars(query.order_by(Coupon.id.desc()).limit(limit + 1)))
    page = rows[:limit]
    found = state.read_many(clients().state_redis, [c.id for c in page]) if page else []
    items = [
        state_body(c.id, s) if s is not None else coupon_body(c, remaining=None)
        for c, s in zip(page, found, strict=True)
    ]
    return items, page[-1].id if len(rows) > limit else None
