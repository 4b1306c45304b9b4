"""deploy/nginx.conf: it parses, and every answer through it is the contract's JSON, its own errors included."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from flask import Flask

from support.procs import Proc, free_port, start_gunicorn, wait_for
from tests.helpers import ROOT, bearer, serves

NGINX = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
pytestmark = pytest.mark.skipif(NGINX is None, reason="nginx is not installed (Debian package nginx)")


def render(folder: Path, upstream_port: int, listen_port: int) -> Path:
    """The compose config with this machine's upstream, port and paths (nginx here predates `resolve`)."""
    folder.mkdir(parents=True, exist_ok=True)
    temp_paths = "".join(f"\n    {kind}_temp_path {folder}/{kind};" for kind in ("client_body", "proxy"))
    replacements = {
        "server api:8000 resolve;": f"server 127.0.0.1:{upstream_port};",
        "listen 80 default_server;": f"listen 127.0.0.1:{listen_port} default_server;",
        "worker_processes auto;": "worker_processes 1;",
        "pid /var/run/nginx.pid;": f"pid {folder}/nginx.pid;",
        "error_log /var/log/nginx/error.log warn;": f"error_log {folder}/error.log warn;",
        "access_log /var/log/nginx/access.log upstream;": f"access_log {folder}/access.log upstream;",
        "http {": "http {" + temp_paths,
    }
    conf = (ROOT / "deploy" / "nginx.conf").read_text()
    for old, new in replacements.items():
        assert old in conf, f"deploy/nginx.conf no longer has {old!r}: update this test's wrapper"
        conf = conf.replace(old, new, 1)
    if os.geteuid() == 0:  # workers would run as nobody, who cannot enter pytest's private folders
        conf = "user root;\n" + conf
    path = folder / "nginx.conf"
    path.write_text(conf)
    return path


@pytest.fixture
def nginx_in_front(app: Flask, process_env: dict[str, str], tmp_path: Path) -> Iterator[tuple[str, Proc]]:
    """nginx on a free loopback port before a real gunicorn; yields nginx's base URL and gunicorn."""
    api, api_base = start_gunicorn(dict(process_env, PROXY_HOPS="1"), tmp_path / "gunicorn.log", workers=1, threads=4)
    api_port = int(api_base.rsplit(":", 1)[1])
    port = free_port()
    conf = render(tmp_path / "nginx", api_port, port)
    proxy = Proc([str(NGINX), "-c", str(conf), "-p", str(conf.parent), "-g", "daemon off;"], os.environ, tmp_path / "n")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: serves(f"{base}/nginx-health"), 10, "nginx")
        yield base, api
    finally:
        proxy.stop()
        api.stop()


def assert_json_error(resp: requests.Response, status: int, code: str, by_nginx: bool = True) -> None:
    assert resp.status_code == status, resp.text[:300]
    assert resp.headers["Content-Type"].startswith("application/json"), resp.headers
    assert resp.json()["error"] == code and resp.json()["message"], resp.text
    if by_nginx:
        assert resp.headers.get("X-Request-ID"), resp.headers


def test_config_passes_nginx_t(tmp_path: Path) -> None:
    conf = render(tmp_path, free_port(), free_port())
    done = subprocess.run(
        [str(NGINX), "-t", "-c", str(conf), "-p", str(tmp_path)], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    assert "test is successful" in done.stderr


def test_errors_through_nginx_are_json(nginx_in_front: tuple[str, Proc]) -> None:
    base, api = nginx_in_front
    assert requests.get(f"{base}/healthz", timeout=5).status_code == 200
    # Over the app's 64 KiB: the app's own 413 passes through; over nginx's 1 MiB: nginx's, as JSON.
    from_app = requests.post(f"{base}/auth/signup", data=b"x" * 100_000, timeout=5)
    assert_json_error(from_app, 413, "payload_too_large", by_nginx=False)
    assert_json_error(requests.post(f"{base}/auth/signup", data=b"x" * 2_000_000, timeout=5), 413, "payload_too_large")
    # /auth/ is limited per address at the edge: 10 a second, bursts of 20.
    answers = [requests.post(f"{base}/auth/signup", json={}, timeout=5) for _ in range(30)]
    assert {r.status_code for r in answers} == {400, 429}, [r.status_code for r in answers]
    assert_json_error(next(r for r in answers if r.status_code == 429), 429, "too_many_requests")
    api.stop()  # the upstream is gone: nginx's 502 becomes the contract's 503
    assert_json_error(requests.get(f"{base}/coupons/1", timeout=10), 503, "unavailable")


def _raw(base: str, request_line: str, headers: list[str] = ()) -> tuple[int, dict[str, str], bytes]:  # type: ignore[assignment]
    """One request sent byte for byte (requests would refuse some of these); its status, headers and body."""
    host, port = base.removeprefix("http://").split(":")
    head = "\r\n".join([request_line, f"Host: {host}", *headers, "Connection: close", "", ""]).encode()
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(head)
        received = b""
        while chunk := conn.recv(65536):
            received += chunk
    top, _, body = received.partition(b"\r\n\r\n")
    status_line, *lines = top.decode("latin-1").split("\r\n")
    found = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), found, body


def test_a_valid_client_request_id_is_kept_else_nginx_makes_one(
    nginx_in_front: tuple[str, Proc], tmp_path: Path
) -> None:
    base, _ = nginx_in_front
    mine = "client-id_1.A" + "x" * 100
    for path in ("/healthz", "/metrics", "/coupons/1"):  # the app's answers, nginx's own, an app error
        assert requests.get(f"{base}{path}", headers={"X-Request-ID": mine}, timeout=5).headers["X-Request-ID"] == mine
    for invalid in ("bad id!", "x" * 129, "a\tb", ""):
        given = requests.get(f"{base}/healthz", headers={"X-Request-ID": invalid}, timeout=5).headers["X-Request-ID"]
        assert given != invalid and re.fullmatch(r"[0-9a-f]{32}", given), given
    assert f"rid={mine}" in (tmp_path / "nginx" / "access.log").read_text()


def test_only_json_reaches_a_client_through_nginx(nginx_in_front: tuple[str, Proc]) -> None:
    """gunicorn's own refusals are HTML (docs/operations.md): nothing it would refuse gets past nginx."""
    base, _ = nginx_in_front
    # Request lines around nginx's limit (a 4k buffer) and past gunicorn's (4094 bytes).
    for length in (*range(4070, 4110), 5000, 9000):
        target = "/coupons/1?q=" + "a" * (length - len("GET  HTTP/1.1") - len("/coupons/1?q="))
        status, headers, body = _raw(base, f"GET {target} HTTP/1.1")
        assert headers["content-type"].startswith("application/json"), (length, status, body[:200])
        assert status in (400, 401), (length, status)
    # Many headers (gunicorn refuses over 100), one large header: JSON whatever the case.
    many = [f"X-Extra-{i}: v" for i in range(300)]
    status, headers, body = _raw(base, "GET /healthz HTTP/1.1", many)
    assert (status, headers["content-type"]) == (200, "application/json"), body[:200]
    status, headers, body = _raw(base, "GET /healthz HTTP/1.1", ["X-Large: " + "v" * 6000])
    assert (status, json.loads(body)["error"]) == (400, "invalid_request"), body[:200]
    # OPTIONS is not answered: the contract's 405, naming the methods the path takes.
    resp = requests.options(f"{base}/auth/login", timeout=5)
    assert_json_error(resp, 405, "method_not_allowed", by_nginx=False)
    assert resp.headers["Allow"] == "POST"


def test_the_app_gets_the_headers_it_reads_through_nginx(nginx_in_front: tuple[str, Proc], app: Flask) -> None:
    base, _ = nginx_in_front
    signup = requests.post(f"{base}/auth/signup", json={"username": "ann", "password": "pw"}, timeout=5)
    assert signup.status_code == 201, signup.text
    token = requests.post(f"{base}/auth/login", json={"username": "ann", "password": "pw"}, timeout=5).json()
    mine = requests.get(f"{base}/members/me/coupons", headers=bearer(token["access_token"]), timeout=5)
    assert (mine.status_code, mine.json()) == (200, [])
