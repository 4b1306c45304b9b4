"""The lab's seed and token tools: counts, idempotent reruns, log-in with the seeded password, usable tokens."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask

from app.extensions import db
from app.models import Base, Member, utcnow
from experiments.data import seed as seeding
from experiments.data import seed_load, tokens
from tests.helpers import ROOT, bearer


def table_counts(engine: sa.Engine) -> dict[str, int]:
    """Rows in each of the three tables."""
    with engine.connect() as conn:
        return {
            t: conn.scalar(sa.text(f"SELECT COUNT(*) FROM {t}")) or 0 for t in ("member", "coupon", "member_coupon")
        }


def read_tokens(path: Path) -> list[dict[str, str]]:
    """The rows of one token file."""
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize(("members", "coupons"), [(5, 1), (4, 13), (3, 26), (7, 100)])
def test_pairs_are_distinct_even_at_full_density(members: int, coupons: int) -> None:
    every = list(seeding.pairs(members, coupons, members * coupons))
    assert len(set(every)) == members * coupons
    assert {m for m, _ in every} == set(range(1, members + 1))
    assert {c for _, c in every} == set(range(1, coupons + 1))


def test_seed_counts_then_a_rerun_adds_nothing(app: Flask) -> None:
    with app.app_context():
        first = seeding.seed(db.engine, 50, 7, 120, chunk_rows=40)  # several files a table
        assert (first["member"], first["coupon"], first["member_coupon"]) == (51, 7, 120)  # the seller too
        assert table_counts(db.engine) == {"member": 51, "coupon": 7, "member_coupon": 120}
        again = seeding.seed(db.engine, 50, 7, 120, chunk_rows=40)
        assert (again["member"], again["coupon"], again["member_coupon"]) == (0, 0, 0)
        assert table_counts(db.engine) == {"member": 51, "coupon": 7, "member_coupon": 120}
        with db.engine.connect() as conn:
            seller = conn.execute(sa.text("SELECT id, role FROM member WHERE username = 'seed-seller'")).one()
            assert tuple(seller) == (51, "seller")
            assert conn.scalar(sa.text("SELECT COUNT(*) FROM coupon WHERE seller_id = 51 AND ends_at IS NULL")) == 7
            per_member = conn.execute(sa.text("SELECT COUNT(*) FROM member_coupon GROUP BY member_id")).scalars()
            assert set(per_member) == {3}  # ceil(120 / 50) each, for the first 40 members


def test_a_rerun_fills_the_gaps_of_an_interrupted_one(app: Flask) -> None:
    with app.app_context():
        seeding.seed(db.engine, 50, 7, 120, chunk_rows=40)
        with db.engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM member_coupon WHERE id IN (5, 100)"))
            conn.execute(sa.text("DELETE FROM member WHERE id = 42"))
        again = seeding.seed(db.engine, 50, 7, 120, chunk_rows=40)
        assert (again["member"], again["coupon"], again["member_coupon"]) == (1, 0, 2)
        with db.engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT id, member_id, coupon_id FROM member_coupon ORDER BY id")).all()
        assert [tuple(r) for r in rows] == [(i + 1, m, c) for i, (m, c) in enumerate(seeding.pairs(50, 7, 120))]


def test_seed_skips_ids_the_service_already_owns(app: Flask) -> None:
    with app.app_context():
        db.session.execute(sa.insert(Member).values(id=3, username="ann", password_hash="x", created_at=utcnow()))
        db.session.commit()
        assert seeding.seed(db.engine, 5, 0, 0)["member"] == 4
        assert db.session.scalar(sa.select(Member.username).where(Member.id == 3)) == "ann"
        assert table_counts(db.engine)["member"] == 5


def test_seeded_members_log_in_and_see_their_coupons(app: Flask) -> None:
    with app.app_context():
        seeding.seed(db.engine, 10, 4, 20)
    client = app.test_client()
    reply = client.post("/auth/login", json={"username": "seed3", "password": "password"})
    assert reply.status_code == 200
    mine = client.get("/members/me/coupons", headers=bearer(reply.get_json()["access_token"]))
    assert mine.status_code == 200
    assert sorted(c["coupon_id"] for c in mine.get_json()) == sorted(c for m, c in seeding.pairs(10, 4, 20) if m == 3)
    assert client.post("/auth/login", json={"username": "seed-seller", "password": "password"}).status_code == 200


def test_seed_refuses_pairs_that_do_not_fit(app: Flask) -> None:
    with app.app_context(), pytest.raises(seeding.SeedError, match="do not fit"):
        seeding.seed(db.engine, 3, 2, 7)


def test_seed_on_sqlite_uses_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(seed_load, "BATCH_ROWS", 7)
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'seed.sqlite3'}")
    Base.metadata.create_all(engine)
    assert seeding.seed(engine, 20, 3, 45)["member_coupon"] == 45
    assert seeding.seed(engine, 20, 3, 45)["member_coupon"] == 0
    assert table_counts(engine) == {"member": 21, "coupon": 3, "member_coupon": 45}
    engine.dispose()


def test_token_files_split_evenly_and_work(app: Flask, tmp_path: Path) -> None:
    with app.app_context():
        seeding.seed(db.engine, 12, 1, 1)
        paths = tokens.write_token_files(10, 3, tmp_path)
    assert [p.name for p in paths] == ["tokens_00.csv", "tokens_01.csv", "tokens_02.csv"]
    assert paths[0].read_text().splitlines()[0] == "member_id,access_token"
    files = [read_tokens(p) for p in paths]
    assert [len(f) for f in files] == [4, 3, 3]
    assert [int(r["member_id"]) for f in files for r in f] == list(range(1, 11))  # lowest ids, role member
    client = app.test_client()
    reply = client.get("/members/me/coupons", headers=bearer(files[0][0]["access_token"]))
    assert reply.status_code == 200
    assert [c["coupon_id"] for c in reply.get_json()] == [1]


@pytest.mark.parametrize(
    ("count", "files", "message"), [(20, 2, "only 12 members"), (2, 3, "at least one"), (5, 0, "at least one")]
)
def test_tokens_refuse_what_cannot_be_written(app: Flask, tmp_path: Path, count: int, files: int, message: str) -> None:
    with app.app_context():
        seeding.seed(db.engine, 12, 0, 0)
        with pytest.raises(tokens.TokenError, match=message):
            tokens.write_token_files(count, files, tmp_path)
    assert not list(tmp_path.iterdir())


def test_scale_shrinks_the_study_and_counts_override_it() -> None:
    args = seeding.parser().parse_args(["--scale", "0.01", "--coupons", "3"])
    assert seeding.counts(args) == (10_000, 3, 100_000)
    assert seeding.counts(seeding.parser().parse_args([])) == (1_000_000, 100_000, 10_000_000)


def test_command_lines(app: Flask, process_env: dict[str, str], tmp_path: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", *args]
        return subprocess.run(command, cwd=ROOT, env=process_env, capture_output=True, text=True, timeout=60)

    seeded = run("experiments.seed", "--members", "30", "--coupons", "5", "--member-coupons", "60")
    assert seeded.returncode == 0, seeded.stderr
    assert "member_coupon 60 (+60)" in seeded.stdout
    assert "rows/s" in seeded.stderr
    minted = run("experiments.tokens", "--count", "30", "--files", "2", "--out", str(tmp_path))
    assert minted.returncode == 0, minted.stderr
    token = read_tokens(tmp_path / "tokens_01.csv")[-1]
    assert token["member_id"] == "30"
    assert app.test_client().get("/members/me/coupons", headers=bearer(token["access_token"])).status_code == 200
    refused = run("experiments.tokens", "--count", "31", "--files", "2", "--out", str(tmp_path / "more"))
    assert refused.returncode != 0
    assert "only 30 members exist" in refused.stderr
    assert "Traceback" not in refused.stderr
