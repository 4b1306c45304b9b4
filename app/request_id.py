"""X-Request-ID on every answer: the client's own when it is sane, else a new one; kept for the request's logs."""

from __future__ import annotations

import re
import uuid

from flask import Flask, Response, g, request

HEADER = "X-Request-ID"
# A client's id is echoed into a header and into logs: only a short, plain one (no log injection).
SANE = re.compile(r"[A-Za-z0-9._-]{1,128}")


def init_app(app: Flask) -> None:
    """Give every request an id before anything runs, and every answer its header."""

    @app.before_request
    def assign() -> None:
        sent = request.headers.get(HEADER, "")
        g.request_id = sent if SANE.fullmatch(sent) else uuid.uuid4().hex

    @app.after_request
    def stamp(response: Response) -> Response:
        response.headers[HEADER] = g.get("request_id") or uuid.uuid4().hex
        return response
