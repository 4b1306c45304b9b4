"""Coupons: sellers register, read stats and close; members read and download."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from app import issuance, metrics
from app.auth import current_member_id, role_required
from app.errors import outcome_status
from app.validation import NewCoupon, parse

bp = Blueprint("coupons", __name__, url_prefix="/coupons")


@bp.post("")
@role_required("seller")
def create() -> tuple[Response, int]:
    """Register a coupon and load it for issuance."""
    return jsonify(issuance.register_coupon(current_member_id(), parse(NewCoupon))), 201


@bp.get("/<id:coupon_id>")
@role_required("member", "seller")
def show(coupon_id: int) -> Response:
    """A coupon with what remains of it."""
    return jsonify(issuance.coupon_view(coupon_id))


@bp.post("/<id:coupon_id>/download")
@role_required("member")
def download(coupon_id: int) -> tuple[Response, int]:
    """The hot endpoint: 201 issued (lock) or 202 pending (lua); a refusal is its contract error."""
    member_id = current_member_id()
    outcome = issuance.download(coupon_id, member_id)
    metrics.count_download(outcome.value)
    status = outcome_status(outcome)  # a refusal raises here, before a body it would not send is built
    return jsonify(coupon_id=coupon_id, member_id=member_id, status=outcome.value), status


@bp.post("/<id:coupon_id>/close")
@role_required("seller")
def close(coupon_id: int) -> Response:
    """End the coupon's window now (its seller only); closing a closed coupon changes nothing."""
    return jsonify(issuance.close_coupon(coupon_id, current_member_id()))


@bp.get("/<id:coupon_id>/stats")
@role_required("seller")
def stats(coupon_id: int) -> Response:
    """Reserved, persisted and pending counts for the coupon's seller."""
    return jsonify(issuance.coupon_stats(coupon_id, current_member_id()))
