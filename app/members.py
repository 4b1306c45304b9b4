"""A member's own coupons."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from app import issuance
from app.auth import current_member_id, role_required

bp = Blueprint("members", __name__, url_prefix="/members")


@bp.get("/me/coupons")
@role_required("member")
def my_coupons() -> Response:
    """Issued and pending coupons of the signed-in member."""
    return jsonify(issuance.member_coupons(current_member_id()))
