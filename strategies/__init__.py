"""Issuance strategies: one protocol, a registry from ``ISSUE_STRATEGY`` to a class. No Flask here."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from strategies.base import IssueStrategy, Outcome, Unavailable
from strategies.lock import LockStrategy
from strategies.lua import LuaStrategy

REGISTRY: dict[str, Callable[..., IssueStrategy]] = {
    "lock": LockStrategy,
    "lua": LuaStrategy,
}


def build(name: str, **deps: Any) -> IssueStrategy:
    """Build the strategy called ``name`` from its dependencies (client, engine, settings)."""
    try:
        factory = REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown issue strategy {name!r}; known: {', '.join(REGISTRY)}") from None
    return factory(**deps)


__all__ = ["REGISTRY", "IssueStrategy", "Outcome", "Unavailable", "build"]
