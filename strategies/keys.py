"""Redis key names: every key one issuance touches carries the coupon's hash tag ``{<id>}``."""

# The coupon registry: coupons whose queue may still receive or hold winners; the scheduler
# sweeps it instead of scanning the keyspace. Not part of any script, so it needs no hash tag.
COUPON_REGISTRY = "coupon_registry"

# Coupons with winners waiting in their queue (lua): added after each win, removed by the drain
# once the queue is empty. The scheduler's tick reads only this, so it costs O(coupons being
# drained), not O(coupons ever registered).
DRAIN_DUE = "drain_due"

# Open coupons found at the service's start with a row but no Redis state (a Redis that lost its
# data): /healthz reports them until ``flask rebuild-state`` restores them.
MISSING_STATE = "coupons_missing_state"

# On the broker: the scheduler's last tick (epoch seconds by Redis's clock). Beside the coupons: the rows the drain
# committed in all (a counter /metrics exposes; the drain runs outside the API's processes).
SCHEDULER_HEARTBEAT = "scheduler_heartbeat"
DRAIN_ROWS = "drain_rows_total"


def coupon(coupon_id: int) -> str:
    """Hash of the coupon's state: name, quantity, stock, starts_ms, ends_ms."""
    return f"coupon:{{{coupon_id}}}"


def winners(coupon_id: int) -> str:
    """Set of members who won the coupon (lua strategy)."""
    return f"coupon_winners:{{{coupon_id}}}"


def queue(coupon_id: int) -> str:
    """Sorted set of winners waiting for persistence, scored by acceptance time in microseconds."""
    return f"issuable_coupon_queue:{{{coupon_id}}}"


def unsettled(coupon_id: int) -> str:
    """Set of members holding a unit whose row is not known committed (lock): settled by completing the row."""
    return f"coupon_unsettled:{{{coupon_id}}}"


def issue_lock(coupon_id: int) -> str:
    """Name of the lock strategy's per-coupon lock: the coupon hash's own name, on purpose.

    python-redis-lock keeps a lock named N at ``lock:N`` and wakes its waiters through
    ``lock-signal:N``, so the lock's keys are not the hash; named after it, they say whose lock
    they are and carry the coupon's hash tag (one slot with the hash on a cluster).
    """
    return coupon(coupon_id)


def drain_lock(coupon_id: int) -> str:
    """Name of the lock that keeps one drain per coupon at a time."""
    return f"drain:{{{coupon_id}}}"


def drain_enqueued(coupon_id: int) -> str:
    """Marker on the broker: a drain job for the coupon is waiting in RQ's queue."""
    return f"drain_enqueued:{coupon_id}"


def member_pending(member_id: int) -> str:
    """Set of coupons the member won whose row may not be committed yet (lua): their list reads it."""
    return f"member_pending:{member_id}"
