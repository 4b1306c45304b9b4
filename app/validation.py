"""Request bodies: parsed strictly (no type coercion) into pydantic models."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, TypeVar

from flask import request
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StringConstraints,
    ValidationError,
    model_validator,
)

from app.errors import InvalidRequest
from strategies.clock import naive_utc

MAX_QUANTITY = 10_000_000
Model = TypeVar("Model", bound=BaseModel)


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


UtcTime = Annotated[datetime, AfterValidator(_to_naive_utc)]


class Body(BaseModel):
    """Strict: a string is never a number, unknown fields are refused."""

    model_config = ConfigDict(strict=True, extra="forbid", str_strip_whitespace=True)


class Credentials(Body):
    """Sign-up and log-in: the username loses surrounding spaces, the password is kept as typed."""

    username: str = Field(min_length=1, max_length=64)
    password: Annotated[str, StringConstraints(strip_whitespace=False)] = Field(min_length=1, max_length=128)


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
        return model.model_validate_json(request.get_data(cache=True) or b"")
    except ValidationError as exc:
        raise InvalidRequest(_describe(exc)) from None


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False)[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)
