"""Domain errors with their status and code, and the one JSON shape every error is rendered in."""

from __future__ import annotations

import logging
from collections.abc import Callable

import redis
import sqlalchemy as sa
from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from strategies import Outcome, Unavailable

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error a client can act on; ``status`` and ``code`` go on the wire."""

    status = 400
    code = "invalid_request"
    message = "The request is not valid."

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.message)
        self.message = message or self.message


class InvalidRequest(ApiError):
    status, code = 400, "invalid_request"


class Unauthorized(ApiError):
    status, code, message = 401, "unauthorized", "A valid access token is required."


class BadCredentials(ApiError):
    status, code, message = 401, "bad_credentials", "Wrong username or password."


class Forbidden(ApiError):
    status, code, message = 403, "forbidden", "Your role does not allow this."


class CouponNotFound(ApiError):
    status, code, message = 404, "coupon_not_found", "No such coupon."


class Conflict(ApiError):
    status = 409

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class SoldOut(ApiError):
    status, code, message = 410, "sold_out", "Every coupon of this kind has been given out."


class ServiceUnavailable(ApiError):
    status, code, message = 503, "unavailable", "The service cannot decide right now; try again."


# Factories, not instances: re-raising one shared exception chains every new traceback onto
# its old one, so the object grows with each request (and is shared across threads).
OUTCOME_ERRORS: dict[Outcome, Callable[[], ApiError]] = {
    Outcome.NOT_FOUND: CouponNotFound,
    Outcome.NOT_STARTED: lambda: Conflict("not_started", "The coupon's download window has not opened yet."),
    Outcome.ENDED: lambda: Conflict("ended", "The coupon's download window has closed."),
    Outcome.ALREADY_ISSUED: lambda: Conflict("already_issued", "You already have this coupon."),
    Outcome.SOLD_OUT: SoldOut,
}


def error_response(status: int, code: str, message: str) -> tuple[Response, int]:
    """The one shape of every error on the wire."""
    return jsonify(error=code, message=message), status


def register_error_handlers(app: Flask) -> None:
    """Render domain errors, Flask's HTTP errors and outages as the contract's JSON."""

    @app.errorhandler(ApiError)
    def api_error(exc: ApiError) -> tuple[Response, int]:
        return error_response(exc.status, exc.code, exc.message)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> tuple[Response, int]:
        status = exc.code or 500
        code = {
            400: "invalid_request",
            404: "not_found",
            405: "method_not_allowed",
            413: "payload_too_large",
            415: "invalid_request",
        }.get(status, "http_error")
        response, status = error_response(status, code, exc.description or exc.name)
        # A 405 must name the methods the path does take (RFC 9110); Werkzeug's own page carries it.
        response.headers.extend((k, v) for k, v in exc.get_headers() if k == "Allow")
        return response, status

    @app.errorhandler(Unavailable)
    @app.errorhandler(redis.ConnectionError)
    @app.errorhandler(redis.TimeoutError)
    @app.errorhandler(redis.exceptions.ClusterError)
    @app.errorhandler(sa.exc.OperationalError)
    @app.errorhandler(sa.exc.TimeoutError)
    def outage(exc: Exception) -> tuple[Response, int]:
        log.warning("answering 503: %s: %s", type(exc).__name__, exc)
        return error_response(503, "unavailable", ServiceUnavailable.message)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> tuple[Response, int]:
        log.exception("unexpected error")
        return error_response(500, "internal_error", "Something went wrong on our side.")
