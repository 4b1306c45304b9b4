"""Revocations: an operator ends a member's access; the database keeps it, Redis tells every API process.

Each command (ban, unban, delete-user, set-role, set-password) commits its change and the member's
``revocation`` row in one transaction, then records the same entry in the broker Redis (REDIS_URL):
a hash of entries and a log (a sorted set of member ids scored by a sequence number) that each API
process reads incrementally into its in-memory view (app/revocation_view.py). The broker, not the
cluster: it is always one standalone Redis that every API process already reaches, so one hash and
one log need no hash tags, and a revocation is one member's, not one coupon's.

Durability: the database is the record, Redis the broadcast. A Redis that lost the entries has no
``revocations_meta``; recording then refuses, and whoever finds them missing (a command, or an API
process's refresher) rebuilds them whole from the ``revocation`` rows under a new generation, which
makes every view reload. A command records its own entry again after a rebuild, so an older rebuild
cannot hide it.

Clocks: a token's ``iat`` is stamped by the API process that signed it (whole seconds, rounded
down); ``revoked_at`` by Redis's clock, in whole seconds, plus MARGIN_S, so that a token signed just
before the command on a host up to MARGIN_S ahead of Redis is still refused (``iat <= revoked_at``).
A log-in signs a token only once its own clock has passed the member's ``revoked_at`` (``admit``).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from werkzeug.security import generate_password_hash

from app.errors import BadCredentials
from app.extensions import db
from app.models import Coupon, Member, Revocation
from strategies import scripts, state

log = logging.getLogger(__name__)

REVOKED, BANNED, DELETED = "revoked", "banned", "deleted"
ALWAYS = 2**62  # refused_up_to of a banned or deleted member: every token, whenever it was signed
MARGIN_S = 1  # how far ahead of Redis's clock a signing host may be and still have its tokens revoked
MAX_LOGIN_WAIT_S = 3.0  # a log-in waits at most this long for its clock to pass revoked_at

# On the broker Redis (see the module's docstring for why not the cluster).
META = "revocations_meta"  # hash: generation (of the last rebuild), seq (of the last entry)
ENTRIES = "revocations"  # hash: member id -> "<status>:<revoked_at>"
LOG = "revocations_log"  # sorted set: member id scored by the seq of its latest entry
KEYS = [META, ENTRIES, LOG]
RECORD_ATTEMPTS = 3


class UnknownMember(LookupError):
    """No member has that username."""


class CannotDelete(RuntimeError):
    """The account cannot be deleted (a seller's coupons name it)."""


def encode(status: str, revoked_at: int) -> str:
    """An entry as Redis keeps it."""
    return f"{status}:{revoked_at}"


def refused_up_to(entry: str | bytes) -> int:
    """The latest ``iat`` an entry refuses: every token of a banned or deleted member."""
    text = entry.decode() if isinstance(entry, bytes) else entry
    status, _, revoked_at = text.partition(":")
    return int(revoked_at) if status == REVOKED else ALWAYS


def revocation_time(client: Any) -> int:
    """Now by Redis's clock, in whole seconds, plus the margin for signing hosts ahead of it."""
    return state.now_ms(client) // 1000 + MARGIN_S


def record(client: Any, member_id: int, entry: str) -> None:
    """Tell every API process: write the entry and log it; rebuild from the database if Redis lost them."""
    script = scripts.register(client, "revocation_record")
    for _ in range(RECORD_ATTEMPTS):
        if script(keys=KEYS, args=[member_id, entry]):
            return
        with db.engine.connect() as conn:
            restore(client, rows(conn))
    raise RuntimeError("the revocations could not be recorded in Redis: they keep being emptied")


def rows(conn: sa.Connection) -> list[tuple[int, str, int]]:
    """Every revocation row: (member id, status, revoked_at)."""
    query = sa.select(Revocation.member_id, Revocation.status, Revocation.revoked_at)
    return [(int(m), str(s), int(r)) for m, s, r in conn.execute(query)]


def restore(client: Any, found: Sequence[tuple[int, str, int]]) -> bool:
    """Load ``found`` as every entry under a new generation, unless Redis has them; whether it loaded."""
    args: list[Any] = [uuid.uuid4().hex]
    for member_id, status, revoked_at in found:
        args += [member_id, encode(status, revoked_at)]
    loaded = bool(scripts.register(client, "revocation_restore")(keys=KEYS, args=args))
    if loaded:
        log.warning("revocations rebuilt in Redis from the database: %s entries", len(found))
    return loaded


def member_named(username: str) -> Member:
    """The member with ``username``; UnknownMember if none."""
    member = db.session.scalar(sa.select(Member).where(Member.username == username))
    if member is None:
        raise UnknownMember(f"no member is named {username!r}")
    return member


def _end_access(client: Any, member: Member, status: str | None, keep_time: bool = False) -> Revocation:
    """Commit the member's revocation row with the session's pending change, then record it in Redis.

    ``status`` None keeps the row's status (a banned member stays banned); ``keep_time`` keeps its
    ``revoked_at`` (an unban: tokens from before the ban stay refused).
    """
    member_id = member.id
    row = db.session.get(Revocation, member_id)
    if row is None:
        row = Revocation(member_id=member_id, status=REVOKED, revoked_at=0)
        db.session.add(row)
    if status is not None:
        row.status = status
    if not keep_time or row.revoked_at == 0:
        row.revoked_at = revocation_time(client)
    db.session.commit()
    record(client, member_id, encode(row.status, row.revoked_at))
    return row


def ban(client: Any, username: str) -> Revocation:
    """Refuse every token of the member and its log-ins until unbanned."""
    return _end_access(client, member_named(username), BANNED)


def unban(client: Any, username: str) -> Revocation | None:
    """Let a banned member log in again (its tokens from before the ban stay refused); None if not banned."""
    member = member_named(username)
    row = db.session.get(Revocation, member.id)
    if row is None or row.status != BANNED:
        return None
    return _end_access(client, member, REVOKED, keep_time=True)


def delete(client: Any, username: str) -> Revocation:
    """Delete the account; its tokens are refused everywhere, its id is never given again."""
    member = member_named(username)
    owned = db.session.scalar(sa.select(sa.func.count()).select_from(Coupon).where(Coupon.seller_id == member.id))
    if owned:
        raise CannotDelete(f"{username!r} is the seller of {owned} coupons: ban the account instead")
    db.session.delete(member)
    return _end_access(client, member, DELETED)


def set_role(client: Any, username: str, role: str) -> Revocation | None:
    """Change the member's role; its tokens (with the old role's claim) are refused. None if unchanged."""
    member = member_named(username)
    if member.role == role:
        return None
    member.role = role
    return _end_access(client, member, None)


def set_password(client: Any, username: str, password: str) -> Revocation:
    """Change the member's password; its tokens are refused."""
    member = member_named(username)
    member.password_hash = generate_password_hash(password)
    return _end_access(client, member, None)


def admit(member_id: int) -> None:
    """At log-in (the password was right): refuse a banned member; sign no token its revocation refuses.

    A banned member answers as a wrong password does (401 bad_credentials, counted by the log-in
    limiter). Right after a role or password change a token signed now would carry an ``iat`` the
    revocation refuses: the log-in waits (at most MAX_LOGIN_WAIT_S) until this host's clock passes it.
    """
    row = db.session.get(Revocation, member_id)
    if row is None:
        return
    if row.status != REVOKED:
        raise BadCredentials()
    wait_s = row.revoked_at + 1 - time.time()
    if 0 < wait_s <= MAX_LOGIN_WAIT_S:
        time.sleep(wait_s)
