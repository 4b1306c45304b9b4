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
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypedDict

import sqlalchemy as sa
from flask import Flask
from werkzeug.security import generate_password_hash

from app import create_app
from app.extensions import db

STUDY_MEMBERS = 1_000_000
STUDY_COUPONS = 100_000
STUDY_MEMBER_COUPONS = 10_000_000
CHUNK_ROWS = 1_000_000  # rows per CSV file loaded at once (MariaDB/MySQL)
BATCH_ROWS = 10_000  # rows per executemany (SQLite, or a server that refuses LOCAL INFILE)
PASSWORD = "password"  # noqa: S105 - every seeded account's password, by design
SELLER = "seed-seller"
COUPON_QUANTITY = 100
COUPON_STARTS_AT = datetime(2024, 1, 1)  # in the past: the coupons are open
PAIR_OFFSET = 7  # member m's first coupon is (m * PAIR_OFFSET) mod C + 1

Row = tuple[int | str, ...]
Progress = Callable[[str, int, int], None]  # (table, rows done, rows in all)


class SeedError(ValueError):
    """The counts cannot be seeded, or the database is not ready for them."""


class SeedResult(TypedDict):
    """Rows each table gained (the seller included in member), and the seconds it took."""

    member: int
    coupon: int
    member_coupon: int
    seconds: float


@dataclass(frozen=True)
class TableLoad:
    """One table to fill: ``columns`` (the id first) vary per row, ``constants`` are one value for all rows."""

    table: str
    columns: tuple[str, ...]
    total: int
    rows: Callable[[int, int], Iterable[Row]]  # rows [start, stop) of the total
    constants: dict[str, Any] = field(default_factory=dict)


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
    now = datetime.now(UTC).replace(tzinfo=None)
    password_hash = generate_password_hash(PASSWORD)  # once: a scrypt hash takes tens of milliseconds
    added = {"member": 0, "coupon": 0, "member_coupon": 0}
    seller_id = None
    if coupons:
        seller_id, added["member"] = _ensure_seller(engine, members + 1, password_hash, now)
    load = _load_files if _local_infile(engine) else _insert_batches
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
        ignore = _ignore(engine)
        conn.execute(
            sa.text(
                f"INSERT {ignore} INTO member (id, username, password_hash, role, created_at) "
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


def _ignore(engine: sa.Engine) -> str:
    return "OR IGNORE" if engine.dialect.name == "sqlite" else "IGNORE"


def _local_infile(engine: sa.Engine) -> bool:
    """Whether this is MariaDB/MySQL and the server accepts LOAD DATA LOCAL INFILE."""
    if engine.dialect.name not in ("mysql", "mariadb"):
        return False
    with engine.connect() as conn:
        return bool(conn.scalar(sa.text("SELECT @@local_infile")))


def _missing_chunks(engine: sa.Engine, spec: TableLoad, size: int) -> list[tuple[int, int]]:
    """Row ranges [start, stop) of ``size`` rows whose ids are not all present (rows start + 1..stop)."""
    full = sa.text(f"SELECT COUNT(*) FROM {spec.table} WHERE id > :start AND id <= :stop")
    chunks = [(start, min(start + size, spec.total)) for start in range(0, spec.total, size)]
    with engine.connect() as conn:
        return [(a, b) for a, b in chunks if conn.scalar(full, {"start": a, "stop": b}) != b - a]


def _write_csv(path: Path, rows: Iterable[Row], width: int) -> Path:
    line = ",".join(["%s"] * width) + "\n"
    with open(path, "w", encoding="utf-8", newline="\n") as out:
        out.writelines(line % row for row in rows)
    return path


def _load_files(engine: sa.Engine, spec: TableLoad, progress: Progress | None, chunk_rows: int) -> int:
    """CSV files of ``chunk_rows`` rows, each loaded while the next one is written; rows added."""
    sets = ", ".join(f"{name} = %({name})s" for name in spec.constants)
    sql = (
        f"LOAD DATA LOCAL INFILE %(path)s IGNORE INTO TABLE {spec.table} CHARACTER SET utf8mb4 "
        f"FIELDS TERMINATED BY ',' LINES TERMINATED BY '\\n' ({', '.join(spec.columns)})"
        + (f" SET {sets}" if sets else "")
    )
    # The app's engine does not enable LOCAL INFILE on the client side: a short-lived engine that does.
    loader = sa.create_engine(engine.url, connect_args={"local_infile": True}, poolclass=sa.pool.NullPool)
    try:
        return _load_chunks(loader, spec, sql, progress, chunk_rows)
    finally:
        loader.dispose()


def _load_chunks(loader: sa.Engine, spec: TableLoad, sql: str, progress: Progress | None, chunk_rows: int) -> int:
    added = 0
    chunks = _missing_chunks(loader, spec, chunk_rows)
    done = spec.total - sum(b - a for a, b in chunks)
    if not chunks:
        _report(progress, spec, done)
        return 0
    with tempfile.TemporaryDirectory(prefix=f"seed-{spec.table}-") as tmp, ThreadPoolExecutor(1) as writer:

        def write(index: int) -> Future[Path]:
            start, stop = chunks[index]
            path = Path(tmp) / f"{spec.table}_{index:04d}.csv"
            return writer.submit(_write_csv, path, spec.rows(start, stop), len(spec.columns))

        pending = write(0)
        for index, (start, stop) in enumerate(chunks):
            path = pending.result()
            if index + 1 < len(chunks):
                pending = write(index + 1)  # Python writes the next file while the server loads this one
            with loader.begin() as conn:
                added += conn.exec_driver_sql(sql, {"path": str(path), **spec.constants}).rowcount
            path.unlink()
            done += stop - start
            _report(progress, spec, done)
    return added


def _report(progress: Progress | None, spec: TableLoad, done: int) -> None:
    if progress:
        progress(spec.table, done, spec.total)


def _insert_batches(engine: sa.Engine, spec: TableLoad, progress: Progress | None, _chunk_rows: int) -> int:
    """INSERT ... IGNORE of ``BATCH_ROWS`` rows a transaction; rows added."""
    names = (*spec.columns, *spec.constants)
    sql = sa.text(
        f"INSERT {_ignore(engine)} INTO {spec.table} ({', '.join(names)}) VALUES ({', '.join(':' + n for n in names)})"
    )
    added = 0
    chunks = _missing_chunks(engine, spec, BATCH_ROWS)
    done = spec.total - sum(b - a for a, b in chunks)
    for start, stop in chunks:
        batch = [dict(zip(spec.columns, row, strict=True)) | spec.constants for row in spec.rows(start, stop)]
        with engine.begin() as conn:
            added += conn.execute(sql, batch).rowcount
        done += stop - start
        _report(progress, spec, done)
    if not chunks:
        _report(progress, spec, done)
    return added


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
    """The app's configuration (DATABASE_URL), ``database_url`` overriding it; no embedded Redis started."""
    config: dict[str, Any] = {}
    if database_url:
        config["SQLALCHEMY_DATABASE_URI"] = database_url
    if not os.environ.get("REDIS_URL"):
        # These tools touch the database only; an unset REDIS_URL would start an embedded server that outlives them.
        config["REDIS_URL"] = "redis://redis-unused-by-experiments.invalid:6379/0"
    return create_app(config)


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
    cli.add_argument("--database-url", help="override DATABASE_URL")
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
