"""A small live page while the lab runs: elapsed time, requests/s by outcome, stock, winners, drain backlog.

http.server on a free loopback port, started by the lab, which prints its address. The page fetches
``/state.json`` every second; the state is read when asked (Redis, the rows monitor, the Locust workers'
``live-*.json`` files), so nothing is computed while nobody looks.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

from experiments.engine import audit as audits
from strategies import keys, state

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>coupon-rush lab: live</title>
<style>body{font:15px system-ui,sans-serif;margin:2em;max-width:44em}td,th{padding:.2em .8em;text-align:right}
th{text-align:left}h1{font-size:1.3em}.muted{color:#666}</style></head>
<body><h1>coupon-rush lab: live</h1><p id="run" class="muted">waiting for the first run</p>
<table id="figures"><tbody></tbody></table>
<script>
"use strict";
const ROWS = [["elapsed s", "elapsed_s"], ["requests/s 2xx (won)", "rps_won"],
  ["requests/s 409 already issued", "rps_already_issued"], ["requests/s 410 sold out", "rps_sold_out"],
  ["requests/s other or failed", "rps_other"], ["stock left", "stock_left"], ["winners", "winners"],
  ["rows persisted", "rows"], ["drain backlog", "drain_backlog"], ["latency p50 ms", "p50_ms"],
  ["latency p99 ms", "p99_ms"]];
function show(s) {
  document.getElementById("run").textContent = s.label ? "run: " + s.label : "between runs";
  const body = document.querySelector("#figures tbody");
  body.replaceChildren(...ROWS.map(([name, key]) => {
    const tr = document.createElement("tr"), th = document.createElement("th"), td = document.createElement("td");
    th.textContent = name;
    const v = s[key];
    td.textContent = v === null || v === undefined ? "-" : (typeof v === "number" ? v.toLocaleString("en") : v);
    tr.append(th, td);
    return tr;
  }));
}
async function tick() {
  try { show(await (await fetch("state.json", {cache: "no-store"})).json()); }
  catch (e) { document.getElementById("run").textContent = "the lab has finished"; }
}
tick();
setInterval(tick, 1000);
</script></body></html>
"""


class Live:
    """The live page's server and the run it shows."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.url: str | None = None
        self._run: dict[str, Any] | None = None
        self._last: tuple[float, dict[str, int]] | None = None
        self._rates: dict[str, float] = {}
        self._guard = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def __enter__(self) -> Live:
        if self.enabled:
            self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
            threading.Thread(target=self._server.serve_forever, daemon=True).start()
            self.url = f"http://127.0.0.1:{self._server.server_address[1]}/"
            print(f"live view: {self.url}", flush=True)
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    def begin(
        self, label: str, coupon_id: int, mode: str, quantity: int, client: Any, monitor: Any, logs: Path
    ) -> None:
        """A run starts: show it."""
        with self._guard:
            self._run = {"label": label, "coupon_id": coupon_id, "mode": mode, "quantity": quantity}
            self._run.update(started=time.time(), client=client, monitor=monitor, logs=logs)
            self._last, self._rates = None, {}

    def end(self) -> None:
        """The run is over."""
        with self._guard:
            self._run = None

    def state(self) -> dict[str, Any]:
        """What the page shows now."""
        with self._guard:
            run = self._run
            if run is None:
                return {"label": None}
            answers, p50, p99 = _workers(run["logs"])
            self._update_rates(answers)
            rates = dict(self._rates)
        client, coupon_id, mode = run["client"], run["coupon_id"], run["mode"]
        rush = mode != "read"
        return {
            "label": run["label"],
            "elapsed_s": round(time.time() - run["started"], 1),
            **{k: round(v, 1) for k, v in rates.items()},
            "stock_left": state.stock(client, coupon_id) if rush else None,
            "winners": audits.winners_in_redis(client, mode, coupon_id, run["quantity"]) if rush else None,
            "rows": run["monitor"].rows if rush else None,
            "drain_backlog": int(client.zcard(keys.queue(coupon_id))) if mode == "lua" else None,
            "p50_ms": None if p50 is None else round(p50, 1),
            "p99_ms": None if p99 is None else round(p99, 1),
        }

    def _update_rates(self, answers: dict[str, int]) -> None:
        now = time.time()
        if self._last is not None and now - self._last[0] >= 0.5:
            then, before = self._last
            delta = {k: v - before.get(k, 0) for k, v in answers.items()}
            seconds = now - then
            won = sum(v for k, v in delta.items() if k.startswith("2"))
            named = won + delta.get("409", 0) + delta.get("410", 0)
            self._rates = {
                "rps_won": won / seconds,
                "rps_already_issued": delta.get("409", 0) / seconds,
                "rps_sold_out": delta.get("410", 0) / seconds,
                "rps_other": (sum(delta.values()) - named) / seconds,
            }
        if self._last is None or now - self._last[0] >= 0.5:
            self._last = (now, answers)


def _workers(logs: Path) -> tuple[dict[str, int], float | None, float | None]:
    """The Locust workers' answers by status so far, and the worst of their latency percentiles."""
    answers: dict[str, int] = {}
    p50s, p99s = [], []
    for path in logs.glob("live-*.json"):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        for status, n in data["statuses"].items():
            answers[status] = answers.get(status, 0) + n
        p50s += [data["p50_ms"]] if data.get("p50_ms") is not None else []
        p99s += [data["p99_ms"]] if data.get("p99_ms") is not None else []
    return answers, max(p50s, default=None), max(p99s, default=None)


def _handler(live: Live) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            if self.path.startswith("/state.json"):
                body, kind = json.dumps(live.state()).encode(), "application/json"
            elif self.path in ("/", "/index.html"):
                body, kind = PAGE.encode(), "text/html; charset=utf-8"
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
            return

    return Handler
