"""Issuance strategies: one protocol, a registry from ``ISSUE_STRATEGY`` to a class. No Flask here."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from strategies.base import IssueStrategy, Outcome, Unavailable
from strategies.lock import LockStrategy
from strategies.lua import LuaStrategy

STRATEGIES: dict[str, Callable[..., IssueStrategy]] = {
    "lock": LockStrategy,
    "lua": LuaStrategy,
}


def build(name: str, **deps: Any) -> IssueStrategy:
    """Build the strategy called ``name`` from its dependencies (client, engine, settings)."""
    try:
        factory = STRATEGIES[name]
    except KeyError:
        raise ValueError(f"unknown issue strategy {name!r}; known: {', '.join(STRATEGIES)}") from None
    return factory(**deps)


__all__ = ["STRATEGIES", "IssueStrategy", "Outcome", "Unavailable", "build"]
