"""A rush: members ask for a coupon from many threads released at one instant, and what came back."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import requests


@dataclass(frozen=True)
class Answer:
    """One download request: who asked, what came back, when it started and how long it took."""

    member_id: int
    status: int  # 0: no HTTP answer at all (refused, reset, timed out)
    error: str | None
    started: float  # time.monotonic()
    seconds: float


class Rush:
    """Members ask for a coupon from many threads released at one instant, at a bounded pace.

    Each thread goes through its share of the members ``tries`` times, then, while ``keep_going()``
    holds, again (the repeats answer already_issued or sold_out). ``pause_s`` between a thread's
    requests keeps the rush long enough for a fault to land in the middle of it, and leaves CPU for
    the service on two cores. With several servers in ``base``, each try of a member goes to the
    next server, so one member's requests race each other on different instances.
    """

    def __init__(
        self,
        base: str | list[str],
        coupon_id: int,
        members: list[tuple[int, str]],
        threads: int = 32,
        pause_s: float = 0.0,
        keep_going: Callable[[], bool] = lambda: False,
        timeout_s: float = 30.0,
        tries: int = 1,
    ) -> None:
        bases = [base] if isinstance(base, str) else base
        self.urls = [f"{b}/coupons/{coupon_id}/download" for b in bases]
        self.members = members
        self.tries = tries
        self.threads = min(threads, len(members))
        self.pause_s = pause_s
        self.keep_going = keep_going
        self.timeout_s = timeout_s
        self.answers: list[Answer] = []
        self._lock = threading.Lock()
        self._barrier = threading.Barrier(self.threads)
        self._workers = [
            threading.Thread(target=self._client, args=(i, members[i :: self.threads]), daemon=True)
            for i in range(self.threads)
        ]

    def start(self) -> Rush:
        """Start every client; they fire together once all are ready."""
        for t in self._workers:
            t.start()
        return self

    def join(self, timeout_s: float = 120.0) -> list[Answer]:
        """Wait for every client; return every answer."""
        deadline = time.monotonic() + timeout_s
        for t in self._workers:
            t.join(max(deadline - time.monotonic(), 0.1))
        assert not any(t.is_alive() for t in self._workers), "the rush did not finish in time"
        return list(self.answers)

    def _client(self, first: int, share: list[tuple[int, str]]) -> None:
        session = requests.Session()
        self._barrier.wait()
        attempt = 0
        while attempt < self.tries or self.keep_going():
            for i, (member_id, token) in enumerate(share):
                self._ask(session, self.urls[(first + i + attempt) % len(self.urls)], member_id, token)
                if self.pause_s:
                    time.sleep(self.pause_s)
            attempt += 1

    def _ask(self, session: requests.Session, url: str, member_id: int, token: str) -> None:
        started = time.monotonic()
        try:
            resp = session.post(url, headers={"Authorization": f"Bearer {token}"}, timeout=self.timeout_s)
            status, error = resp.status_code, (None if resp.status_code < 300 else _error_code(resp))
        except requests.RequestException as exc:
            status, error = 0, type(exc).__name__
        answer = Answer(member_id, status, error, started, time.monotonic() - started)
        with self._lock:
            self.answers.append(answer)

    def count(self, predicate: Callable[[Answer], bool]) -> int:
        """How many answers so far satisfy ``predicate`` (safe while the rush runs)."""
        with self._lock:
            return sum(1 for a in self.answers if predicate(a))


def _error_code(resp: requests.Response) -> str | None:
    try:
        return str(resp.json().get("error"))
    except ValueError:
        return f"non-JSON {resp.status_code}"


def won(answers: list[Answer]) -> list[int]:
    """Members who got a 2xx, once per 2xx."""
    return [a.member_id for a in answers if 200 <= a.status < 300]


def server_errors(answers: list[Answer], allowed: tuple[int, ...] = ()) -> list[Answer]:
    """Answers that were a 5xx (other than ``allowed``) or no HTTP answer at all."""
    return [a for a in answers if (a.status >= 500 and a.status not in allowed) or a.status == 0]


def during(answers: list[Answer], start: float, end: float) -> list[Answer]:
    """Requests sent and answered entirely inside [start, end] (time.monotonic())."""
    return [a for a in answers if a.started >= start and a.started + a.seconds <= end]


def statuses(answers: list[Answer]) -> dict[int, int]:
    """How many answers of each status."""
    return dict(Counter(a.status for a in answers))
