"""The lock strategy, the baseline: a distributed lock per coupon around stock, duplicate check and INSERT."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import redis_lock
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from strategies import keys, scripts, state
from strategies.base import Outcome, Unavailable, member_coupon

log = logging.getLogger(__name__)


class LockStrategy:
    """python-redis-lock per coupon; inside it, Redis stock, a SELECT for a duplicate, INSERT, commit.

    What keeps the guarantees if a holder outlives ``lock_expire_s`` (a slow database) and a
    second request takes the lock alongside it:

    - no oversell: the stock unit is taken by an atomic conditional decrement (lua/take_stock.lua)
      before the commit, so two holders can never both take the last unit; the one that finds
      none rolls its INSERT back and answers sold_out.
    - no double issue: UNIQUE(member_id, coupon_id) refuses the second INSERT.

    A failed commit notes the member in ``keys.unsettled`` and settles it: the unit returns only
    once a fresh connection shows the row is absent. If the database cannot be asked (it went away
    with the commit), the unit stays spent meanwhile (never oversell) and the next request that
    takes the lock once the database is back settles it.
    """

    def __init__(
        self, client: Any, engine: sa.Engine, lock_expire_s: int = 5, lock_wait_s: int = 3, **_settings: Any
    ) -> None:
        self._client = client
        self._engine = engine
        self._expire_s = lock_expire_s
        self._wait_s = lock_wait_s
        self._take_stock = scripts.register(client, "take_stock")

    def issue(self, coupon_id: int, member_id: int) -> Outcome:
        """Give ``coupon_id`` to ``member_id`` under the coupon's lock and commit the row."""
        pipe = self._client.pipeline(transaction=False)  # one round trip; both keys share the coupon's slot
        pipe.hgetall(keys.coupon(coupon_id))
        pipe.exists(keys.unsettled(coupon_id))
        raw, unsettled = pipe.execute()
        coupon = state.from_hash(raw)
        if coupon is None:
            return Outcome.NOT_FOUND
        closed = state.window_outcome(coupon)
        if closed:
            return Outcome(closed)
        # Stock only comes back by settling an unknown commit, so sold out needs no lock unless one waits.
        if coupon.stock <= 0 and not unsettled:
            return Outcome.SOLD_OUT
        # strict=False: the client may be a RedisCluster; the name's hash tag keeps it on one slot.
        lock = redis_lock.Lock(self._client, keys.issue_lock(coupon_id), expire=self._expire_s, strict=False)
        if not lock.acquire(timeout=self._wait_s):
            raise Unavailable(f"lock on coupon {coupon_id} not had within {self._wait_s} s")
        try:
            return self._issue_locked(coupon_id, member_id)
        finally:
            try:
                lock.release()
            except redis_lock.NotAcquired:
                log.warning("lock on coupon %s expired while held; stock and UNIQUE kept the guarantees", coupon_id)

    def _issue_locked(self, coupon_id: int, member_id: int) -> Outcome:
        pipe = self._client.pipeline(transaction=False)
        pipe.hget(keys.coupon(coupon_id), "stock")
        pipe.smembers(keys.unsettled(coupon_id))
        stock, unsettled = pipe.execute()
        if unsettled:
            self._settle(coupon_id, unsettled)
            stock = self._client.hget(keys.coupon(coupon_id), "stock")
        if stock is None or int(stock) <= 0:
            return Outcome.SOLD_OUT
        with self._engine.connect() as conn:
            if self._has_row(conn, coupon_id, member_id):
                return Outcome.ALREADY_ISSUED
            try:
                conn.execute(
                    sa.insert(member_coupon).values(
                        member_id=member_id, coupon_id=coupon_id, issued_at=datetime.now(UTC).replace(tzinfo=None)
                    )
                )
            except IntegrityError:
                conn.rollback()
                return Outcome.ALREADY_ISSUED
            if not self._take_stock(keys=[keys.coupon(coupon_id)]):
                conn.rollback()
                return Outcome.SOLD_OUT
            try:
                conn.commit()
            except sa.exc.DBAPIError as exc:
                self._after_failed_commit(coupon_id, member_id)
                raise Unavailable(f"commit failed: {exc.orig}") from exc
        return Outcome.ISSUED

    def _after_failed_commit(self, coupon_id: int, member_id: int) -> None:
        """The commit's outcome is unknown: note the member, then settle at once if the database answers.

        Noted first, so that if settling cannot happen now (the database went away with the commit)
        the unit stays spent (never oversell) until the next lock holder settles it.
        """
        try:
            self._client.sadd(keys.unsettled(coupon_id), member_id)
        except Exception:  # Redis is gone too: the unit stays spent, an undersell of one
            log.exception("could not note the unknown commit of coupon %s member %s", coupon_id, member_id)
            return
        try:
            self._settle(coupon_id, {str(member_id).encode()})
        except Exception as exc:
            log.warning("commit of coupon %s for member %s is unknown, settling later: %s", coupon_id, member_id, exc)

    def _settle(self, coupon_id: int, members: set[bytes]) -> None:
        """Return to stock the unit of each unknown commit whose row is absent; called under the lock."""
        with self._engine.connect() as conn:
            absent = [m for m in members if not self._has_row(conn, coupon_id, int(m))]
        for member in members:
            # SREM first and once: whoever removes the member gives its unit back, exactly once.
            if self._client.srem(keys.unsettled(coupon_id), member) and member in absent:
                self._client.hincrby(keys.coupon(coupon_id), "stock", 1)
        log.info("settled %s unknown commits of coupon %s: %s without a row", len(members), coupon_id, len(absent))

    @staticmethod
    def _has_row(conn: sa.Connection, coupon_id: int, member_id: int) -> bool:
        query = (
            sa.select(sa.literal(1))
            .select_from(member_coupon)
            .where(member_coupon.c.member_id == member_id, member_coupon.c.coupon_id == coupon_id)
            .limit(1)
        )
        return conn.scalar(query) is not None
