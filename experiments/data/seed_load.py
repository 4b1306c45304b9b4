"""How the seed's rows reach the database: CSV files through LOAD DATA LOCAL INFILE, else batched INSERTs."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

BATCH_ROWS = 10_000  # rows per executemany (SQLite, or a server that refuses LOCAL INFILE)

Row = tuple[int | str, ...]
Progress = Callable[[str, int, int], None]  # (table, rows done, rows in all)


@dataclass(frozen=True)
class TableLoad:
    """One table to fill: ``columns`` (the id first) vary per row, ``constants`` are one value for all rows."""

    table: str
    columns: tuple[str, ...]
    total: int
    rows: Callable[[int, int], Iterable[Row]]  # rows [start, stop) of the total
    constants: dict[str, Any] = field(default_factory=dict)


def ignore(engine: sa.Engine) -> str:
    return "OR IGNORE" if engine.dialect.name == "sqlite" else "IGNORE"


def local_infile(engine: sa.Engine) -> bool:
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


def load_files(engine: sa.Engine, spec: TableLoad, progress: Progress | None, chunk_rows: int) -> int:
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


def insert_batches(engine: sa.Engine, spec: TableLoad, progress: Progress | None, _chunk_rows: int) -> int:
    """INSERT ... IGNORE of ``BATCH_ROWS`` rows a transaction; rows added."""
    names = (*spec.columns, *spec.constants)
    sql = sa.text(
        f"INSERT {ignore(engine)} INTO {spec.table} ({', '.join(names)}) VALUES ({', '.join(':' + n for n in names)})"
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
