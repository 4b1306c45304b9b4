"""The report's lines for a target-mode run: what was rushed, from where, and what could not be measured."""

from __future__ import annotations

from typing import Any


def target_lines(config: dict[str, Any]) -> list[str]:
    """The target's URLs, the remote workers, and each figure not taken with its reason (none: not target mode)."""
    if not config.get("targets"):
        return []
    remote = config.get("locust_workers_remote") or 0
    return [
        f"- **Target:** {', '.join(config['targets'])} (a deployment the lab did not start); "
        f"database {config.get('database_version') or config['database']}; Redis {config['redis']}",
        f"- **Locust workers:** {config['locust_workers']} on this machine, {remote} remote",
        *(f"- **Not measured:** {gap}" for gap in config.get("not_measured", [])),
    ]


def api_cost_known(config: dict[str, Any]) -> bool:
    """False when a target-mode run could not read the API's CPU: no capacity plan can be drawn from it."""
    return not any(gap.startswith("API CPU") for gap in config.get("not_measured", []))
