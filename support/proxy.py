"""A TCP proxy on loopback that loses a reply for real: the server gets the request, the client never the answer.

It forwards to a TCP address or to a unix socket (an embedded Redis), whichever the server was given as.

Armed on a byte pattern, it acts on the next client chunk that contains it:

- ``arm_drop_reply``: forward the chunk, wait for the server's answer (so the server has executed
  it), then close both sides without relaying it. The client sees a reset connection.
- ``arm_late``: close the client's side at once, forward the chunk ``delay_s`` later, wait for the
  answer, then close. The client sees a reset; the server executes the request afterwards (a
  COMMIT that lands late).

Everything else is forwarded both ways unchanged. Threads are daemons, connections are bounded,
and ``stop()`` (or leaving the ``with`` block) closes every socket.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass

CHUNK_BYTES = 65_536
MAX_LINKS = 256  # connections at once; more are refused
REPLY_WAIT_S = 5.0  # how long to wait for the server's answer to a request whose reply is lost


@dataclass
class _Arm:
    pattern: bytes
    delay_s: float | None  # None: drop the reply; a number: forward that much later
    times: int


def _close(sock: socket.socket) -> None:
    """Shut down and close, waking any thread blocked on it; never raise."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


class _Link:
    """One client connection and its upstream connection, pumped by two threads."""

    def __init__(self, proxy: Proxy, client: socket.socket, server: socket.socket) -> None:
        self.proxy, self.client, self.server = proxy, client, server
        self.muted = False  # the server's answers are no longer relayed
        self.answered = threading.Event()  # an answer arrived while muted

    def start(self) -> None:
        for target in (self._upstream, self._downstream):
            threading.Thread(target=target, daemon=True).start()

    def close(self) -> None:
        _close(self.client)
        _close(self.server)

    def _upstream(self) -> None:
        try:
            while data := self.client.recv(CHUNK_BYTES):
                arm = self.proxy._take(data)
                if arm is None:
                    self.server.sendall(data)
                    continue
                self.muted = True
                if arm.delay_s is None:
                    self.server.sendall(data)
                else:
                    _close(self.client)
                    if self.proxy._stopping.wait(arm.delay_s):
                        break
                    self.server.sendall(data)
                self.answered.wait(REPLY_WAIT_S)
                self.proxy._acted(arm)
                break
        except OSError:
            pass
        finally:
            self.proxy._forget(self)

    def _downstream(self) -> None:
        try:
            while data := self.server.recv(CHUNK_BYTES):
                if self.muted:
                    self.answered.set()
                    continue
                self.client.sendall(data)
        except OSError:
            pass
        finally:
            self.answered.set()
            if not self.muted:  # a muted link is closed by its upstream side once it has acted
                self.proxy._forget(self)


Upstream = tuple[str, int] | str  # (host, port), or the path of a unix socket


def _connect(upstream: Upstream) -> socket.socket:
    """A connection to ``upstream``, blocking once made."""
    if isinstance(upstream, str):
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.settimeout(5)
        try:
            server.connect(upstream)
        except OSError:
            server.close()
            raise
    else:
        server = socket.create_connection(upstream, timeout=5)
    server.settimeout(None)
    return server


class Proxy:
    """Forward 127.0.0.1:``port`` to ``upstream``; arm it to lose one reply."""

    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = int(self._listener.getsockname()[1])
        self._lock = threading.Lock()
        self._arms: list[_Arm] = []
        self._links: set[_Link] = set()
        self._stopping = threading.Event()
        self.acted = 0  # requests whose reply was lost, the request forwarded and answered
        self._accepting = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> Proxy:
        self._accepting.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def arm_drop_reply(self, pattern: bytes, times: int = 1) -> None:
        """The next ``times`` client chunks containing ``pattern`` reach the server; their answers are lost."""
        with self._lock:
            self._arms.append(_Arm(pattern, None, times))

    def arm_late(self, pattern: bytes, delay_s: float) -> None:
        """The next chunk with ``pattern``: the client is cut off at once, the server gets it ``delay_s`` later."""
        with self._lock:
            self._arms.append(_Arm(pattern, delay_s, 1))

    def stop(self) -> None:
        """Stop accepting and close every connection."""
        self._stopping.set()
        _close(self._listener)
        with self._lock:
            links = list(self._links)
        for link in links:
            link.close()
        if self._accepting.is_alive():
            self._accepting.join(2)

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                server = _connect(self.upstream)
            except OSError:
                _close(client)
                continue
            link = _Link(self, client, server)
            with self._lock:
                if len(self._links) >= MAX_LINKS:
                    link.close()
                    continue
                self._links.add(link)
            link.start()

    def _take(self, data: bytes) -> _Arm | None:
        with self._lock:
            for arm in self._arms:
                if arm.pattern in data:
                    arm.times -= 1
                    if arm.times == 0:
                        self._arms.remove(arm)
                    return arm
        return None

    def _acted(self, _arm: _Arm) -> None:
        with self._lock:
            self.acted += 1

    def _forget(self, link: _Link) -> None:
        link.close()
        with self._lock:
            self._links.discard(link)
