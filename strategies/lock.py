"""The lock strategy, the baseline: a distributed lock per coupon around stock, duplicate check and INSERT."""

from __future__ import annotations

import logging
from typing import Any

import redis_lock
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from strategies import keys, scripts
from strategies.base import Outcome, Unavailable
from strategies.clock import utcnow
from strategies.tables import insert_ignore, member_coupon

log = logging.getLogger(__name__)

# lock_check.lua's and take_stock.lua's answers other than "go on".
CHECKED = {
    scripts.NOT_FOUND: Outcome.NOT_FOUND,
    scripts.NOT_STARTED: Outcome.NOT_STARTED,
    scripts.ENDED: Outcome.ENDED,
    scripts.SOLD_OUT: Outcome.SOLD_OUT,
}


class LockStrategy:
    """python-redis-lock per coupon; inside it, Redis stock, a SELECT for a duplicate, INSERT, commit.

    What keeps the guarantees if a holder outlives ``lock_expire_s`` (a slow database) and a
    second request takes the lock alongside it:

    - no oversell: the stock unit is taken by an atomic conditional decrement (lua/take_stock.lua)
      before the commit, so two holders can never both take the last unit; the one that finds
      none rolls its INSERT back and answers sold_out.
    - no double issue: UNIQUE(member_id, coupon_id) refuses the second INSERT.

    The window is judged by Redis's clock before the lock (most refusals wait for nothing), and
    again by take_stock.lua, the moment of decision: a request that waited for the lock past the
    end (``ends_at``, or the seller's close) takes no unit, rolls its INSERT back and answers
    ended. Its row's ``issued_at``, read before that decision, is earlier than the end.

    What keeps "no unit lost": take_stock.lua notes the member in ``keys.unsettled`` in the same
    atomic step as the decrement, and the note is removed only once the commit is known to have
    succeeded. A member left noted (the script's reply was lost, the commit failed or its outcome
    is unknown, the process was killed) is settled by the next lock holder by *completing* the
    issue: INSERT IGNORE of the member's row. The unit was taken for that member, so the row is
    what it was for. Settling this way is safe against a commit that lands late (the server got
    COMMIT, the client saw the connection reset): the settler's INSERT waits on the unique key
    until the first transaction ends, then either finds its row or writes it; one row either
    way, and the unit never returns to stock. Stock therefore never comes back.
    """

    def __init__(
        self, client: Any, engine: sa.Engine, lock_expire_s: int = 5, lock_wait_s: int = 3, **_settings: Any
    ) -> None:
        self._client = client
        self._engine = engine
        self._expire_s = lock_expire_s
        self._wait_s = lock_wait_s
        self._check = scripts.register(client, "lock_check")
        self._take_stock = scripts.register(client, "take_stock")

    def issue(self, coupon_id: int, member_id: int) -> Outcome:
        """Give ``coupon_id`` to ``member_id`` under the coupon's lock and commit the row."""
        # One round trip, by Redis's clock: existence, window, and sold out with nothing to settle.
        code = int(self._check(keys=[keys.coupon(coupon_id), keys.unsettled(coupon_id)]))
        if code in CHECKED:
            return CHECKED[code]
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
        unsettled = self._client.smembers(keys.unsettled(coupon_id))
        if unsettled:
            self.settle(coupon_id, [int(m) for m in unsettled])
        # The window may have ended while this request waited for the lock: judged again now, and
        # once more at the decision (take_stock.lua), both by Redis's clock.
        code = int(self._check(keys=[keys.coupon(coupon_id), keys.unsettled(coupon_id)]))
        if code != scripts.OK:
            return Outcome.SOLD_OUT if code == scripts.NOT_FOUND else CHECKED[code]  # state gone: nothing to take
        with self._engine.connect() as conn:
            if self._has_row(conn, coupon_id, member_id):
                return Outcome.ALREADY_ISSUED
            try:
                conn.execute(
                    sa.insert(member_coupon).values(member_id=member_id, coupon_id=coupon_id, issued_at=utcnow())
                )
            except IntegrityError:
                conn.rollback()
                return Outcome.ALREADY_ISSUED
            taken = int(self._take_stock(keys=[keys.coupon(coupon_id), keys.unsettled(coupon_id)], args=[member_id]))
            if taken != scripts.OK:  # ended meanwhile, or none left
                conn.rollback()
                return CHECKED[taken]
            try:
                conn.commit()
                failed = None
            except sa.exc.DBAPIError as exc:
                failed = exc
        # Settle only once the connection is given back: a transaction still open on it would hold
        # the row's unique key, and the settler's INSERT would wait on it.
        if failed is not None:
            return self._after_failed_commit(coupon_id, member_id, failed)
        self._client.srem(keys.unsettled(coupon_id), member_id)  # if this fails, settling finds the row
        return Outcome.ISSUED

    def _after_failed_commit(self, coupon_id: int, member_id: int, exc: sa.exc.DBAPIError) -> Outcome:
        """The commit's outcome is unknown: settle now if the database answers, else leave it noted."""
        try:
            self.settle(coupon_id, [member_id])
        except Exception as settle_exc:
            log.warning(
                "commit of coupon %s for member %s is unknown, settling later: %s", coupon_id, member_id, settle_exc
            )
            raise Unavailable(f"commit failed: {exc.orig}") from exc
        return Outcome.ISSUED  # settled: the member's row exists now

    def settle(self, coupon_id: int, members: list[int]) -> None:
        """Complete the row of each noted member (INSERT IGNORE), then drop the note; called under the lock."""
        rows = [{"member_id": m, "coupon_id": coupon_id, "issued_at": utcnow()} for m in members]
        with self._engine.begin() as conn:
            conn.execute(insert_ignore(), rows)
        self._client.srem(keys.unsettled(coupon_id), *members)
        log.info("settled %s unknown commits of coupon %s", len(members), coupon_id)

    @staticmethod
    def _has_row(conn: sa.Connection, coupon_id: int, member_id: int) -> bool:
        query = (
            sa.select(sa.literal(1))
            .select_from(member_coupon)
            .where(member_coupon.c.member_id == member_id, member_coupon.c.coupon_id == coupon_id)
            .limit(1)
        )
        return conn.scalar(query) is not None
