"""Ids in paths have one spelling: ASCII digits, no leading zero, at most 2**63 - 1; any other is a 404, never a 500."""

from __future__ import annotations

from urllib.parse import quote

import pytest
import sqlalchemy as sa
from flask import Flask, url_for
from flask.testing import FlaskClient

from app import ids
from app.extensions import db
from app.models import MemberCoupon
from tests.helpers import assert_error, bearer, make_members

NOT_IDS = ["0", "9223372036854775808", "9" * 30, "00"]  # digits that spell no id: past 2**63 - 1, or zero
ARABIC_INDIC, FULL_WIDTH = 0x0660, 0xFF10  # where each script's digit zero is


def aliases(coupon_id: int) -> list[str]:
    """Spellings a reader of numbers (Python's int(), Werkzeug's int converter) takes for ``coupon_id``."""
    text = str(coupon_id)
    arabic = "".join(chr(ARABIC_INDIC + int(d)) for d in text)
    wide = "".join(chr(FULL_WIDTH + int(d)) for d in text)
    return [
        *(quote(s) for s in (arabic, wide)),
        arabic,
        wide,
        f"000{text}",
        f"0{text}",
        f"%2B{text}",
        f"{text}%20",
        f"%20{text}",
        f"{text}.0",
        hex(coupon_id),
        f"{text[0]}_{text[1:]}" if len(text) > 1 else f"{text}_",
    ]


@pytest.mark.parametrize("strategy", ["lock", "lua"])
def test_aliases_of_an_id_name_no_coupon(app: Flask, client: FlaskClient, seller: tuple[int, str]) -> None:
    ((_, member_token),) = make_members(app, 1)
    created = [
        client.post("/coupons", json={"name": "c", "quantity": 5}, headers=bearer(seller[1])).json["id"]
        for _ in range(3)
    ]
    for coupon_id in created:
        for alias in aliases(coupon_id):
            for method, path, token in [
                ("GET", f"/coupons/{alias}", member_token),
                ("POST", f"/coupons/{alias}/download", member_token),
                ("GET", f"/coupons/{alias}/stats", seller[1]),
                ("POST", f"/coupons/{alias}/close", seller[1]),
            ]:
                resp = client.open(path, method=method, headers=bearer(token))
                assert resp.status_code == 404, (path, resp.status_code, resp.data[:200])
                assert resp.json["error"] in ("coupon_not_found", "not_found"), (path, resp.json)
    # Nothing happened to the coupons: none closed, nothing downloaded.
    for coupon_id in created:
        shown = client.get(f"/coupons/{coupon_id}", headers=bearer(member_token)).json
        assert (shown.get("ends_at", "?"), shown.get("remaining")) == (None, 5), shown
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(MemberCoupon)) == 0
    # The one spelling still works.
    assert client.post(f"/coupons/{created[0]}/download", headers=bearer(member_token)).status_code in (201, 202)


@pytest.mark.parametrize("spelling", ["000{}", "0{}", *NOT_IDS])
def test_digits_that_spell_no_id_are_coupon_not_found(app: Flask, client: FlaskClient, spelling: str) -> None:
    ((_, token),) = make_members(app, 1, role="seller", prefix="seller")
    coupon_id = client.post("/coupons", json={"name": "c", "quantity": 5}, headers=bearer(token)).json["id"]
    spelled = spelling.format(coupon_id)
    for method, path in [("GET", f"/coupons/{spelled}"), ("POST", f"/coupons/{spelled}/close")]:
        assert_error(client.open(path, method=method, headers=bearer(token)), 404, "coupon_not_found")
    assert client.get(f"/coupons/{coupon_id}", headers=bearer(token)).json["ends_at"] is None


def test_other_characters_match_no_route(client: FlaskClient, seller: tuple[int, str]) -> None:
    coupon_id = client.post("/coupons", json={"name": "c", "quantity": 5}, headers=bearer(seller[1])).json["id"]
    for spelling in [*aliases(coupon_id)[:4], f"-{coupon_id}", "abc", f"{coupon_id}.0"]:
        assert_error(client.get(f"/coupons/{spelling}", headers=bearer(seller[1])), 404, "not_found")


def test_the_largest_id_is_an_id(client: FlaskClient, seller: tuple[int, str]) -> None:
    largest = str(2**63 - 1)
    assert ids.parse(largest) == 2**63 - 1 and ids.parse(str(2**63)) is None
    assert_error(client.get(f"/coupons/{largest}", headers=bearer(seller[1])), 404, "coupon_not_found")


@pytest.mark.parametrize("text", ["1", "42", str(2**63 - 1)])
def test_parse_reads_each_id_in_its_one_spelling(text: str) -> None:
    assert ids.parse(text) == int(text) and str(ids.parse(text)) == text


@pytest.mark.parametrize("text", ["", *aliases(3), *aliases(1234), *NOT_IDS, "1\n", " 1"])
def test_parse_refuses_every_other_spelling(text: str) -> None:
    assert ids.parse(text) is None


def test_the_converter_writes_the_one_spelling(app: Flask) -> None:
    with app.test_request_context():
        assert url_for("coupons.show", coupon_id=7) == "/coupons/7"
