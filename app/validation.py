"""Request bodies: parsed strictly (no type coercion) into pydantic models."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, TypeVar

from flask import current_app, request
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    StringConstraints,
    ValidationError,
    model_validator,
)
from werkzeug.exceptions import RequestEntityTooLarge

from app.errors import InvalidRequest
from strategies.clock import naive_utc

MAX_QUANTITY = 10_000_000
Model = TypeVar("Model", bound=BaseModel)
# A new account's name: ASCII letters, digits, '.', '_' and '-', compared without case (docs/api.md).
# Nothing else, so that no two names a person can tell apart are one account to the database's
# collation (which equates accents, full-width forms, ignorable and control characters).
USERNAME = re.compile(r"[A-Za-z0-9._-]{3,32}")
# ISO 8601 date and time, ASCII digits only: a date alone, epoch seconds or other digits are refused.
ISO_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?(Z|[+-][0-9]{2}(:?[0-9]{2})?)?"
)


def _to_naive_utc(value: datetime) -> datetime:
    """Zone-aware times are converted to UTC; naive ones are taken as UTC; a time out of range is refused.

    Fractions of a second are cut: the coupon table keeps whole seconds on MariaDB, so the row, the
    Redis state and every answer show the same time on any database.
    """
    try:
        value = naive_utc(value)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+23:00 has no UTC time
        raise ValueError("time out of range") from None
    if not datetime(1970, 1, 2) <= value <= datetime(9999, 1, 1):
        raise ValueError("time out of range")
    return value.replace(microsecond=0)


def _iso_8601(value: Any) -> Any:
    """An ISO 8601 string as a datetime (pydantic's own parser also takes "1796520000" as epoch seconds)."""
    if not isinstance(value, str):
        return value  # the strict datetime check refuses it
    if not ISO_TIME.fullmatch(value):
        raise ValueError("must be an ISO 8601 date and time, e.g. 2030-01-01T09:00:00Z")
    return datetime.fromisoformat(value)


UtcTime = Annotated[datetime, BeforeValidator(_iso_8601), AfterValidator(_to_naive_utc)]


class Body(BaseModel):
    """Strict: a string is never a number, unknown fields are refused."""

    model_config = ConfigDict(strict=True, extra="forbid", str_strip_whitespace=True)


class Credentials(Body):
    """Log-in: the username loses surrounding spaces, the password is kept as typed.

    Any name an account may hold is taken here, those made before the rule of USERNAME included.
    """

    username: str = Field(min_length=1, max_length=64)
    password: Annotated[str, StringConstraints(strip_whitespace=False)] = Field(min_length=1, max_length=128)


class NewAccount(Credentials):
    """Sign-up: the username follows USERNAME."""

    username: str = Field(pattern=f"^{USERNAME.pattern}$")


class NewCoupon(Body):
    """A coupon a seller registers."""

    name: str = Field(min_length=1, max_length=100)
    quantity: StrictInt = Field(ge=1, le=MAX_QUANTITY)
    starts_at: UtcTime | None = None
    ends_at: UtcTime | None = None

    @model_validator(mode="after")
    def _window(self) -> NewCoupon:
        # Without starts_at the window opens at registration, by Redis's clock: app/issuance checks that.
        if self.starts_at is not None and self.ends_at is not None and self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self


def parse(model: type[Model]) -> Model:
    """The request's JSON body as ``model``, or a 400 that says which field is wrong and why."""
    try:
        return model.model_validate_json(body())
    except ValidationError as exc:
        raise InvalidRequest(_describe(exc)) from None


def body() -> bytes:
    """The request's body; 413 past MAX_CONTENT_LENGTH, whether its length was announced or it came chunked.

    Werkzeug stops reading a chunked body at the limit and hands over what it read: a body that
    fills the limit is refused if one more byte follows it (the server's stream ends the body).
    """
    data = request.get_data(cache=True)
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    if request.content_length is None and limit is not None and len(data) >= limit:
        if request.environ["wsgi.input"].read(1):
            raise RequestEntityTooLarge()
    return data


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False)[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)
