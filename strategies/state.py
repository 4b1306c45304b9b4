"""A coupon's issuance state in Redis: written in one step at registration, read on every download."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from strategies import keys


@dataclass(frozen=True)
class CouponState:
    """What Redis knows of a coupon; times are epoch milliseconds, ``ends_ms`` 0 for none."""

    name: str
    quantity: int
    stock: int
    starts_ms: int
    ends_ms: int


def register(client: Any, coupon_id: int, name: str, quantity: int, starts_ms: int, ends_ms: int) -> None:
    """Load a new coupon: one HSET, so a download never sees half a coupon."""
    # Registry first: any winner the coupon gets can then be found by the scheduler.
    client.sadd(keys.REGISTRY, coupon_id)
    client.hset(
        keys.coupon(coupon_id),
        mapping={"name": name, "quantity": quantity, "stock": quantity, "starts_ms": starts_ms, "ends_ms": ends_ms},
    )


def read(client: Any, coupon_id: int) -> CouponState | None:
    """The coupon's state in one round trip, or None if Redis does not know it."""
    return from_hash(client.hgetall(keys.coupon(coupon_id)))


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


def window_outcome(state: CouponState, now_ms: int | None = None) -> str | None:
    """``not_started`` or ``ended`` when the window is closed at ``now_ms``, else None."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    if now_ms < state.starts_ms:
        return "not_started"
    if state.ends_ms and now_ms >= state.ends_ms:
        return "ended"
    return None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
