"""``GET /docs``: an HTML API reference over ``/openapi.json``, its Swagger UI assets served from a pip package."""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path

from flask import Blueprint, Response, render_template, send_from_directory

bp = Blueprint("docs", __name__, url_prefix="/docs")


@cache
def assets_dir() -> Path:
    """Swagger UI's dist files as the flask-swagger-ui package ships them (no CDN: the page works offline)."""
    spec = importlib.util.find_spec("flask_swagger_ui")  # its files only: nothing of it is imported
    if spec is None or spec.origin is None:
        raise RuntimeError("flask-swagger-ui is not installed: pip install -r requirements.txt")
    return Path(spec.origin).resolve().parent / "dist"


@bp.get("")
def page() -> str:
    """The reference page: Swagger UI pointed at this service's /openapi.json."""
    return render_template("docs.html")


@bp.get("/assets/<path:filename>")
def asset(filename: str) -> Response:
    """One of Swagger UI's files (send_from_directory refuses paths outside the folder: 404)."""
    return send_from_directory(assets_dir(), filename)
