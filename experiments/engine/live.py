"""A small live page while the lab runs: requests/s by outcome, stock, winners, drain backlog, latency, charted.

http.server on a free loopback port, started by the lab, which prints its address. The page fetches
``/state.json`` every second and draws its charts itself (inline SVG, nothing fetched from elsewhere).
Requests/s and latency come per whole second from the Locust workers (``live-*.json``, written by the
master from their messages, wherever the workers run); stock left and the drain backlog are read from
Redis once a second while a run goes, so the charts start at the run's first second.
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
<style>body{font:15px system-ui,sans-serif;margin:2em;max-width:64em}td,th{padding:.2em .8em;text-align:right}
th{text-align:left}h1{font-size:1.3em}h2{font-size:1em;margin:1.2em 0 .3em}.muted{color:#666}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(30em,1fr));gap:1em}
svg{width:100%;height:auto;background:#fafafa;border:1px solid #ddd}svg text{font-size:11px;fill:#444}</style></head>
<body><h1>coupon-rush lab: live</h1><p id="run" class="muted">waiting for the first run</p>
<table id="figures"><tbody></tbody></table>
<div class="charts">
<div><h2>requests/s by outcome</h2><svg id="chart-rps" viewBox="0 0 480 200"></svg></div>
<div><h2>stock left and drain backlog</h2><svg id="chart-stock" viewBox="0 0 480 200"></svg></div>
<div><h2>latency ms (each second's p50 and p99)</h2><svg id="chart-latency" viewBox="0 0 480 200"></svg></div>
</div>
<script>
"use strict";
const ROWS = [["elapsed s", "elapsed_s"], ["requests/s 2xx (won)", "rps_won"],
  ["requests/s 409 already issued", "rps_already_issued"], ["requests/s 410 sold out", "rps_sold_out"],
  ["requests/s other or failed", "rps_other"], ["stock left", "stock_left"], ["winners", "winners"],
  ["rows persisted", "rows"], ["drain backlog", "drain_backlog"], ["latency p50 ms", "p50_ms"],
  ["latency p99 ms", "p99_ms"]];
const SVG = "http://www.w3.org/2000/svg";
function el(name, attrs, text) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}
// One chart: a line a series over elapsed seconds, the y axis from 0 to the largest value, a legend.
function chart(id, xs, lines) {
  const svg = document.getElementById(id), W = 480, H = 200, L = 48, R = 8, T = 22, B = 22;
  const values = lines.flatMap(l => l.ys.filter(v => v !== null && v !== undefined));
  const top = Math.max(1, ...values), right = Math.max(1, ...xs);
  const x = t => L + (W - L - R) * t / right, y = v => H - B - (H - T - B) * v / top;
  const parts = [el("line", {x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: "#999"}),
    el("line", {x1: L, y1: T, x2: L, y2: H - B, stroke: "#999"}),
    el("text", {x: L - 4, y: T + 4, "text-anchor": "end"}, top.toLocaleString("en", {maximumFractionDigits: 0})),
    el("text", {x: L - 4, y: H - B, "text-anchor": "end"}, "0"),
    el("text", {x: W - R, y: H - 6, "text-anchor": "end"}, right.toFixed(0) + " s")];
  lines.forEach((l, i) => {
    const points = xs.map((t, j) => [t, l.ys[j]]).filter(([, v]) => v !== null && v !== undefined);
    parts.push(el("polyline", {class: "series", "data-name": l.name, fill: "none", stroke: l.color,
      "stroke-width": 2, points: points.map(([t, v]) => x(t).toFixed(1) + "," + y(v).toFixed(1)).join(" ")}));
    if (points.length === 1) parts.push(el("circle", {cx: x(points[0][0]), cy: y(points[0][1]), r: 3, fill: l.color}));
    parts.push(el("text", {x: L + 6 + i * 110, y: 14, style: "fill:" + l.color}, l.name));
  });
  svg.replaceChildren(...parts);
}
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
  const c = s.series;
  if (!c) return;
  chart("chart-rps", c.rps_t, [{name: "2xx won", color: "#2a7", ys: c.rps.won},
    {name: "409 already", color: "#e90", ys: c.rps.already_issued},
    {name: "410 sold out", color: "#36c", ys: c.rps.sold_out}, {name: "other", color: "#c33", ys: c.rps.other}]);
  chart("chart-stock", c.stock_t, [{name: "stock left", color: "#36c", ys: c.stock_left},
    {name: "drain backlog", color: "#e90", ys: c.drain_backlog}]);
  chart("chart-latency", c.rps_t, [{name: "p50", color: "#2a7", ys: c.p50_ms},
    {name: "p99", color: "#c33", ys: c.p99_ms}]);
}
async function tick() {
  try { show(await (await fetch("state.json", {cache: "no-store"})).json()); }
  catch (e) { document.getElementById("run").textContent = "the lab has finished"; }
}
tick();
setInterval(tick, 1000);
</script></body></html>
"""


OUTCOMES = ("won", "already_issued", "sold_out", "other")


class Live:
    """The live page's server and the run it shows."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.url: str | None = None
        self._run: dict[str, Any] | None = None
        self._history: list[tuple[float, int | None, int | None]] = []  # (elapsed s, stock left, drain backlog)
        self._guard = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._stop = threading.Event()

    def __enter__(self) -> Live:
        if self.enabled:
            self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
            threading.Thread(target=self._server.serve_forever, daemon=True).start()
            threading.Thread(target=self._sample_every_second, daemon=True).start()
            self.url = f"http://127.0.0.1:{self._server.server_address[1]}/"
            print(f"live view: {self.url}", flush=True)
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._stop.set()
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
            self._history = []
        self.sample()

    def end(self) -> None:
        """The run is over."""
        with self._guard:
            self._run = None

    def sample(self) -> None:
        """Stock left and drain backlog now, for the charts over time."""
        with self._guard:
            run = self._run
        if run is None:
            return
        stock, backlog = _stock(run), _backlog(run)
        with self._guard:
            if self._run is run:
                self._history.append((round(time.time() - run["started"], 1), stock, backlog))

    def _sample_every_second(self) -> None:
        while not self._stop.wait(1.0):
            try:
                self.sample()
            except Exception:  # a Redis hiccup must not end the page's history; the next second tries again
                continue

    def state(self) -> dict[str, Any]:
        """What the page shows now: the latest whole second's figures and every second's so far."""
        with self._guard:
            run, history = self._run, list(self._history)
        if run is None:
            return {"label": None}
        client, coupon_id, mode = run["client"], run["coupon_id"], run["mode"]
        rush = mode != "read"
        series = _series(run["logs"], run["started"])
        latest = {k: v[-1] if v else 0.0 for k, v in series["rps"].items()}
        p50, p99 = _so_far(run["logs"])
        return {
            "label": run["label"],
            "elapsed_s": round(time.time() - run["started"], 1),
            **{f"rps_{k}": round(v, 1) for k, v in latest.items()},
            "stock_left": _stock(run),
            "winners": audits.winners_in_redis(client, mode, coupon_id, run["quantity"]) if rush else None,
            "rows": run["monitor"].rows if rush else None,
            "drain_backlog": _backlog(run),
            "p50_ms": p50,
            "p99_ms": p99,
            "series": {
                **series,
                "stock_t": [t for t, _, _ in history],
                "stock_left": [s for _, s, _ in history],
                "drain_backlog": [b for _, _, b in history],
            },
        }


def _stock(run: dict[str, Any]) -> int | None:
    return None if run["mode"] == "read" else state.stock(run["client"], run["coupon_id"])


def _backlog(run: dict[str, Any]) -> int | None:
    return int(run["client"].zcard(keys.queue(run["coupon_id"]))) if run["mode"] == "lua" else None


def _so_far(logs: Path) -> tuple[float | None, float | None]:
    """The worst of the Locust workers' latency percentiles over the run so far."""
    p50s, p99s = [], []
    for path in logs.glob("live-*.json"):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        p50s += [data["p50_ms"]] if data.get("p50_ms") is not None else []
        p99s += [data["p99_ms"]] if data.get("p99_ms") is not None else []
    p50, p99 = max(p50s, default=None), max(p99s, default=None)
    return None if p50 is None else round(p50, 1), None if p99 is None else round(p99, 1)


def _series(logs: Path, started: float) -> dict[str, Any]:
    """Every whole second since the run started: requests/s by outcome and p50/p99 latency (all workers).

    A second is shown once every worker has reported past it; a second with no answer shows 0 requests/s.
    """
    seconds: dict[int, dict[str, float]] = {}
    p50s: dict[int, float] = {}
    p99s: dict[int, float] = {}
    reported: list[float] = []
    for path in logs.glob("live-*.json"):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        reported.append(data["at"])
        for key, second in data.get("seconds", {}).items():
            rates = seconds.setdefault(int(key), dict.fromkeys(OUTCOMES, 0.0))
            for status, n in second["statuses"].items():
                rates[_outcome(status)] += n
            for worst, name in ((p50s, "p50_ms"), (p99s, "p99_ms")):
                if second.get(name) is not None:  # the worst of the workers', as the table shows
                    worst[int(key)] = max(worst.get(int(key), 0.0), second[name])
    done = int(min(reported)) if reported else int(time.time())  # the second under way is not over
    span = range(int(started), max(done, int(started)))
    zero = dict.fromkeys(OUTCOMES, 0.0)
    return {
        "rps_t": [round(s + 1 - started, 1) for s in span],
        "rps": {k: [seconds.get(s, zero)[k] for s in span] for k in OUTCOMES},
        "p50_ms": [p50s.get(s) for s in span],
        "p99_ms": [p99s.get(s) for s in span],
    }


def _outcome(status: str) -> str:
    """An HTTP status as the page's outcome: won (2xx), already_issued (409), sold_out (410), or other."""
    return "won" if status.startswith("2") else {"409": "already_issued", "410": "sold_out"}.get(status, "other")


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
