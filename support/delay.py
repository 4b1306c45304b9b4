"""A network round trip's delay, injected where the clients wait, and a count of every round trip.

``install(rtt_ms)`` wraps redis-py's and PyMySQL's connections in the calling process: the answer to
each request (a command, a pipeline, a statement, a COMMIT, a ping) is handed to the caller one RTT
after its first bytes arrived. A client waits for every answer before it sends again, so each
round trip adds one RTT to every chain of them, as a network would; the only difference is that
the server sees a command half an RTT sooner than over a network, which changes no chain's length
(a lock's hold from one holder's SET to the next holder's SET counts the same round trips either
way). A blocked reader (a lock waiter's BLPOP) gets its wake-up one RTT after the server sent it,
where a network takes half, and its next command reaches the server at once, where a network
takes the other half: the next holder still takes the lock one RTT after the release reached the
server. With ``rtt_ms`` 0 nothing waits, and the round trips are still counted.

Why in the clients rather than a proxy between the tiers (this kernel has no netem): nothing is
forwarded, so nothing can limit throughput or reorder bytes, and no process of its own competes
for the two cores; a thread's ``time.sleep`` (timer slack set to 1 ns) resolves tens of
microseconds where an event loop's timers round up to whole milliseconds; and one pause a round
trip, not one a direction, means one more wake-up of the thread a round trip, not two. What
comes after the sleep (the timer's slack, the wait for a CPU and for the GIL) is corrected as it
goes: each pause asks for the RTT less the median overshoot seen so far, down to nothing, so the
median pause is the RTT. Over a network a thread waits for the GIL while the answer is in flight;
here it waits after its sleep, so a pause that must wait for the GIL longer than the RTT lasts as
long as that wait, as the network's round trip would. The pause's measured wall time is what the
lab reports as the RTT delivered. What it leaves
out: connecting (a new connection's handshake is not delayed; the pools keep their connections)
and bandwidth (loopback's).

What it delivered is recorded per process: round trips to Redis and to the database, pauses,
the wall time they took, the CPU they cost the process, and the wall time of the round trips
themselves, per tier (``stats_dir``, one file a process, one cumulative line every ``FLUSH_S``):
``<epoch s> <redis> <database> <pauses> <slept s> <cpu s> <redis wait s> <database wait s>``.
"""

from __future__ import annotations

import ctypes
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FLUSH_S = 0.25  # how often a process appends its cumulative counts
OVERSHOOT_STEP_S = 5e-6  # how far each pause moves the correction: the median pause converges on the RTT
PR_SET_TIMERSLACK = 29  # prctl(2): the thread's timer slack, in ns (default 50 us)
BLOCKING = b"BLPOP"  # a command whose answer waits on another client (a lock waiter's wake-up)


@dataclass
class Counts:
    """Cumulative counts of one process (or, summed, of several)."""

    redis: float = 0
    database: float = 0
    pauses: float = 0
    slept_s: float = 0.0
    cpu_s: float = 0.0
    redis_wait_s: float = 0.0  # wall time from sending to the answer's arrival, delay included (BLPOP's not)
    database_wait_s: float = 0.0

    def minus(self, other: Counts) -> Counts:
        """The counts between ``other`` (earlier) and these."""
        return Counts(*(a - b for a, b in zip(self.line(), other.line(), strict=True)))

    def line(self) -> tuple[float, ...]:
        """The counts in the stats file's order."""
        return (
            self.redis,
            self.database,
            self.pauses,
            self.slept_s,
            self.cpu_s,
            self.redis_wait_s,
            self.database_wait_s,
        )


_counts = Counts()
_guard = threading.Lock()
_local = threading.local()  # this thread's own round trips: (redis, database)
_overshoot_s = [0.0]  # the sleeps' median overshoot so far, subtracted from the next
_rtt_s = [0.0]  # the delay of one round trip
_flusher: dict[str, Any] = {"pid": None}


def set_rtt(rtt_ms: float) -> None:
    """Change the RTT from now on (``install`` sets it first)."""
    _rtt_s[0] = max(rtt_ms, 0.0) / 1000


def thread_round_trips() -> int:
    """Round trips this thread has made to Redis and the database so far."""
    return int(getattr(_local, "trips", 0))


def _slack() -> None:
    """Timer slack of 1 ns for this thread: a sleep then ends when asked, not up to 50 us later."""
    if not getattr(_local, "slack", False):
        _local.slack = True
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_TIMERSLACK, 1, 0, 0, 0)
        except (OSError, AttributeError):
            pass


def pause(seconds: float) -> None:
    """Wait ``seconds`` in this thread (the GIL released), counting the wall and CPU time it took."""
    if seconds <= 0:
        return
    _slack()
    wall, cpu = time.perf_counter(), time.thread_time()
    time.sleep(max(seconds - _overshoot_s[0], 0.0))
    slept, used = time.perf_counter() - wall, time.thread_time() - cpu
    with _guard:
        step = OVERSHOOT_STEP_S if slept > seconds else -OVERSHOOT_STEP_S
        # Up to the whole RTT: a thread that waits for the GIL or a CPU after its pause then waits
        # while its RTT runs, as over a network, where the answer's flight and that wait overlap.
        _overshoot_s[0] = min(max(_overshoot_s[0] + step, 0.0), seconds)
        _counts.pauses += 1
        _counts.slept_s += slept
        _counts.cpu_s += used


def _count(tier: str) -> None:
    _local.trips = thread_round_trips() + 1
    with _guard:
        setattr(_counts, tier, getattr(_counts, tier) + 1)


def _waited(tier: str, seconds: float) -> None:
    with _guard:
        name = f"{tier}_wait_s"
        setattr(_counts, name, getattr(_counts, name) + seconds)


def counts() -> Counts:
    """This process's counts so far."""
    with _guard:
        return Counts(*_counts.line())


def _reset_after_fork() -> None:
    global _guard
    _guard = threading.Lock()
    for name, value in vars(Counts()).items():
        setattr(_counts, name, value)


def _flush_forever(folder: Path) -> None:
    path = folder / f"net-{os.getpid()}.txt"
    last: tuple[float, ...] = ()
    while True:
        now = counts().line()
        if now != last:
            with open(path, "a") as out:
                out.write(f"{time.time():.3f} " + " ".join(f"{v:.6f}" for v in now) + "\n")
            last = now
        time.sleep(FLUSH_S)


def _ensure_flusher(folder: Path | None) -> None:
    """One flushing thread per process, started in each process (threads do not survive a fork)."""
    if folder is None or _flusher["pid"] == os.getpid():
        return
    with _guard:
        if _flusher["pid"] == os.getpid():
            return
        _flusher["pid"] = os.getpid()
    threading.Thread(target=_flush_forever, args=(folder,), daemon=True, name="net-stats").start()


def _blocking(command: Any) -> bool:
    """Whether a packed Redis command waits on another client (its wait is no round trip's time)."""
    first = command[0] if isinstance(command, list | tuple) and command else command
    head = first[:24].encode() if isinstance(first, str) else bytes(first[:24])
    return BLOCKING in head


def install(rtt_ms: float, stats_dir: str | Path | None = None) -> None:
    """Delay every Redis and database round trip of this process by ``rtt_ms``, and count them."""
    import pymysql.connections
    import redis.connection

    set_rtt(rtt_ms)
    folder = Path(stats_dir) if stats_dir else None
    os.register_at_fork(after_in_child=_reset_after_fork)

    def sent(conn: Any, tier: str, started: float | None) -> None:
        _ensure_flusher(folder)
        conn._net_reply_due = (tier, started)
        _count(tier)

    def answered(conn: Any) -> None:
        due = conn.__dict__.pop("_net_reply_due", None)
        if due is not None:
            pause(_rtt_s[0])
            tier, started = due
            if started is not None:
                _waited(tier, time.perf_counter() - started)

    redis_conn: Any = redis.connection.AbstractConnection
    send, read = redis_conn.send_packed_command, redis_conn.read_response

    def send_packed_command(self: Any, command: Any, check_health: bool = True) -> None:
        started = time.perf_counter()
        send(self, command, check_health)
        sent(self, "redis", None if _blocking(command) else started)  # a blocked wait is no round trip's time

    def read_response(self: Any, *args: Any, **kwargs: Any) -> Any:
        response = read(self, *args, **kwargs)
        answered(self)
        return response

    redis_conn.send_packed_command, redis_conn.read_response = send_packed_command, read_response

    mysql_conn: Any = pymysql.connections.Connection
    execute, read_packet = mysql_conn._execute_command, mysql_conn._read_packet

    def _execute_command(self: Any, command: int, sql: Any) -> Any:
        started = time.perf_counter()
        result = execute(self, command, sql)
        sent(self, "database", started)
        return result

    def _read_packet(self: Any, *args: Any, **kwargs: Any) -> Any:
        packet = read_packet(self, *args, **kwargs)
        answered(self)
        return packet

    mysql_conn._execute_command, mysql_conn._read_packet = _execute_command, _read_packet


def read_stats(folder: Path) -> dict[int, list[tuple[float, Counts]]]:
    """Every process's cumulative lines in ``folder``, by pid, in time order."""
    out: dict[int, list[tuple[float, Counts]]] = {}
    for path in sorted(folder.glob("net-*.txt")):
        rows = [line.split() for line in path.read_text().splitlines() if line.strip()]
        pid = int(path.stem.split("-")[1])
        out[pid] = [(float(r[0]), Counts(*(float(v) for v in r[1:]))) for r in rows if len(r) == 8]
    return out


def counts_at(stats: dict[int, list[tuple[float, Counts]]], when: float) -> Counts:
    """Every process's counts summed, each as of its last line at or before ``when`` (0 before its first)."""
    total = Counts()
    for lines in stats.values():
        before = [c for t, c in lines if t <= when]
        if before:
            total = Counts(*(a + b for a, b in zip(total.line(), before[-1].line(), strict=True)))
    return total
