"""Loaded at start-up by the lab's service processes: the network's delay, and how long each lock hold took.

The lab puts this folder on PYTHONPATH and sets LAB_NET_DIR and LAB_RTT_MS (every run: support.delay
delays and counts each round trip) and LAB_LOCK_HOLD_DIR (lock runs); nothing else imports it. Each
process appends one line per hold, ``<release epoch s> <held us> <round trips>``, to ``hold-<pid>.txt``:
the time from the lock's acquire() returning True to its release() returning, measured with the
holder's monotonic clock, and the round trips the holder made in that time. The line is written
after the release, outside the hold it measures.
"""

import os
import threading
import time
from typing import Any, TextIO

_DIR = os.environ.get("LAB_LOCK_HOLD_DIR")
_NET_DIR = os.environ.get("LAB_NET_DIR")


def _install(folder: str) -> None:
    import redis_lock

    from support.delay import thread_round_trips

    acquire, release = redis_lock.Lock.acquire, redis_lock.Lock.release
    guard = threading.Lock()
    files: dict[int, TextIO] = {}

    def write(line: str) -> None:
        with guard:
            out = files.get(os.getpid())
            if out is None:  # after fork: a file of this process's own
                out = files[os.getpid()] = open(os.path.join(folder, f"hold-{os.getpid()}.txt"), "a", buffering=1)
            out.write(line)

    def timed_acquire(self: Any, *args: Any, **kwargs: Any) -> Any:
        got = acquire(self, *args, **kwargs)
        if got:
            self._lab_held_at = time.perf_counter()
            self._lab_trips_at = thread_round_trips()
        return got

    def timed_release(self: Any) -> Any:
        try:
            return release(self)
        finally:
            held_at = self.__dict__.pop("_lab_held_at", None)
            if held_at is not None:
                trips = thread_round_trips() - self.__dict__.pop("_lab_trips_at", 0)
                write(f"{time.time():.6f} {(time.perf_counter() - held_at) * 1e6:.0f} {trips}\n")

    redis_lock.Lock.acquire, redis_lock.Lock.release = timed_acquire, timed_release


if _NET_DIR:
    from support.delay import install

    install(float(os.environ.get("LAB_RTT_MS") or 0), _NET_DIR)
if _DIR:
    _install(_DIR)
