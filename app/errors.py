"""Domain errors with their status and code, and the one JSON shape every error is rendered in."""

from __future__ import annotations

import logging
import math
import time

import redis
import sqlalchemy as sa
from flask import Flask, Response, jsonify, request
from flask_limiter import RateLimitExceeded
from werkzeug.exceptions import HTTPException

from app.ids import UnknownId
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


class Refused(ApiError):
    """A download the strategy refused; its code is the outcome's word."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code = status, code


# The one Outcome -> HTTP table: a success's status, or a refusal's status and message. The
# error code on the wire is the outcome's value. A fresh exception is raised for each refusal:
# re-raising a shared one chains every new traceback onto its old one.
OUTCOME_HTTP: dict[Outcome, tuple[int, str | None]] = {
    Outcome.ISSUED: (201, None),
    Outcome.PENDING: (202, None),
    Outcome.NOT_FOUND: (404, CouponNotFound.message),
    Outcome.NOT_STARTED: (409, "The coupon's download window has not opened yet."),
    Outcome.ENDED: (409, "The coupon's download window has closed."),
    Outcome.ALREADY_ISSUED: (409, "You already have this coupon."),
    Outcome.SOLD_OUT: (410, "Every coupon of this kind has been given out."),
}
# The answer to an outage (Redis, the database or the lock not had in time): the outcome is unknown.
UNAVAILABLE_MESSAGE = "The service cannot decide right now; try again."


def outcome_status(outcome: Outcome) -> int:
    """The HTTP status of a successful outcome; raise the contract's error for a refusal."""
    status, refusal = OUTCOME_HTTP[outcome]
    if refusal is not None:
        raise Refused(status, outcome.value, refusal)
    return status


def error_response(status: int, code: str, message: str) -> tuple[Response, int]:
    """The one shape of every error on the wire."""
    return jsonify(error=code, message=message), status


def register_error_handlers(app: Flask) -> None:
    """Render domain errors, Flask's HTTP errors and outages as the contract's JSON."""

    @app.errorhandler(ApiError)
    def api_error(exc: ApiError) -> tuple[Response, int]:
        return error_response(exc.status, exc.code, exc.message)

    @app.errorhandler(RateLimitExceeded)
    def too_many_requests(exc: RateLimitExceeded) -> tuple[Response, int]:
        from app.extensions import limiter

        response, status = error_response(429, "too_many_requests", "Too many failed logins; try again later.")
        breached = limiter.current_limit  # the limit that refused, with its window's end
        wait_s = math.ceil(breached.reset_at - time.time()) if breached is not None else 60
        response.headers["Retry-After"] = str(max(1, wait_s))
        return response, status

    @app.errorhandler(UnknownId)
    def unknown_id(_exc: UnknownId) -> tuple[Response, int]:
        # The only ids in paths are coupons'.
        return error_response(CouponNotFound.status, CouponNotFound.code, CouponNotFound.message)

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

    # Any Redis error is an outage to the client: unreachable, cluster down, and refusals to write
    # (OOM under noeviction, READONLY after a failover, MISCONF after a failed save). The request's
    # outcome is unknown, so 503, never 500.
    @app.errorhandler(Unavailable)
    @app.errorhandler(redis.RedisError)
    @app.errorhandler(sa.exc.OperationalError)
    @app.errorhandler(sa.exc.TimeoutError)
    def outage(exc: Exception) -> tuple[Response, int]:
        log.warning("answering 503: %s: %s", type(exc).__name__, exc)
        if request.endpoint == "coupons.download":
            from app.metrics import count_download

            count_download("unavailable")
        return error_response(503, "unavailable", UNAVAILABLE_MESSAGE)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> tuple[Response, int]:
        log.exception("unexpected error")
        return error_response(500, "internal_error", "Something went wrong on our side.")
