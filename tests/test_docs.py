"""GET /docs: an HTML reference over /openapi.json whose every asset the service serves itself."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient

from app.openapi import document
from support.procs import start_gunicorn

BROWSER_TIMEOUT_S = 90


@pytest.fixture
def base(app: Flask, process_env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    """gunicorn with the production config, one worker."""
    proc, url = start_gunicorn(process_env, tmp_path / "gunicorn.log", 1, 4)
    try:
        yield url
    finally:
        proc.stop()


class Links(HTMLParser):
    """Every URL the page makes the browser load (src, href)."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value for name, value in attrs if name in ("src", "href") and value]


def test_the_page_loads_only_assets_the_service_serves(base: str) -> None:
    page = requests.get(f"{base}/docs", timeout=10)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert not re.search(r"(https?:)?//[a-z0-9]", page.text, re.IGNORECASE)  # no other host, no CDN
    assert '"/openapi.json"' in page.text

    links = Links()
    links.feed(page.text)
    assert links.urls and all(url.startswith("/docs/assets/") for url in links.urls), links.urls
    kinds = {".css": "text/css", ".js": "text/javascript", ".png": "image/png"}
    for url in links.urls:
        asset = requests.get(f"{base}{url}", timeout=10)
        assert asset.status_code == 200 and asset.content, url
        assert asset.headers["Content-Type"].startswith(kinds[Path(url).suffix]), (url, asset.headers)


@pytest.mark.parametrize("path", ["nope.js", "../__init__.py", "..%2f..%2fapp%2fconfig.py", "%2fetc%2fpasswd"])
def test_nothing_outside_the_assets_is_served(client: FlaskClient, path: str) -> None:
    resp = client.get(f"/docs/assets/{path}", follow_redirects=True)  # Werkzeug merges slashes first
    assert (resp.status_code, resp.json["error"]) == (404, "not_found")


def test_a_browser_renders_every_operation(base: str, tmp_path: Path) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    run = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
         f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=15000", "--dump-dom", f"{base}/docs"],
        capture_output=True, text=True, timeout=BROWSER_TIMEOUT_S, check=False,
    )  # fmt: skip
    dom = run.stdout
    assert run.returncode == 0 and "swagger-ui" in dom, run.stderr[-2000:]
    rendered = set(re.findall(r'data-path="([^"]+)"', dom))
    assert rendered == set(document()["paths"]), run.stderr[-2000:]
    assert document()["info"]["title"] in dom
