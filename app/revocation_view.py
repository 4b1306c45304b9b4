"""Each API process's view of revocations: checked in memory on every signed-in request, refreshed in the background.

The view maps a member id to the latest ``iat`` it refuses (app/revocations.py). A request looks
its member up in a dict: no database or Redis round trip. A daemon thread per process, started at
each gunicorn worker's start (gunicorn.conf.py), else on the process's first signed-in request,
refreshes it at most once every REFRESH_S with one script call that returns only what the log added
since the view's sequence number, or every entry when the generation changed (a rebuild); the first
refresh loads everything. When Redis has no revocations loaded (new, or it lost its data) the
refresher rebuilds them from the database.

Fail closed: a view not refreshed for more than STALE_S answers every signed-in request 503
``unavailable`` until a refresh succeeds, so a process cut off from Redis never trusts an old view
for long. A command's change reaches every process within REFRESH_S plus one round trip.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
from functools import partial
from typing import Any

import redis
from flask import Flask, current_app

from app import revocations
from app.errors import Unauthorized
from app.extensions import db
from strategies import Unavailable, scripts

log = logging.getLogger(__name__)

REFRESH_S = 1.0  # at most one refresh a second
STALE_S = 5.0  # a view older than this answers 503
FIRST_LOAD_WAIT_S = STALE_S  # a process's first use waits this long for the first load
LOG_EVERY_S = 10.0  # a failing refresher logs at most this often


class RevocationView:
    """Member id -> the latest ``iat`` refused, with the sequence number and generation it is current to."""

    def __init__(self, since: Callable[[str, int], list[Any]], rebuild: Callable[[], None]) -> None:
        self._since = since
        self._rebuild = rebuild
        self._refused: dict[int, int] = {}
        self._generation = ""
        self._seq = 0
        self._fresh_at = float("-inf")  # time.monotonic() when the last successful refresh began

    def check(self, member_id: int, iat: float) -> None:
        """Raise Unavailable (503) if the view is stale, Unauthorized if it refuses this token."""
        age_s = time.monotonic() - self._fresh_at
        if age_s > STALE_S:  # the one 503 path: logged, and counted for a download, as any outage
            raise Unavailable(f"the revocations were last refreshed {age_s:.1f} s ago")
        if iat <= self._refused.get(member_id, -1):
            raise Unauthorized("The token was revoked: sign in again.")

    @property
    def age_s(self) -> float:
        """Seconds since the last successful refresh began."""
        return time.monotonic() - self._fresh_at

    def refresh(self) -> int:
        """Bring the view up to date in one round trip (rebuilding Redis's entries if missing); entries applied."""
        began = time.monotonic()
        reply = self._since(self._generation, self._seq)
        if not reply:
            self._rebuild()
            reply = self._since(self._generation, self._seq)
            if not reply:
                raise RuntimeError("the revocations are not loaded in Redis")
        generation, seq, whole, pairs = _text(reply[0]), int(reply[1]), int(reply[2]), reply[3:]
        changes = {int(pairs[i]): revocations.refused_up_to(pairs[i + 1]) for i in range(0, len(pairs), 2)}
        if whole:
            self._refused = changes  # one rebinding: a request sees the old view or the new, never half
        else:
            self._refused.update(changes)
        self._generation, self._seq = generation, seq
        self._fresh_at = began
        return len(changes)


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


class ProcessView:
    """The view of one app in this process: built, first loaded and refreshed from the process's first use."""

    def __init__(self, app: Flask) -> None:
        _views.add(self)
        self._app = app
        self._pid = -1
        self._view: RevocationView | None = None
        self._lock = threading.Lock()
        self._failing_since = 0.0
        self._logged_at = float("-inf")

    def get(self) -> RevocationView:
        """This process's view; the first call starts its refresher and waits briefly for the first load."""
        view = self._view
        if view is not None and self._pid == os.getpid():
            return view
        with self._lock:
            if self._view is None or self._pid != os.getpid():
                self._pid = os.getpid()
                self._start()
            assert self._view is not None
            return self._view

    def stop(self) -> None:
        """End this process's refresher (at its next tick, within REFRESH_S); the next get() starts another."""
        with self._lock:
            self._view = None

    def _start(self) -> None:
        view = self._view = build(self._app)
        loaded = threading.Event()
        thread = threading.Thread(
            target=_refresh_forever, args=(weakref.ref(self), view, loaded), name="revocations", daemon=True
        )
        thread.start()
        loaded.wait(FIRST_LOAD_WAIT_S)

    def tick(self, view: RevocationView) -> None:
        """One refresh; a failure is logged (at most every LOG_EVERY_S) and tried again next time."""
        try:
            view.refresh()
            if self._failing_since:
                log.warning("revocations refreshed again after %.1f s", time.monotonic() - self._failing_since)
                self._failing_since = 0.0
        except Exception as exc:  # any failure: the view ages, and past STALE_S requests answer 503
            now = time.monotonic()
            self._failing_since = self._failing_since or now
            if now - self._logged_at >= LOG_EVERY_S:
                self._logged_at = now
                log.warning("cannot refresh the revocations (view %.1f s old): %s", view.age_s, exc)


_views: weakref.WeakSet[ProcessView] = weakref.WeakSet()  # every app's, in this process


def stop_all() -> None:
    """End every refresher of this process (say, before the Redis they read goes away)."""
    for found in list(_views):
        found.stop()


def build(app: Flask) -> RevocationView:
    """A view of the revocations in the Redis at REDIS_URL, on a client of its own with short timeouts; not loaded."""
    client = redis.Redis.from_url(app.config["REDIS_URL"], socket_timeout=1, socket_connect_timeout=1)
    since = scripts.register(client, "revocation_since")
    return RevocationView(
        lambda g, s: since(keys=revocations.KEYS, args=[g, s]), partial(_rebuild, weakref.ref(app), client)
    )


def _rebuild(app_ref: weakref.ref[Flask], client: redis.Redis) -> None:
    """Load Redis's entries from the database's rows (they were missing)."""
    app = app_ref()
    if app is None:
        raise RuntimeError("the app is gone")
    with app.app_context(), db.engine.connect() as conn:
        found = revocations.rows(conn)
    revocations.restore(client, found)


def _refresh_forever(owner_ref: weakref.ref[ProcessView], view: RevocationView, loaded: threading.Event) -> None:
    """The refresher: one tick every REFRESH_S while its app lives (a weak reference: a test's app can go)."""
    while True:
        began = time.monotonic()
        owner = owner_ref()
        if owner is None or owner._view is not view:
            return
        owner.tick(view)
        del owner
        loaded.set()
        time.sleep(max(0.0, REFRESH_S - (time.monotonic() - began)))


def init_app(app: Flask) -> None:
    """Attach this app's per-process view of revocations (started by the first signed-in request)."""
    app.extensions["revocation_view"] = ProcessView(app)


def start(app: object) -> None:
    """Start this process's refresher now and wait for the first load (a gunicorn worker, after its fork).

    ``app`` is what the worker loaded: gunicorn's error app, when the import failed, has no view.
    """
    found: ProcessView | None = getattr(app, "extensions", {}).get("revocation_view")
    if found is not None:
        found.get()


def current_view() -> RevocationView:
    """The current app's view in this process."""
    found: ProcessView = current_app.extensions["revocation_view"]
    return found.get()
