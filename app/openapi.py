"""The API's OpenAPI 3.1 description at ``GET /openapi.json``, request bodies derived from app.validation."""

from __future__ import annotations

from functools import cache
from typing import Any

from flask import Blueprint, Response, jsonify
from pydantic import BaseModel

from app.ids import MAX_ID
from app.validation import MAX_QUANTITY, Credentials, NewAccount, NewCoupon

bp = Blueprint("openapi", __name__)

ERRORS = {
    400: "invalid_request: malformed JSON, wrong types, out-of-range values, unknown fields",
    401: "unauthorized (a missing, malformed, forged or expired token) or bad_credentials",
    403: "forbidden: the token's role does not allow this, or not the coupon's seller",
    404: "coupon_not_found, or not_found for a path that is not a coupon id",
    409: "already_issued, not_started, ended or username_taken",
    410: "sold_out",
    413: "payload_too_large: the body exceeds MAX_CONTENT_LENGTH_BYTES",
    429: "too_many_requests: repeated failed logins; Retry-After says in how many seconds to try again",
    503: "unavailable: Redis or the database cannot be reached, or the lock not had in time; the outcome is unknown",
}
SIGNED_IN = (401, 403, 503)
RETRY_AFTER = {"required": True, "description": "seconds to wait", "schema": {"type": "integer", "minimum": 1}}


def _obj(required: list[str], **properties: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": properties}


COUNTS = ("quantity", "reserved", "persisted", "pending")
INT, STR, TIME = {"type": "integer"}, {"type": "string"}, {"type": "string", "format": "date-time"}
COUNT, AGE_S = {"type": "integer", "minimum": 0}, {"type": ["number", "null"], "minimum": 0}
COUPON_FIELDS: dict[str, Any] = {
    "id": INT,
    "name": STR,
    "quantity": {"type": "integer", "minimum": 1, "maximum": MAX_QUANTITY},
    "remaining": COUNT,
    "starts_at": TIME,
    "ends_at": {"anyOf": [TIME, {"type": "null"}]},
}
SCHEMAS: dict[str, Any] = {
    "Error": _obj(["error", "message"], error=STR, message=STR),
    "Member": _obj(["id", "username", "role"], id=INT, username=STR, role={"enum": ["member", "seller"]}),
    "Token": _obj(["access_token"], access_token=STR),
    "Coupon": _obj(list(COUPON_FIELDS), **COUPON_FIELDS),
    # remaining is null for a coupon whose Redis state is missing (see /healthz and rebuild-state).
    "SellerCoupon": _obj(list(COUPON_FIELDS), **{**COUPON_FIELDS, "remaining": {"anyOf": [COUNT, {"type": "null"}]}}),
    "CouponPage": _obj(
        ["items", "next_cursor"],
        items={"type": "array", "items": {"$ref": "#/components/schemas/SellerCoupon"}},
        next_cursor={"anyOf": [STR, {"type": "null"}], "description": "pass back as cursor; null on the last page"},
    ),
    "Download": _obj(
        ["coupon_id", "member_id", "status"], coupon_id=INT, member_id=INT, status={"enum": ["issued", "pending"]}
    ),
    "MemberCoupon": _obj(
        ["coupon_id", "status", "issued_at"], coupon_id=INT, status={"enum": ["issued", "pending"]}, issued_at=TIME
    ),
    "Stats": _obj(["quantity", "reserved", "persisted", "pending"], **dict.fromkeys(COUNTS, INT)),
    "Health": _obj(
        ["redis", "database"],
        **dict.fromkeys(("redis", "database", "broker"), {"enum": ["ok", "down"]}),
        error={"const": "unavailable"},  # with message, when a dependency is down (503)
        message=STR,
        coupons_missing_state={"type": "array", "items": INT},  # the first ones, when Redis answers
        coupons_missing_state_count=COUNT,
        strategy={"enum": ["lock", "lua"]},  # ISSUE_STRATEGY, for load tests checking what they rush
        drain=_obj(
            ["scheduler_heartbeat_age_s", "oldest_pending_age_s", "pending_winners"],
            scheduler_heartbeat_age_s=AGE_S,
            oldest_pending_age_s=AGE_S,
            pending_winners=COUNT,
        ),
    ),
}


def body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The JSON Schema pydantic validates ``model`` against, plus what pydantic checks but cannot express.

    A string field that pydantic strips of surrounding whitespace before its length is checked
    must hold at least one other character (``pattern``); one kept as typed (a password) need not.
    """
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, field in schema["properties"].items():
        if field.get("type") == "string" and field.get("minLength", 0) >= 1 and _stripped(model, name):
            field["pattern"] = r"\S"
    return schema


def _stripped(model: type[BaseModel], name: str) -> bool:
    """Whether pydantic strips the field's surrounding whitespace: the field's own say, else the model's."""
    info = model.model_fields.get(name)
    for constraint in info.metadata if info is not None else []:
        if getattr(constraint, "strip_whitespace", None) is not None:
            return bool(constraint.strip_whitespace)
    return bool(model.model_config.get("str_strip_whitespace"))


def _json(schema_name: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(schema_name)}}}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _text(media_type: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {media_type: {"schema": STR}}}


def operation(
    summary: str,
    ok: dict[int, dict[str, Any]],
    errors: tuple[int, ...],
    body: str | None = None,
    signed_in: bool = True,
) -> dict[str, Any]:
    """One operation: its successes, its error statuses (all the error shape), body and security."""
    responses: dict[str, Any] = {str(status): response for status, response in ok.items()}
    for status in sorted(set(errors) | ({413} if body else set())):
        responses[str(status)] = {"$ref": f"#/components/responses/E{status}"}
    op: dict[str, Any] = {"summary": summary, "responses": responses}
    if body:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(body)}}}
    op["security"] = [{"bearer": []}] if signed_in else []
    return op


COUPON_ID = {
    "name": "coupon_id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
    "description": "ASCII digits without a leading zero; any other spelling names no coupon",
}
PAGE = [
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}},
    {"name": "cursor", "in": "query", "schema": STR, "description": "the previous page's next_cursor, as it was"},
]


def paths() -> dict[str, Any]:
    """Every route the app serves, by path and method."""
    return {
        "/auth/signup": {
            "post": operation(
                "Create a member account", {201: _json("Member", "Created")}, (400, 409, 503), "NewAccount", False
            )
        },
        "/auth/login": {
            "post": operation(
                "Exchange a username and password for an access token",
                {200: _json("Token", "An access token")},
                (400, 401, 429, 503),
                "Credentials",
                False,
            )
        },
        "/coupons": {
            "post": operation(
                "Register a coupon (seller)", {201: _json("Coupon", "Registered")}, (400, *SIGNED_IN), "NewCoupon"
            )
        },
        "/coupons/{coupon_id}": {
            "parameters": [COUPON_ID],
            "get": operation(
                "A coupon with what remains of it", {200: _json("Coupon", "The coupon")}, (404, *SIGNED_IN)
            ),
        },
        "/coupons/{coupon_id}/download": {
            "parameters": [COUPON_ID],
            "post": operation(
                "Ask for the coupon (member): 201 issued (lock) or 202 pending (lua)",
                {201: _json("Download", "Issued"), 202: _json("Download", "Won; persisted once the queue drains")},
                (404, 409, 410, *SIGNED_IN),
            ),
        },
        "/coupons/{coupon_id}/close": {
            "parameters": [COUPON_ID],
            "post": operation(
                "End the coupon's window now (its seller); idempotent: a closed coupon keeps its ends_at",
                {200: _json("Coupon", "The coupon, ends_at now (or when it closed)")},
                (404, *SIGNED_IN),
            ),
        },
        "/sellers/me/coupons": {
            "get": {
                **operation(
                    "The signed-in seller's coupons, newest first, a page at a time (remaining null: state missing)",
                    {200: _json("CouponPage", "A page; next_cursor null on the last")},
                    (400, *SIGNED_IN),
                ),
                "parameters": PAGE,
            }
        },
        "/coupons/{coupon_id}/stats": {
            "parameters": [COUPON_ID],
            "get": operation(
                "Reserved, persisted and pending counts (the coupon's seller)",
                {200: _json("Stats", "The counts")},
                (404, *SIGNED_IN),
            ),
        },
        "/members/me/coupons": {
            "get": operation(
                "The signed-in member's coupons, issued and pending",
                {
                    200: {
                        "description": "The coupons",
                        "content": {"application/json": {"schema": {"type": "array", "items": _ref("MemberCoupon")}}},
                    }
                },
                SIGNED_IN,
            )
        },
        "/healthz": {
            "get": operation(
                "Whether Redis and the database answer; coupons missing their Redis state; the drain's progress",
                {200: _json("Health", "Both answer"), 503: _json("Health", "A dependency does not answer")},
                (),
                signed_in=False,
            )
        },
        "/metrics": {
            "get": operation(
                "Prometheus metrics: downloads by outcome and request durations (every worker's), and the drain",
                {200: _text("text/plain; version=0.0.4", "Prometheus text exposition format")},
                (),
                signed_in=False,
            )
        },
        "/docs": {
            "get": operation(
                "This reference as an HTML page (Swagger UI over /openapi.json)",
                {200: _text("text/html", "The page")},
                (),
                signed_in=False,
            )
        },
        "/openapi.json": {
            "get": operation(
                "This description",
                {200: {"description": "OpenAPI 3.1", "content": {"application/json": {"schema": {"type": "object"}}}}},
                (),
                signed_in=False,
            )
        },
    }


@cache
def document() -> dict[str, Any]:
    """The whole OpenAPI document (built once per process)."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "coupon-rush",
            "version": "1",
            "description": "First-come-first-served coupon issuance. Every error is {error, message}.",
        },
        "paths": paths(),
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
            "schemas": {
                **SCHEMAS,
                "Credentials": body_schema(Credentials),
                "NewAccount": body_schema(NewAccount),
                "NewCoupon": body_schema(NewCoupon),
            },
            "responses": {
                f"E{status}": {
                    "description": text,
                    "content": {"application/json": {"schema": _ref("Error")}},
                    **({"headers": {"Retry-After": RETRY_AFTER}} if status == 429 else {}),
                }
                for status, text in ERRORS.items()
            },
        },
    }


@bp.get("/openapi.json")
def openapi() -> Response:
    """The OpenAPI description of this API (no sign-in)."""
    return jsonify(document())
