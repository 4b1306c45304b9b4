"""The embedded Redis attached to the launcher: its child, stopped with the block, reported if it cannot start."""

from __future__ import annotations

import os
from pathlib import Path

import psutil
import pytest

from app import embedded


@pytest.fixture
def no_redis_url(monkeypatch: pytest.MonkeyPatch) -> None:
    """The embedded default: REDIS_URL unset."""
    monkeypatch.delenv("REDIS_URL", raising=False)


def test_an_attached_server_is_a_child_of_its_starter_and_ends_with_the_block(tmp_path: Path, no_redis_url) -> None:
    """In the block it answers as this process's child; after it, the server is gone and reaped, its socket removed."""
    with embedded.serving(tmp_path, attached=True) as url:
        assert url == embedded.socket_url(tmp_path) and embedded.answers(url)
        pid = int((tmp_path / "redis.pid").read_text())
        assert psutil.Process(pid).ppid() == os.getpid()
    assert not psutil.pid_exists(pid)
    assert not (tmp_path / "redis.sock").exists()


def test_an_attached_server_that_cannot_start_says_so_at_once(tmp_path: Path, no_redis_url) -> None:
    """A server that exits at start fails the start with its status, not after the 30 s wait for an answer."""
    (tmp_path / "redis.aof").mkdir()  # where its append-only file must go: Redis cannot open it and exits
    with pytest.raises(RuntimeError, match="exited with status 1; see its redis.log"):
        with embedded.serving(tmp_path, attached=True):
            pass
    assert "append-only file" in (tmp_path / "redis.log").read_text()
    assert not embedded.answers(embedded.socket_url(tmp_path))
