"""Lua scripts from lua/, each after lua/prelude.lua, registered once per client (EVALSHA, reloaded on NOSCRIPT)."""

from __future__ import annotations

import weakref
from functools import cache
from pathlib import Path
from typing import Any

LUA_DIR = Path(__file__).resolve().parent.parent / "lua"

# Script objects of each client, made on first use: a client lives as long as its process.
_BOUND: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()

# Return codes of issue.lua, lock_check.lua and take_stock.lua, as lua/prelude.lua names them.
OK, NOT_FOUND, NOT_STARTED, ENDED, ALREADY_ISSUED, SOLD_OUT = range(6)
PRELUDE = "prelude"  # Redis's clock, the window rule and the codes, put before every script


@cache
def source(name: str) -> str:
    """The script run for ``lua/<name>.lua``: the prelude, then the file's text."""
    return (LUA_DIR / f"{PRELUDE}.lua").read_text() + (LUA_DIR / f"{name}.lua").read_text()


def register(client: Any, name: str) -> Any:
    """The callable Script for ``lua/<name>.lua`` bound to ``client``, registered once."""
    scripts = _BOUND.setdefault(client, {})
    if name not in scripts:
        scripts[name] = client.register_script(source(name))
    return scripts[name]
