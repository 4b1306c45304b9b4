"""The cost benchmarks run end to end on a small scale, and the embedded Redis's command line works."""

from __future__ import annotations

from pathlib import Path

import pytest

from app import embedded
from experiments.studies import coupon_count, hotpath
from tests.helpers import TEST_SECRET


@pytest.fixture
def bench_env(monkeypatch: pytest.MonkeyPatch, services, migrated) -> None:
    """The suite's database and Redis, as the benchmarks read them from the environment."""
    monkeypatch.setenv("DATABASE_URL", services.database_url)
    monkeypatch.setenv("REDIS_URL", services.redis_url)
    monkeypatch.setenv("JWT_SECRET_KEY", TEST_SECRET)


def test_coupon_count_compares_one_coupon_with_many(bench_env, capsys: pytest.CaptureFixture[str]) -> None:
    assert coupon_count.main(["--coupons", "500", "--repeat", "5"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["path", "1", "coupon", "(us)", "500", "coupons", "(us)", "ratio"]
    rows = {line.split()[0]: float(line.split()[-1]) for line in table[1:]}
    assert set(rows) == {
        "tick_us",
        "member_list_us",
        "download_us",
        "coupon_read_us",
        "list_calls",
        "download_calls",
        "read_calls",
    }
    assert all(ratio > 0 for ratio in rows.values())
    # Counted, not timed: the same request makes the same calls whatever the machine does meanwhile.
    assert all(rows[name] < 1.5 for name in ("list_calls", "download_calls", "read_calls"))


def test_hotpath_prints_each_endpoint_and_the_token_share(bench_env, capsys: pytest.CaptureFixture[str]) -> None:
    assert hotpath.main(["--repeat", "10"]) == 0
    out = capsys.readouterr().out
    for line in ("download (lua, a win)", "download (sold out)", "GET /coupons/<id>", "cached token"):
        assert line in out
    assert "token share of a winning download's CPU:" in out
    assert "CPU us" in out  # the read and the downloads answered as in a rush, or main stops


def test_embedded_redis_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = str(tmp_path)
    assert embedded.main(["status", "--instance", folder]) == 1
    assert embedded.main(["start", "--instance", folder]) == 0
    try:
        assert embedded.main(["status", "--instance", folder]) == 0
        assert (tmp_path / "redis.aof").exists() or (tmp_path / "appendonlydir").exists()  # durable by default
    finally:
        assert embedded.main(["stop", "--instance", folder]) == 0
    assert embedded.main(["stop", "--instance", folder]) == 0
    out = capsys.readouterr().out
    assert "embedded Redis stopped" in out and "no embedded Redis was running" in out
    assert embedded.main(["status", "--instance", folder]) == 1
