"""The API's OpenAPI 3.1 description at ``GET /openapi.json``, request bodies derived from app.validation."""

from __future__ import annotations

from functools import cache
from typing import Any

from flask import Blueprint, Response, jsonify
from pydantic import BaseModel

from app.validation import MAX_QUANTITY, Credentials, NewCoupon

bp = Blueprint("openapi", __name__)

ERRORS = {
    400: "invalid_request: malformed JSON, wrong types, out-of-range values, unknown fields",
    401: "unauthorized (a missing, malformed, forged or expired token) or bad_credentials",
    403: "forbidden: the token's role does not allow this, or not the coupon's seller",
    404: "coupon_not_found, or not_found for a path that is not a coupon id",
    409: "already_issued, not_started, ended or username_taken",
    410: "sold_out",
    413: "payload_too_large: the body exceeds MAX_CONTENT_LENGTH_BYTES",
    503: "unavailable: Redis or the database cannot be reached, or the lock not had in time; the outcome is unknown",
}
SIGNED_IN = (401, 403, 503)


def _obj(required: list[str], **properties: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": properties}


COUNTS = ("quantity", "reserved", "persisted", "pending")
INT, STR, TIME = {"type": "integer"}, {"type": "string"}, {"type": "string", "format": "date-time"}
SCHEMAS: dict[str, Any] = {
    "Error": _obj(["error", "message"], error=STR, message=STR),
    "Member": _obj(["id", "username", "role"], id=INT, username=STR, role={"enum": ["member", "seller"]}),
    "Token": _obj(["access_token"], access_token=STR),
    "Coupon": _obj(
        ["id", "name", "quantity", "remaining", "starts_at", "ends_at"],
        id=INT,
        name=STR,
        quantity={"type": "integer", "minimum": 1, "maximum": MAX_QUANTITY},
        remaining={"type": "integer", "minimum": 0},
        starts_at=TIME,
        ends_at={"anyOf": [TIME, {"type": "null"}]},
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
    ),
}


def body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The JSON Schema pydantic validates ``model`` against, plus what pydantic checks but cannot express.

    Bodies strip surrounding whitespace before their length is checked, so a string must hold
    at least one other character (``pattern``).
    """
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for field in schema["properties"].values():
        if field.get("type") == "string" and field.get("minLength", 0) >= 1:
            field["pattern"] = r"\S"
    return schema


def _json(schema_name: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(schema_name)}}}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


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


COUPON_ID = {"name": "coupon_id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 0}}


def paths() -> dict[str, Any]:
    """Every route the app serves, by path and method."""
    return {
        "/auth/signup": {
            "post": operation(
                "Create a member account", {201: _json("Member", "Created")}, (400, 409, 503), "Credentials", False
            )
        },
        "/auth/login": {
            "post": operation(
                "Exchange a username and password for an access token",
                {200: _json("Token", "An access token")},
                (400, 401, 503),
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
                "Whether Redis and the database answer",
                {200: _json("Health", "Both answer"), 503: _json("Health", "A dependency does not answer")},
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
            "schemas": {**SCHEMAS, "Credentials": body_schema(Credentials), "NewCoupon": body_schema(NewCoupon)},
            "responses": {
                f"E{status}": {"description": text, "content": {"application/json": {"schema": _ref("Error")}}}
                for status, text in ERRORS.items()
            },
        },
    }


@bp.get("/openapi.json")
def openapi() -> Response:
    """The OpenAPI description of this API (no sign-in)."""
    return jsonify(document())
