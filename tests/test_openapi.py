"""GET /openapi.json describes the API as it behaves; schemathesis fuzzes the app against it.

Every operation gets a bounded number of generated requests (valid and invalid), signed in with
the role it needs, and again without a valid token. Any 5xx, any status, header, content type
or body the description does not allow, fails the test.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, settings
from schemathesis import Case

from app.openapi import document
from tests.helpers import bearer, make_members

EXAMPLES = 40  # generated requests per operation and phase: a few seconds each, CI-sized
CONFIG = schemathesis.Config.from_dict(
    {
        "generation": {"mode": "all", "max-examples": EXAMPLES, "database": "none"},
        # The app refuses times outside 1970-01-02..9999-01-01 and an ends_at not after starts_at:
        # rules JSON Schema cannot state, so valid-looking bodies may get a 400 by design.
        "checks": {"positive_data_acceptance": {"enabled": False}},
    }
)
SELLER_ONLY = {
    ("POST", "/coupons"),
    ("GET", "/coupons/{coupon_id}/stats"),
    ("POST", "/coupons/{coupon_id}/close"),
    ("GET", "/sellers/me/coupons"),
}
# Routes served as files, not API operations (Flask's own static folder, Swagger UI's assets).
FILES = {"static", "docs.asset"}
MEMBER_ONLY = {("POST", "/coupons/{coupon_id}/download"), ("GET", "/members/me/coupons")}


@pytest.fixture
def api(app: Flask) -> dict[str, Any]:
    """A seller, a member and a live coupon of that seller; their tokens."""
    ((_, seller_token),) = make_members(app, 1, role="seller", prefix="seller")
    ((_, member_token),) = make_members(app, 1, prefix="member")
    resp = app.test_client().post("/coupons", json={"name": "fuzzed", "quantity": 3}, headers=bearer(seller_token))
    return {"seller": seller_token, "member": member_token, "coupon_id": resp.json["id"]}


# The document is built without an app; test_the_served_description_is_the_document ties the two.
schema = schemathesis.openapi.from_dict(document(), config=CONFIG)


def negated(case: Case) -> set[str]:
    """The parts of the request generated to violate the description ("header", "path", "body", ...)."""
    components = case.meta.components if case.meta else {}
    return {str(location.value) for location, info in components.items() if info.mode.is_negative}


def aim(case: Case, app: Flask, api: dict[str, Any], token: str | None) -> dict[str, str] | None:
    """Send to ``app``; point half the valid coupon ids at the live coupon; the headers to sign in with.

    What a negative case breaks on purpose is left as generated: a path id is not replaced, and
    an Authorization header generated to be wrong is not overridden by a valid token.
    """
    case.operation.schema.app = app  # what from_wsgi sets: checks that probe further need it too
    broken = negated(case)
    coupon_id = (case.path_parameters or {}).get("coupon_id")
    if "path" not in broken and isinstance(coupon_id, int) and coupon_id % 2 == 0:
        case.path_parameters["coupon_id"] = api["coupon_id"]  # type: ignore[index]
    return bearer(token) if token and "header" not in broken else None


def served(app: Flask) -> set[tuple[str, str]]:
    """(method, path) of every API route ``app`` serves, in the description's path syntax."""
    return {
        (method, rule.rule.replace("<id:coupon_id>", "{coupon_id}"))
        for rule in app.url_map.iter_rules()
        if rule.endpoint not in FILES
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }


@schema.parametrize()
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])  # one app for all of an operation's cases
def test_signed_in_requests_conform(app: Flask, case: Case, api: dict[str, Any]) -> None:
    role = "seller" if (case.method.upper(), case.path) in SELLER_ONLY else "member"
    token = api[role] if case.operation.definition.raw.get("security") else None
    case.call_and_validate(headers=aim(case, app, api, token), app=app)


@schema.parametrize()
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_requests_with_no_or_the_wrong_token_conform(app: Flask, case: Case, api: dict[str, Any]) -> None:
    key = (case.method.upper(), case.path)
    wrong = "member" if key in SELLER_ONLY else "seller" if key in MEMBER_ONLY else None
    case.call_and_validate(headers=aim(case, app, api, api[wrong] if wrong else None), app=app)


def test_the_description_covers_every_route(app: Flask) -> None:
    described = {(m.upper(), p) for p, item in document()["paths"].items() for m in item if m != "parameters"}
    assert served(app) == described


def test_the_served_description_is_the_document(client: FlaskClient) -> None:
    resp = client.get("/openapi.json")
    assert resp.status_code == 200 and resp.json == document()


def test_request_bodies_are_the_validation_models() -> None:
    doc = document()
    schemas = doc["components"]["schemas"]
    assert doc["openapi"].startswith("3.1")
    assert schemas["NewCoupon"]["required"] == ["name", "quantity"]
    assert schemas["NewCoupon"]["properties"]["quantity"] == {
        "type": "integer",
        "minimum": 1,
        "maximum": 10_000_000,
        "title": "Quantity",
    }
    assert schemas["Credentials"]["additionalProperties"] is False
    assert doc["components"]["securitySchemes"]["bearer"] == {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    download = doc["paths"]["/coupons/{coupon_id}/download"]["post"]
    assert {"201", "202", "401", "403", "404", "409", "410", "503"} <= set(download["responses"])
    error = doc["components"]["responses"]["E410"]["content"]["application/json"]["schema"]
    assert error == {"$ref": "#/components/schemas/Error"}
    assert schemas["Error"]["required"] == ["error", "message"]


def test_the_new_operations_are_described() -> None:
    doc = document()
    paths = doc["paths"]
    assert {p["name"] for p in paths["/sellers/me/coupons"]["get"]["parameters"]} == {"limit", "cursor"}
    assert set(paths["/coupons/{coupon_id}/close"]["post"]["responses"]) == {"200", "401", "403", "404", "503"}
    assert "429" in paths["/auth/login"]["post"]["responses"]
    assert doc["components"]["responses"]["E429"]["headers"]["Retry-After"]["required"] is True
    assert list(paths["/docs"]["get"]["responses"]["200"]["content"]) == ["text/html"]
    assert list(paths["/metrics"]["get"]["responses"]["200"]["content"]) == ["text/plain; version=0.0.4"]
    health = doc["components"]["schemas"]["Health"]["properties"]
    assert set(health["drain"]["required"]) == {"scheduler_heartbeat_age_s", "oldest_pending_age_s", "pending_winners"}
    assert {"coupons_missing_state", "coupons_missing_state_count"} <= set(health)
    remaining = doc["components"]["schemas"]["SellerCoupon"]["properties"]["remaining"]
    assert {"type": "null"} in remaining["anyOf"]
