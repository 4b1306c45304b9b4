"""Lua scripts from lua/, registered once per client (EVALSHA, reloaded on NOSCRIPT)."""

from __future__ import annotations

import weakref
from functools import cache
from pathlib import Path
from typing import Any

LUA_DIR = Path(__file__).resolve().parent.parent / "lua"

# Script objects of each client, made on first use: a client lives as long as its process.
_BOUND: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()

# Return codes shared by issue.lua and lock_check.lua.
OK, NOT_FOUND, NOT_STARTED, ENDED, ALREADY_ISSUED, SOLD_OUT = range(6)


@cache
def source(name: str) -> str:
    """The text of ``lua/<name>.lua``."""
    return (LUA_DIR / f"{name}.lua").read_text()


def register(client: Any, name: str) -> Any:
    """The callable Script for ``lua/<name>.lua`` bound to ``client``, registered once."""
    scripts = _BOUND.setdefault(client, {})
    if name not in scripts:
        scripts[name] = client.register_script(source(name))
    return scripts[name]
