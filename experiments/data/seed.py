"""Dummy data at the original study's scale: members, coupons, and member_coupon rows.

``python -m experiments.seed [--scale F] [--members N --coupons N --member-coupons N] [--database-url URL]``

The default is the study's scale (1,000,000 members, 100,000 coupons, 10,000,000 member_coupon rows);
``--scale 0.01`` shrinks all three. MariaDB/MySQL get CSV files bulk loaded with ``LOAD DATA LOCAL INFILE``
(a minute or two at full scale); SQLite gets batched inserts, for small scales.

Ids are explicit so that a rerun adds nothing and does not fail: members 1..N are ``seed<id>`` (role member,
password ``password``), coupons 1..C are ``seed coupon <id>`` of one seller ``seed-seller`` (id N+1 when it is
created), and member_coupon rows 1..M hold distinct (member, coupon) pairs. The seed expects to own those id
ranges: a row whose id or unique key exists already (an account the service created at signup, a coupon the
drain persisted) is skipped (IGNORE), not overwritten, and seeded pairs may then name such a member. A chunk
whose id range is full already is not sent at all, so a rerun at full scale takes seconds. A rerun with
other counts tops up by id (pair i is row i + 1 for the counts given); a pair that exists already is skipped.

The seeded coupons live in the database only; they are not loaded into Redis, so they cannot be downloaded.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from typing import TypedDict

import sqlalchemy as sa
from flask import Flask
from werkzeug.security import generate_password_hash

from app import create_app
from app.extensions import db
from experiments.data.seed_load import Progress, Row, TableLoad, ignore, insert_batches, load_files, local_infile
from strategies import clock

STUDY_MEMBERS = 1_000_000
STUDY_COUPONS = 100_000
STUDY_MEMBER_COUPONS = 10_000_000
CHUNK_ROWS = 1_000_000  # rows per CSV file loaded at once (MariaDB/MySQL)
PASSWORD = "password"  # noqa: S105 - every seeded account's password, by design
SELLER = "seed-seller"
COUPON_QUANTITY = 100
COUPON_STARTS_AT = datetime(2024, 1, 1)  # in the past: the coupons are open
PAIR_OFFSET = 7  # member m's first coupon is (m * PAIR_OFFSET) mod C + 1


class SeedError(ValueError):
    """The counts cannot be seeded, or the database is not ready for them."""


class SeedResult(TypedDict):
    """Rows each table gained (the seller included in member), and the seconds it took."""

    member: int
    coupon: int
    member_coupon: int
    seconds: float


def pairs(members: int, coupons: int, member_coupons: int, start: int = 0) -> Iterator[tuple[int, int]]:
    """The member_coupon pairs from ``start`` on: distinct, k = ceil(M/N) coupons a member, members in order.

    Pair i is member m = i // k + 1 with coupon (m * 7 + j * step) mod C + 1, j = i % k. The step is coprime
    with C, so a member's k coupons differ while k <= C. Member order keeps the UNIQUE index's inserts sequential.
    """
    yield from _pairs(start, member_coupons, math.ceil(member_coupons / members), pair_step(coupons), coupons)


def _pairs(start: int, stop: int, per_member: int, step: int, coupons: int) -> Iterator[tuple[int, int]]:
    for i in range(start, stop):
        m, j = divmod(i, per_member)
        yield m + 1, ((m + 1) * PAIR_OFFSET + j * step) % coupons + 1


def _member_coupon_rows(start: int, stop: int, per_member: int, step: int, coupons: int) -> Iterator[Row]:
    """Rows (id, member_id, coupon_id): pair i gets id i + 1."""
    for i, (m, c) in enumerate(_pairs(start, stop, per_member, step, coupons), start + 1):
        yield i, m, c


def pair_step(coupons: int) -> int:
    """The smallest step from 13 up that is coprime with ``coupons``."""
    step = 13
    while math.gcd(step, coupons) != 1:
        step += 1
    return step


def seed(
    engine: sa.Engine,
    members: int,
    coupons: int,
    member_coupons: int,
    progress: Progress | None = None,
    *,
    chunk_rows: int = CHUNK_ROWS,
) -> SeedResult:
    """Insert what is missing of members 1..N, coupons 1..C and M member_coupon pairs; count what was added."""
    _check(engine, members, coupons, member_coupons)
    started = time.monotonic()
    now = clock.utcnow()
    password_hash = generate_password_hash(PASSWORD)  # once: a scrypt hash takes tens of milliseconds
    added = {"member": 0, "coupon": 0, "member_coupon": 0}
    seller_id = None
    if coupons:
        seller_id, added["member"] = _ensure_seller(engine, members + 1, password_hash, now)
    load = load_files if local_infile(engine) else insert_batches
    for spec in _table_loads(members, coupons, member_coupons, seller_id, password_hash, now):
        if spec.total:
            if progress:
                progress(spec.table, 0, spec.total)
            added[spec.table] += load(engine, spec, progress, chunk_rows)
    return SeedResult(
        member=added["member"],
        coupon=added["coupon"],
        member_coupon=added["member_coupon"],
        seconds=time.monotonic() - started,
    )


def _table_loads(
    members: int, coupons: int, member_coupons: int, seller_id: int | None, password_hash: str, now: datetime
) -> list[TableLoad]:
    per_member, step = math.ceil(member_coupons / members) if members else 1, pair_step(coupons or 1)
    return [
        TableLoad(
            "member",
            ("id", "username"),
            members,
            lambda a, b: ((i, f"seed{i}") for i in range(a + 1, b + 1)),
            {"password_hash": password_hash, "role": "member", "created_at": now},
        ),
        TableLoad(
            "coupon",
            ("id", "name"),
            coupons,
            lambda a, b: ((i, f"seed coupon {i}") for i in range(a + 1, b + 1)),
            {"quantity": COUPON_QUANTITY, "starts_at": COUPON_STARTS_AT, "seller_id": seller_id, "created_at": now},
        ),
        TableLoad(
            "member_coupon",
            ("id", "member_id", "coupon_id"),
            member_coupons,
            lambda a, b: _member_coupon_rows(a, b, per_member, step, coupons),
            {"issued_at": now},
        ),
    ]


def _check(engine: sa.Engine, members: int, coupons: int, member_coupons: int) -> None:
    if min(members, coupons, member_coupons) < 0:
        raise SeedError("counts must not be negative")
    if member_coupons and not (members and coupons):
        raise SeedError("member_coupon rows need at least one member and one coupon")
    if member_coupons > members * coupons:
        raise SeedError(f"{member_coupons} distinct pairs do not fit in {members} members x {coupons} coupons")
    missing = [t for t in ("member", "coupon", "member_coupon") if not sa.inspect(engine).has_table(t)]
    if missing:
        raise SeedError(f"table(s) {', '.join(missing)} missing: run `flask --app wsgi db upgrade` first")


def _ensure_seller(engine: sa.Engine, wanted_id: int, password_hash: str, now: datetime) -> tuple[int, int]:
    """The seed seller's id (created at ``wanted_id`` if free, else wherever), and 1 if it was created."""
    find = sa.text("SELECT id FROM member WHERE username = :u")
    row = {"u": SELLER, "h": password_hash, "t": now}
    with engine.begin() as conn:
        found = conn.scalar(find, row)
        if found is not None:
            return int(found), 0
        or_ignore = ignore(engine)
        conn.execute(
            sa.text(
                f"INSERT {or_ignore} INTO member (id, username, password_hash, role, created_at) "
                "VALUES (:id, :u, :h, 'seller', :t)"
            ),
            {**row, "id": wanted_id},
        )
        found = conn.scalar(find, row)
        if found is None:  # the id is someone else's: let the database choose one
            conn.execute(
                sa.text("INSERT INTO member (username, password_hash, role, created_at) VALUES (:u, :h, 'seller', :t)"),
                row,
            )
            found = conn.scalar(find, row)
    return int(found), 1


class StderrProgress:
    """Progress lines on stderr: rows done of all, rows a second, seconds elapsed; one a second at most."""

    def __init__(self, every_s: float = 1.0) -> None:
        self._every_s = every_s
        self._started: dict[str, float] = {}
        self._shown = 0.0

    def __call__(self, table: str, done: int, total: int) -> None:
        """Show one table's progress."""
        now = time.monotonic()
        if done == 0:
            self._started[table] = now
            return
        started = self._started.setdefault(table, now)
        if done < total and now - self._shown < self._every_s:
            return
        self._shown = now
        elapsed = max(now - started, 1e-9)
        sys.stderr.write(
            f"{table:>13}  {done:>11,} / {total:,} rows  {done / elapsed:>10,.0f} rows/s  {elapsed:6.1f} s\n"
        )
        sys.stderr.flush()


def app_for(database_url: str | None) -> Flask:
    """The app's configuration (DATABASE_URL), ``database_url`` overriding it.

    These tools touch the database only, so no embedded Redis is started (``create_app()`` only names its socket).
    """
    return create_app({"SQLALCHEMY_DATABASE_URI": database_url} if database_url else None)


def counts(args: argparse.Namespace) -> tuple[int, int, int]:
    """Members, coupons and member_coupon rows: the study's scaled by --scale, unless given one by one."""
    if args.scale < 0:
        raise SeedError("--scale must not be negative")
    scaled = (round(n * args.scale) for n in (STUDY_MEMBERS, STUDY_COUPONS, STUDY_MEMBER_COUPONS))
    given = (args.members, args.coupons, args.member_coupons)
    members, coupons, member_coupons = (g if g is not None else s for g, s in zip(given, scaled, strict=True))
    return members, coupons, member_coupons


def parser() -> argparse.ArgumentParser:
    """The command line."""
    cli = argparse.ArgumentParser(prog="python -m experiments.seed", description=__doc__.split("\n")[0])
    cli.add_argument("--scale", type=float, default=1.0, help="fraction of the study's scale (default 1)")
    cli.add_argument("--members", type=int, help=f"members (default {STUDY_MEMBERS:,} x scale)")
    cli.add_argument("--coupons", type=int, help=f"coupons (default {STUDY_COUPONS:,} x scale)")
    cli.add_argument(
        "--member-coupons", type=int, help=f"member_coupon rows (default {STUDY_MEMBER_COUPONS:,} x scale)"
    )
    cli.add_argument("--database-url", help="the database (default: DATABASE_URL, else the embedded SQLite file)")
    return cli


def main(argv: list[str] | None = None) -> int:
    """Seed, show progress on stderr, print a summary line."""
    args = parser().parse_args(argv)
    try:
        members, coupons, member_coupons = counts(args)
        app = app_for(args.database_url)
        with app.app_context():
            try:
                result = seed(db.engine, members, coupons, member_coupons, StderrProgress())
            finally:
                db.engine.dispose()
    except SeedError as exc:
        print(f"seed: {exc}", file=sys.stderr)
        return 2
    except sa.exc.SQLAlchemyError as exc:  # no traceback for an unreachable or unmigrated database
        print(f"seed: database error: {getattr(exc, 'orig', None) or exc}", file=sys.stderr)
        return 1
    print(
        f"seeded member {members:,} (+{result['member']:,} new), coupon {coupons:,} (+{result['coupon']:,}), "
        f"member_coupon {member_coupons:,} (+{result['member_coupon']:,}) in {result['seconds']:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
