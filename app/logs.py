"""Logging for every process of the service: one line a record, text or JSON, the request id on each.

``configure(process)`` is called by the worker, the scheduler, the launcher and the lab;
gunicorn.conf.py passes ``config(process)`` as its ``logconfig_dict``, so the API's own lines and
its access log look the same. LOG_FORMAT=json writes one JSON object a line (python-json-logger).
"""

from __future__ import annotations

import logging
import logging.config
import os
import re
from collections.abc import Mapping
from typing import Any

from flask import g, has_request_context

QUIET = {"alembic": "WARNING", "rq.worker": "WARNING", "redis_lock": "ERROR"}  # redis_lock: every refused acquire


# gunicorn's atom for the answer's X-Request-ID header (gunicorn.conf.py prints it on each access line).
ACCESS_ID = "{x-request-id}o"


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` to every record: the request's (app.request_id), "-" outside a request.

    gunicorn writes its access line after the request's context is gone; its id comes from the
    answer's header, which gunicorn hands over among the line's atoms (the record's args).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Always keep the record; only annotate it."""
        if has_request_context():
            record.request_id = g.get("request_id", "-")
        elif record.name == "gunicorn.access" and isinstance(record.args, Mapping):
            record.request_id = record.args.get(ACCESS_ID) or "-"
        else:
            record.request_id = "-"
        return True


# C0 and C1 controls, DEL, and the line and paragraph separators: whatever a reader of the log could
# take for the end of a line or a terminal's command.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return _NAMED.get(char) or (f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}")


class LineFormatter(logging.Formatter):
    """Text logs: one line a record, its control characters escaped wherever they came from.

    A username with a newline reaches the log through other people's messages (the limiter names
    the key it refused); escaping the finished line covers every field and a traceback alike.
    """

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line."""
        return _CONTROL.sub(_escape, super().format(record))


def config(process: str, log_format: str | None = None, access_log: str | None = None) -> dict[str, Any]:
    """A dictConfig for ``process``: INFO for the service, quieter for chatty libraries.

    ``access_log`` (gunicorn's ACCESS_LOG: a path, or "-" for standard output, as gunicorn has it) gets
    gunicorn's access lines in the same format; without it they are not written.
    """
    log_format = log_format or os.environ.get("LOG_FORMAT") or "text"
    if log_format == "json":
        formatter: dict[str, Any] = {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
            "static_fields": {"process": process},
        }
    else:
        formatter = {
            "()": LineFormatter,
            "fmt": f"%(asctime)s {process} %(levelname)s %(name)s [%(request_id)s]: %(message)s",
        }
    line = {"formatter": "line", "filters": ["request_id"]}
    access: dict[str, Any] = (
        {"class": "logging.FileHandler", "filename": access_log}
        if access_log and access_log != "-"
        else {"class": "logging.StreamHandler", "stream": "ext://sys.stdout"}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": RequestIdFilter}},
        "formatters": {"line": formatter},
        "handlers": {
            "stderr": {"class": "logging.StreamHandler", **line},
            "access": {**access, **line},
        },
        "root": {"level": "INFO", "handlers": ["stderr"]},
        "loggers": {
            **{name: {"level": level} for name, level in QUIET.items()},
            # gunicorn's own loggers: the same handler, not their own as well.
            "gunicorn.error": {"level": "INFO", "handlers": ["stderr"], "propagate": False},
            "gunicorn.access": {"level": "INFO", "handlers": ["access"] if access_log else [], "propagate": False},
        },
    }


def configure(process: str) -> None:
    """Set up logging for this process (text, or JSON with LOG_FORMAT=json)."""
    logging.config.dictConfig(config(process))
