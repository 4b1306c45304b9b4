"""Access tokens for the load generator: the N lowest-id members, in K CSV files of ``member_id,access_token``.

``python -m experiments.tokens --count N --files K --out DIR`` writes ``DIR/tokens_00.csv`` ... (the study used
100,000 tokens in 10 files). Tokens are signed with JWT_SECRET_KEY from the environment, as the service signs
them, and expire after JWT_ACCESS_TOKEN_EXPIRES_S; mint them with the same secret the service under test runs.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

from app.auth import access_token_for
from app.extensions import db
from app.models import Member
from experiments.data.seed import app_for

PROGRESS_EVERY = 10_000  # tokens between two progress reports


class TokenError(ValueError):
    """The tokens asked for cannot be written."""


def split(count: int, files: int) -> list[int]:
    """``count`` split into ``files`` parts as evenly as possible, the larger parts first."""
    if files < 1 or count < files:
        raise TokenError(f"need at least one token a file: --count {count} --files {files}")
    base, extra = divmod(count, files)
    return [base + (1 if i < extra else 0) for i in range(files)]


def write_token_files(
    count: int, files: int, out_dir: Path, progress: Callable[[int, int], None] | None = None
) -> list[Path]:
    """Mint tokens for the ``count`` lowest-id members into ``files`` CSVs in ``out_dir`` (app context needed)."""
    sizes = split(count, files)
    ids = db.session.scalars(sa.select(Member.id).where(Member.role == "member").order_by(Member.id).limit(count)).all()
    if len(ids) < count:
        raise TokenError(
            f"{count:,} tokens asked for but only {len(ids):,} members exist; "
            "seed more first (python -m experiments.seed --members N)"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    width = max(2, len(str(files - 1)))
    paths: list[Path] = []
    done = 0
    for index, size in enumerate(sizes):
        path = out_dir / f"tokens_{index:0{width}d}.csv"
        with open(path, "w", newline="", encoding="utf-8") as out:
            rows = csv.writer(out, lineterminator="\n")
            rows.writerow(("member_id", "access_token"))
            for member_id in ids[done : done + size]:
                rows.writerow((member_id, access_token_for(member_id, "member")))
                done += 1
                if progress and (done % PROGRESS_EVERY == 0 or done == count):
                    progress(done, count)
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    """Write the token files; a clear message and a non-zero exit when they cannot be written."""
    cli = argparse.ArgumentParser(prog="python -m experiments.tokens", description=__doc__.split("\n")[0])
    cli.add_argument("--count", type=int, required=True, help="tokens in all (N members)")
    cli.add_argument("--files", type=int, required=True, help="CSV files to spread them over")
    cli.add_argument("--out", type=Path, required=True, help="directory of the files")
    cli.add_argument("--database-url", help="the database (default: DATABASE_URL, else the embedded SQLite file)")
    args = cli.parse_args(argv)
    started = time.monotonic()

    def show(done: int, total: int) -> None:
        elapsed = max(time.monotonic() - started, 1e-9)
        print(f"tokens {done:>9,} / {total:,}  {done / elapsed:,.0f}/s  {elapsed:.1f} s", file=sys.stderr, flush=True)

    try:
        split(args.count, args.files)  # refuse bad counts before connecting
        app = app_for(args.database_url)
        with app.app_context():
            try:
                paths = write_token_files(args.count, args.files, args.out, show)
            finally:
                db.engine.dispose()
    except TokenError as exc:
        print(f"tokens: {exc}", file=sys.stderr)
        return 2
    except sa.exc.SQLAlchemyError as exc:  # no traceback for an unreachable or unmigrated database
        print(f"tokens: database error: {getattr(exc, 'orig', None) or exc}", file=sys.stderr)
        return 1
    print(f"wrote {args.count:,} tokens to {len(paths)} files in {args.out} in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
