"""A coupon's issuance state in Redis: the one module that reads and writes the coupon hash.

Registration loads it in one step and never overwrites it; downloads read it; a close ends its
window; the scripts alone take stock, and nothing ever gives a unit back; the scheduler and the
audit read stock and window. Every window decision uses Redis's clock (``now_ms``), the one the
scripts read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from strategies import keys, scripts

RESTORE_CHUNK = 10_000  # members or coupons per command when rebuilding or checking state


@dataclass(frozen=True)
class CouponState:
    """What Redis knows of a coupon; times are epoch milliseconds, ``ends_ms`` 0 for none."""

    name: str
    quantity: int
    stock: int
    starts_ms: int
    ends_ms: int


def register(client: Any, coupon_id: int, name: str, quantity: int, starts_ms: int, ends_ms: int) -> bool:
    """Load a new coupon in one step; False (and nothing changed) if the coupon has state already."""
    # In the registry first: any winner the coupon gets can then be found by the scheduler's sweep.
    client.sadd(keys.COUPON_REGISTRY, coupon_id)
    loaded = scripts.register(client, "register")(
        keys=[keys.coupon(coupon_id)], args=[name, quantity, starts_ms, ends_ms]
    )
    return bool(loaded)


def register_many(client: Any, coupons: list[tuple[int, str, int, int, int]]) -> None:
    """Load many new coupons (id, name, quantity, starts_ms, ends_ms) in one pipeline; as register, never overwrites."""
    script = scripts.register(client, "register")
    pipe = client.pipeline(transaction=False)
    for coupon_id, name, quantity, starts_ms, ends_ms in coupons:
        pipe.sadd(keys.COUPON_REGISTRY, coupon_id)
        script(keys=[keys.coupon(coupon_id)], args=[name, quantity, starts_ms, ends_ms], client=pipe)
    pipe.execute()


def restore(
    client: Any, coupon_id: int, name: str, quantity: int, starts_ms: int, ends_ms: int, winners: list[int]
) -> bool:
    """Rebuild a coupon whose state Redis lost, from its rows; False (nothing changed) if it has state.

    ``winners`` are the members with a row: they go into the winners set first, so that once the
    hash appears (stock = quantity - rows) none of them can win a second unit.
    """
    if client.exists(keys.coupon(coupon_id)):
        return False
    for start in range(0, len(winners), RESTORE_CHUNK):
        client.sadd(keys.winners(coupon_id), *winners[start : start + RESTORE_CHUNK])
    client.sadd(keys.COUPON_REGISTRY, coupon_id)
    loaded = scripts.register(client, "register")(
        keys=[keys.coupon(coupon_id)], args=[name, quantity, starts_ms, ends_ms, quantity - len(winners)]
    )
    return bool(loaded)


def missing(client: Any, coupon_ids: list[int]) -> list[int]:
    """Those of ``coupon_ids`` that Redis holds no state for (pipelined, in chunks)."""
    found: list[int] = []
    for start in range(0, len(coupon_ids), RESTORE_CHUNK):
        chunk = coupon_ids[start : start + RESTORE_CHUNK]
        pipe = client.pipeline(transaction=False)
        for coupon_id in chunk:
            pipe.exists(keys.coupon(coupon_id))
        found += [c for c, exists in zip(chunk, pipe.execute(), strict=True) if not exists]
    return found


def now_ms(client: Any, coupon_id: int | None = None) -> int:
    """Redis's clock in epoch milliseconds (on a cluster, the clock of the coupon's node)."""
    route = keys.coupon(coupon_id) if coupon_id is not None else keys.COUPON_REGISTRY
    return int(scripts.register(client, "now")(keys=[route]))


def read(client: Any, coupon_id: int) -> CouponState | None:
    """The coupon's state in one round trip, or None if Redis does not know it."""
    return from_hash(client.hgetall(keys.coupon(coupon_id)))


def read_many(client: Any, coupon_ids: list[int]) -> list[CouponState | None]:
    """Several coupons' states in one pipelined round trip (one per node on a cluster)."""
    pipe = client.pipeline(transaction=False)
    for coupon_id in coupon_ids:
        add_state_read(pipe, coupon_id)
    return [from_hash(raw) for raw in pipe.execute()]


def add_state_read(pipe: Any, coupon_id: int) -> None:
    """Add a read of the coupon hash to ``pipe``; its reply goes through :func:`from_hash`."""
    pipe.hgetall(keys.coupon(coupon_id))


def stock(client: Any, coupon_id: int) -> int | None:
    """Units left (negative never), or None if Redis does not know the coupon."""
    raw = client.hget(keys.coupon(coupon_id), "stock")
    return None if raw is None else int(raw)


def close(client: Any, coupon_id: int) -> int | None:
    """End the window now by Redis's clock, never later than it ends already; its ends_ms, None if unknown.

    One script with the downloads' window check: every download Redis runs before it may win,
    every one after it answers ENDED. A retried close returns the first close's time.
    """
    ends_ms = int(scripts.register(client, "close")(keys=[keys.coupon(coupon_id)]))
    return ends_ms or None


def from_hash(raw: dict[Any, Any]) -> CouponState | None:
    """A CouponState from the coupon hash's fields as HGETALL returns them; None for an empty hash."""
    if not raw:
        return None
    field = {_text(k): _text(v) for k, v in raw.items()}
    return CouponState(
        name=field["name"],
        quantity=int(field["quantity"]),
        stock=int(field["stock"]),
        starts_ms=int(field["starts_ms"]),
        ends_ms=int(field["ends_ms"]),
    )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
