"""A coupon's drain queue filled through the real issue script, as a rush would leave it."""

from __future__ import annotations

from typing import Any

from redis.cluster import RedisCluster

from strategies import keys, scripts, state


def fill_queue(client: Any, coupon_id: int, winners: int, chunk: int = 5000) -> None:
    """Register a coupon of ``winners`` in Redis and accept members 1..winners through lua/issue.lua."""
    state.register(client, coupon_id, "bench", winners, 0, 0)
    target = script_node(client, coupon_id)
    issue = scripts.register(target, "issue")
    tags = [keys.coupon(coupon_id), keys.winners(coupon_id), keys.queue(coupon_id)]
    for first in range(1, winners + 1, chunk):
        pipe = target.pipeline(transaction=False)
        for member_id in range(first, min(first + chunk, winners + 1)):
            issue(keys=tags, args=[member_id], client=pipe)
        replies = pipe.execute()
        if set(replies) != {0}:
            raise RuntimeError(f"the issue script refused some bench winners: {set(replies)}")


def script_node(client: Any, coupon_id: int) -> Any:
    """Where the coupon's scripts can be pipelined: the client itself, or on a cluster its slot's primary.

    A RedisCluster refuses EVALSHA in a pipeline. Every key of one coupon shares its hash slot, so
    a plain connection to the node that owns that slot runs the same pipeline unchanged.
    """
    if isinstance(client, RedisCluster):
        return client.get_node_from_key(keys.coupon(coupon_id)).redis_connection
    return client
