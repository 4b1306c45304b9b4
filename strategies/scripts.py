"""Lua scripts from lua/, registered once per client (EVALSHA, reloaded on NOSCRIPT)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

LUA_DIR = Path(__file__).resolve().parent.parent / "lua"


@cache
def source(name: str) -> str:
    """The text of ``lua/<name>.lua``."""
    return (LUA_DIR / f"{name}.lua").read_text()


def register(client: Any, name: str) -> Any:
    """A callable Script for ``lua/<name>.lua`` bound to ``client``."""
    return client.register_script(source(name))
