"""Sellers serve themselves: their own coupons, a page at a time."""

from __future__ import annotations

import re
from collections.abc import Callable

from flask import Blueprint, Response, jsonify, request

from app import ids, issuance
from app.auth import current_member_id, role_required
from app.errors import InvalidRequest

bp = Blueprint("sellers", __name__, url_prefix="/sellers")

DEFAULT_LIMIT, MAX_LIMIT = 20, 100  # coupons a page
LIMIT = re.compile(r"[0-9]{1,3}")


@bp.get("/me/coupons")
@role_required("seller")
def my_coupons() -> Response:
    """The signed-in seller's coupons, newest first, with live ``remaining``; ``next_cursor`` None at the end."""
    limit, before_id = page_args()
    items, last_id = issuance.seller_coupons(current_member_id(), limit, before_id)
    return jsonify(items=items, next_cursor=None if last_id is None else str(last_id))


def page_args() -> tuple[int, int | None]:
    """``limit`` (1..100, default 20) and the cursor's coupon id, from the query; InvalidRequest otherwise."""
    limit = _arg("limit", LIMIT.fullmatch, f"limit: must be an integer in 1..{MAX_LIMIT}")
    cursor = _arg("cursor", ids.parse, "cursor: must be the next_cursor of a previous page")
    if limit is not None and not 1 <= limit <= MAX_LIMIT:
        raise InvalidRequest(f"limit: must be an integer in 1..{MAX_LIMIT}")
    return limit or DEFAULT_LIMIT, cursor


def _arg(name: str, form: Callable[[str], object], refusal: str) -> int | None:
    """The query parameter ``name`` as an integer, if given once and of ``form``; None if absent."""
    values = request.args.getlist(name)
    if not values:
        return None
    if len(values) > 1 or not form(values[0]):
        raise InvalidRequest(f"{refusal}, given once")
    return int(values[0])
