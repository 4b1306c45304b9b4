"""Network namespaces for load processes: each its own network stack, joined to this one by a veth pair.

A process started with ``Namespace.prefix`` (``ip netns exec NAME``) has no loopback shared with the lab: it
reaches this machine only at ``Namespace.host_ip``, over its pair, as a load machine reaches the lab's over a
network. Needs root and iproute2; ``namespaces`` yields None where the machine does not allow them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass


@dataclass(frozen=True)
class Namespace:
    """One namespace: its name, this machine's address on its pair, and the command prefix that runs in it."""

    name: str
    host_ip: str

    @property
    def prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.name]


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=10)


def net_namespace(pid: int | str = "self") -> str:
    """The network namespace a process is in (e.g. ``net:[4026531840]``)."""
    return os.readlink(f"/proc/{pid}/ns/net")


@contextmanager
def _one(index: int) -> Iterator[Namespace]:
    tag = f"cr{os.getpid() % 100_000}"
    name, outside, inside = f"{tag}-ns{index}", f"{tag}h{index}", f"{tag}n{index}"
    subnet = f"10.231.{(os.getpid() % 100) * 2 + index}"
    _ip("netns", "add", name)
    try:
        _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
        _ip("link", "set", inside, "netns", name)
        _ip("addr", "add", f"{subnet}.1/24", "dev", outside)
        _ip("link", "set", outside, "up")
        for args in (
            ("addr", "add", f"{subnet}.2/24", "dev", inside),
            ("link", "set", inside, "up"),
            ("link", "set", "lo", "up"),
            ("route", "add", "default", "via", f"{subnet}.1"),
        ):
            _ip("netns", "exec", name, "ip", *args)
        yield Namespace(name, f"{subnet}.1")
    finally:  # deleting the namespace deletes the end inside it, and with it the pair
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)
        subprocess.run(["ip", "link", "del", outside], capture_output=True, timeout=10)


@contextmanager
def namespaces(count: int) -> Iterator[list[Namespace] | None]:
    """``count`` namespaces, each joined to this one; None where ``ip netns`` is not allowed here."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        yield None
        return
    with ExitStack() as stack:
        try:
            made = [stack.enter_context(_one(i)) for i in range(count)]
        except (subprocess.CalledProcessError, OSError):
            made = None
        yield made
