"""The coupon domain: registration, reads, downloads, a member's coupons, a seller's stats."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from app.errors import OUTCOME_ERRORS, CouponNotFound, Forbidden
from app.extensions import clients, db
from app.models import Coupon, MemberCoupon, utcnow
from app.validation import NewCoupon
from strategies import Outcome, keys, state

log = logging.getLogger(__name__)
MAX_ID = 2**63 - 1


def iso(value: datetime | None) -> str | None:
    """A stored naive-UTC time as ISO 8601 with its zone."""
    return None if value is None else value.replace(tzinfo=UTC).isoformat()


def epoch_ms(value: datetime | None) -> int:
    """A naive-UTC time as epoch milliseconds; 0 for none."""
    return 0 if value is None else int(value.replace(tzinfo=UTC).timestamp() * 1000)


def from_epoch_ms(value: int) -> datetime | None:
    """Epoch milliseconds as a naive-UTC time; None for 0."""
    return datetime.fromtimestamp(value / 1000, UTC).replace(tzinfo=None) if value else None


def register_coupon(seller_id: int, body: NewCoupon) -> dict[str, Any]:
    """Store the coupon, then load its state into Redis; undo the row if Redis refuses."""
    coupon = Coupon(
        name=body.name,
        quantity=body.quantity,
        starts_at=body.starts_at or utcnow(),
        ends_at=body.ends_at,
        seller_id=seller_id,
    )
    db.session.add(coupon)
    db.session.commit()
    try:
        state.register(
            clients().issuance,
            coupon.id,
            coupon.name,
            coupon.quantity,
            epoch_ms(coupon.starts_at),
            epoch_ms(coupon.ends_at),
        )
    except Exception:
        db.session.delete(coupon)
        db.session.commit()
        raise
    return {
        "id": coupon.id,
        "name": coupon.name,
        "quantity": coupon.quantity,
        "remaining": coupon.quantity,
        "starts_at": iso(coupon.starts_at),
        "ends_at": iso(coupon.ends_at),
    }


def coupon_view(coupon_id: int) -> dict[str, Any]:
    """A coupon as members see it, from one Redis read."""
    found = state.read(clients().issuance, coupon_id) if coupon_id <= MAX_ID else None
    if found is None:
        raise CouponNotFound()
    return {
        "id": coupon_id,
        "name": found.name,
        "quantity": found.quantity,
        "remaining": max(found.stock, 0),
        "starts_at": iso(from_epoch_ms(found.starts_ms)),
        "ends_at": iso(from_epoch_ms(found.ends_ms)),
    }


def download(coupon_id: int, member_id: int) -> Outcome:
    """Ask the configured strategy; every refusal becomes its contract error."""
    outcome = clients().strategy.issue(coupon_id, member_id) if coupon_id <= MAX_ID else Outcome.NOT_FOUND
    if outcome in OUTCOME_ERRORS:
        raise OUTCOME_ERRORS[outcome]()
    return outcome


def member_coupons(member_id: int) -> list[dict[str, Any]]:
    """The member's persisted coupons, then the ones won and still waiting in a queue."""
    rows = db.session.execute(
        sa.select(MemberCoupon.coupon_id, MemberCoupon.issued_at)
        .where(MemberCoupon.member_id == member_id)
        .order_by(MemberCoupon.issued_at)
    ).all()
    listed = [{"coupon_id": r.coupon_id, "status": "issued", "issued_at": iso(r.issued_at)} for r in rows]
    persisted = {r.coupon_id for r in rows}
    for coupon_id, accepted_us in _pending(member_id):
        if coupon_id not in persisted:  # a row may be committed a moment before its entry leaves
            accepted = datetime.fromtimestamp(accepted_us / 1e6, UTC)
            listed.append({"coupon_id": coupon_id, "status": "pending", "issued_at": accepted.isoformat()})
    return listed


def _pending(member_id: int) -> list[tuple[int, float]]:
    client = clients().issuance
    coupon_ids = sorted(int(c) for c in client.smembers(keys.REGISTRY))
    if not coupon_ids:
        return []
    # Not a transaction: the queues sit in many slots, and a cluster pipeline runs across slots
    # only without MULTI (one round trip per node); transaction=True fails with CrossSlotTransactionError.
    pipe = client.pipeline(transaction=False)
    for coupon_id in coupon_ids:
        pipe.zscore(keys.queue(coupon_id), member_id)
    return [(c, score) for c, score in zip(coupon_ids, pipe.execute(), strict=True) if score is not None]


def coupon_stats(coupon_id: int, seller_id: int) -> dict[str, int]:
    """Reserved in Redis, persisted in the database, pending in the queue; the owner only."""
    coupon = db.session.get(Coupon, coupon_id) if coupon_id <= MAX_ID else None
    if coupon is None:
        raise CouponNotFound()
    if coupon.seller_id != seller_id:
        raise Forbidden("Only the coupon's seller may read its stats.")
    client = clients().issuance
    found = state.read(client, coupon_id)
    reserved = coupon.quantity - max(found.stock, 0) if found else 0
    persisted = (
        db.session.scalar(
            sa.select(sa.func.count()).select_from(MemberCoupon).where(MemberCoupon.coupon_id == coupon_id)
        )
        or 0
    )
    pending = int(client.zcard(keys.queue(coupon_id)))
    return {"quantity": coupon.quantity, "reserved": reserved, "persisted": persisted, "pending": pending}
