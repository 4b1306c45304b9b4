"""Target mode: the lab rushes a deployment it did not start, from Locust workers started as separate processes."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from experiments import lab
from support.procs import ROOT, Proc, Processes, free_port, start_service, wait_for
from tests.netns import namespaces, net_namespace
from tests.test_lab_pages import CHROMIUM, dump_dom

both = pytest.mark.parametrize("strategy", ["lock", "lua"])
TOY = ["--users", "30", "--duration", "3", "--quantity", "30", "--members", "300", "--no-live"]


@pytest.fixture(scope="module")
def deployment(process_env: dict[str, str], migrated: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A lua API, its worker and its scheduler: processes the lab does not start. Their base URL."""
    logs = tmp_path_factory.mktemp("deployment")
    env = dict(process_env, ISSUE_STRATEGY="lua", WEB_WORKERS="2", WEB_THREADS="8")
    with Processes() as procs:  # on every address: load from other network namespaces reaches it too
        base, _ = start_service(procs, env, logs, drain=True, host="0.0.0.0")
        yield base


def run_lab(env: dict[str, str], *args: str, timeout_s: float = 300) -> subprocess.CompletedProcess[str]:
    """``python -m experiments.lab`` with ``args``, to its end."""
    return subprocess.run(
        [sys.executable, "-m", "experiments.lab", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )


def run_members(process_env: dict[str, str]) -> int:
    """Members any target-mode run seeded and left behind (their names start with lab-<run id>-)."""
    engine = sa.create_engine(process_env["DATABASE_URL"])
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT COUNT(*) FROM member WHERE username LIKE 'lab-2%'")).scalar_one())
    finally:
        engine.dispose()


@both
def test_healthz_names_the_strategy(client: FlaskClient, strategy: str) -> None:
    assert client.get("/healthz").json["strategy"] == strategy


@pytest.mark.slow
def test_the_lab_rushes_a_deployment_from_two_remote_workers(
    deployment: str, process_env: dict[str, str], tmp_path: Path
) -> None:
    """Each worker in a network namespace of its own where the machine allows it (else on loopback): it reaches
    the master and the target only over its veth pair, at this machine's address there, as a load machine would."""
    port = free_port()
    with namespaces(2) as spaces, Processes() as procs:
        host = spaces[0].host_ip if spaces else "127.0.0.1"
        target = deployment.replace("127.0.0.1", host)
        args = ["--target", target, "--strategy", "lua", *TOY, "--out", str(tmp_path / "reports"), "--cleanup"]
        args += ["--locust-workers", "0", "--locust-workers-remote", "2", "--locust-master-port", str(port)]
        args += ["--locust-master-host", host, "--locust-workers-wait", "120"]
        workers = [
            procs.add(
                Proc(
                    [*(spaces[i].prefix if spaces else []), sys.executable, "-m", "experiments.worker"]
                    + ["--master", f"{host}:{port}"],
                    process_env,
                    tmp_path / f"worker-{i}.log",
                )
            )
            for i in range(2)
        ]
        if spaces:  # not this process's network: no loopback shared with the lab
            wait_for(lambda: all(net_namespace(w.popen.pid) != net_namespace() for w in workers), 10, "netns")
            print(f"workers in network namespaces {[s.name for s in spaces]}, reaching the lab at {host}")
        done = run_lab(process_env, *args)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        for worker in workers:  # the master told them the last run was over
            wait_for(lambda w=worker: w.popen.poll() is not None, 60, "the remote workers to exit")
            assert worker.popen.returncode == 0, worker.output()
    assert f"on each load machine run: python -m experiments.worker --master {host}:{port}" in done.stdout
    (run_dir,) = (tmp_path / "reports").iterdir()
    results = json.loads((run_dir / "results.json").read_text())
    (run,) = results["runs"]
    assert run["audit"]["ok"] and run["winners"] == 30 and run["requests"] > 30, run["audit"]
    assert run["api_cpu_us_per_request"] is None and run["costs"]["stock"]["redis_us"] > 0
    # The stores' own counters are read (at least the EVALSHA a download), the clients' round trips are not.
    phases = list(run["round_trips"].values())
    assert phases and all(p["redis"]["round_trips"] is None for p in phases), run["round_trips"]
    assert max(p["redis"]["commands"] or 0 for p in phases) >= 1, run["round_trips"]
    sent = {
        path.name: len(json.loads(path.read_text())["records"])
        for path in (run_dir / "logs" / "lua-target").glob("records-*.json")
    }
    assert set(sent) == {"records-00.json", "records-01.json"} and min(sent.values()) > 0, sent
    config = results["config"]
    assert config["targets"] == [target] and config["locust_workers_remote"] == 2
    assert any(gap.startswith("API CPU") for gap in config["not_measured"])
    report = (run_dir / "report.md").read_text()
    assert f"**Target:** {target}" in report and "**Not measured:** API CPU" in report
    assert "Locust users (spawn rate 30/s) on 2 Locust workers" in report
    assert f"cleanup: removed 300 members and 1 coupons named lab-{results['run_id']}-" in done.stdout
    assert run_members(process_env) == 0


def test_an_unreachable_target_is_refused_before_anything_is_seeded(
    process_env: dict[str, str], tmp_path: Path
) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"
    done = run_lab(process_env, "--target", nobody, "--strategy", "lua", *TOY, "--out", str(tmp_path))
    assert done.returncode == 2 and f"lab: cannot reach the target {nobody}" in done.stderr, done.stderr[-2000:]
    assert run_members(process_env) == 0


def test_a_target_of_another_strategy_is_refused_before_anything_is_seeded(
    deployment: str, process_env: dict[str, str], tmp_path: Path
) -> None:
    done = run_lab(process_env, "--target", deployment, "--strategy", "lock", *TOY, "--out", str(tmp_path))
    assert done.returncode == 2, done.stderr[-2000:]
    assert f"lab: the target {deployment} runs lua, not lock (--strategy lock)" in done.stderr
    assert run_members(process_env) == 0


def test_a_wrong_secret_is_refused_before_anything_is_seeded(
    deployment: str, process_env: dict[str, str], tmp_path: Path
) -> None:
    env = dict(process_env, JWT_SECRET_KEY="not-the-target-secret-0123456789abcdef")
    done = run_lab(env, "--target", deployment, "--strategies", "lua", *TOY, "--out", str(tmp_path))
    assert done.returncode == 2, done.stderr[-2000:]
    assert f"lab: the target {deployment} refused a token signed with this JWT_SECRET_KEY" in done.stderr
    assert run_members(process_env) == 0


def test_target_mode_needs_the_targets_stores_named(process_env: dict[str, str], tmp_path: Path) -> None:
    env = {k: v for k, v in process_env.items() if k not in ("REDIS_URL", "REDIS_CLUSTER_URL", "JWT_SECRET_KEY")}
    done = run_lab(env, "--target", "http://127.0.0.1:9", "--strategy", "lua", *TOY, "--out", str(tmp_path))
    assert done.returncode == 2
    assert "target mode needs the target's JWT_SECRET_KEY, REDIS_URL or REDIS_CLUSTER_URL" in done.stderr


def test_remote_workers_that_never_connect_are_refused_before_anything_is_seeded(
    deployment: str, process_env: dict[str, str], tmp_path: Path
) -> None:
    port = free_port()
    args = ["--target", deployment, "--strategy", "lua", *TOY, "--out", str(tmp_path)]
    args += ["--locust-workers", "0", "--locust-workers-remote", "1", "--locust-master-port", str(port)]
    done = run_lab(process_env, *args, "--locust-master-host", "127.0.0.1", "--locust-workers-wait", "3")
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    assert "lab: 1 remote Locust workers expected, not all connected within 3 s (nothing was seeded)" in done.stderr
    assert f"start them with: python -m experiments.worker --master 127.0.0.1:{port}" in done.stderr
    assert run_members(process_env) == 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--locust-workers-remote", "2"], "--locust-workers-remote needs --target"),
        (["--target", "http://api:8000", "--strategies", "lock,lua"], "--target rushes the one strategy"),
        (["--target", "api:8000", "--strategy", "lua"], "not a base URL: api:8000"),
        (["--locust-workers", "0"], "at least one Locust worker"),
    ],
)
def test_remote_options_are_checked_at_once(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        lab.parse(argv)
    assert exited.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="needs chromium (Debian package chromium)")
def test_the_live_page_shows_a_target_rush_from_its_first_second(
    deployment: str, process_env: dict[str, str], tmp_path: Path
) -> None:
    """A stock that outlasts the run: every outcome's rate a number at once, the charts from the first seconds."""
    args = ["--target", deployment, "--strategy", "lua", "--users", "30", "--duration", "12", "--quantity", "100000"]
    args += ["--members", "5000", "--locust-workers", "1", "--out", str(tmp_path / "reports"), "--cleanup"]
    lab_run = subprocess.Popen(
        [sys.executable, "-m", "experiments.lab", *args],
        cwd=ROOT,
        env=process_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    printed: list[str] = []
    reader = threading.Thread(target=lambda: printed.extend(iter(lab_run.stdout.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()
    try:
        line = wait_for(lambda: next((x for x in printed if x.startswith("live view: ")), None), 120, "the live view")
        url = str(line).split()[-1]
        states: list[dict[str, Any]] = []

        def under_way() -> bool:
            state = requests.get(f"{url}state.json", timeout=5).json()
            if state.get("label"):
                states.append(state)
            return bool(state.get("label") and state["rps_won"] > 0 and state["stock_left"] > 0)

        wait_for(under_way, 120, "winners while stock remains", every_s=0.2)
        dom = dump_dom(url, tmp_path)
        shot = tmp_path / "live.png"
        subprocess.run(
            [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
            + [f"--user-data-dir={tmp_path / 'shot-profile'}", "--window-size=1280,1000", "--virtual-time-budget=3000"]
            + [f"--screenshot={shot}", url],
            capture_output=True,
            timeout=90,
        )
        assert lab_run.wait(240) == 0, "".join(printed)[-3000:]
    finally:
        if lab_run.poll() is None:
            lab_run.kill()
    outcomes = ("rps_won", "rps_already_issued", "rps_sold_out", "rps_other")
    assert all(isinstance(states[0][k], float) for k in outcomes), states[0]  # numbers from the run's first poll
    assert "run: lua target x1" in dom and re.search(r"requests/s 2xx \(won\)</th><td>[1-9]", dom), dom[-2000:]
    lines = dict(re.findall(r'data-name="([^"]+)"[^>]*points="([^"]*)"', dom))
    assert lines["2xx won"].split() and lines["stock left"].split() and lines["p50"].split(), lines
    assert shot.stat().st_size > 10_000  # a page with its charts drawn, not a blank one


def test_a_remote_worker_is_told_where_the_master_is() -> None:
    from experiments.engine.remote import advertised_host, command, master_address

    assert master_address("10.0.0.20:5557") == ("10.0.0.20", 5557) and command("h", 1) == (
        "python -m experiments.worker --master h:1"
    )
    for bad in ("10.0.0.20", ":5557", "h:port"):
        with pytest.raises(argparse.ArgumentTypeError, match="not HOST:PORT"):
            master_address(bad)
    assert advertised_host(["http://127.0.0.1:8000"]) == "127.0.0.1"


@contextmanager
def fake_target(answers: dict[str, tuple[int, str]]) -> Iterator[str]:
    """An HTTP server answering each path of ``answers`` (GET or POST) with its status and body: a stand-in target."""

    class Handler(BaseHTTPRequestHandler):
        def answer(self) -> None:
            status, body = answers.get(self.path, (404, '{"error": "not_found"}'))
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body.encode())

        do_GET = do_POST = answer  # noqa: N815 - http.server's names

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


HEALTHY = (200, '{"redis": "ok", "database": "ok", "strategy": "lua"}')


@pytest.mark.parametrize(
    ("answers", "message"),
    [
        ({"/healthz": (503, '{"error": "unavailable"}')}, "is not healthy: /healthz answered 503"),
        ({"/healthz": (200, '{"redis": "ok"}')}, "does not name its strategy in /healthz, not lua"),
        ({"/healthz": (200, "<html>")}, "does not name its strategy"),
        ({"/healthz": HEALTHY, "/members/me/coupons": (500, "oops")}, "answered a signed-in probe with 500"),
    ],
)
def test_a_target_that_is_not_the_service_is_refused(
    app: Flask, answers: dict[str, tuple[int, str]], message: str
) -> None:
    from experiments.engine.target import TargetError, check_targets

    with fake_target(answers) as url, pytest.raises(TargetError, match=re.escape(message)):
        check_targets(app, [url], "lua")


def test_api_cpu_is_summed_over_targets_that_expose_it() -> None:
    from experiments.engine.target import MetricsCpu

    exposed = "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 1.5\n"
    with (
        fake_target({"/metrics": (200, exposed)}) as one,
        fake_target({"/metrics": (200, exposed.replace("1.5", "2.25"))}) as two,
        fake_target({"/metrics": (200, "coupon_rush_drain_rows 3\n")}) as hidden,
    ):
        reader = MetricsCpu.of([one, two])
        assert reader is not None and reader.seconds() == 3.75
        assert MetricsCpu.of([one, hidden]) is None
    assert reader.seconds() is None  # a target gone: not measured, never a wrong figure
