"""The durability experiment end to end at toy scale: one private Redis per setting, the lab against each."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from flask import Flask

from experiments.studies import durability
from support.redis_servers import redis_args


@pytest.mark.slow
def test_durability_runs_the_lab_against_each_setting(
    app: Flask, process_env: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    for name, value in process_env.items():  # DATABASE_URL and the secret, as the lab's processes need them
        monkeypatch.setenv(name, value)
    args = ["--duration", "2", "--users", "5", "--quantity", "100", "--out", str(tmp_path)]
    lab_args = ["--members", "40", "--locust-workers", "1", "--web-workers", "1"]
    assert durability.main(args + lab_args) == 0

    (run,) = tmp_path.glob("durability-*")
    summary = json.loads((run / "durability.json").read_text())
    rows = {r["setting"]: r for r in summary["rows"]}
    assert list(rows) == ["always", "everysec", "none"]
    for r in rows.values():
        assert r["audit_ok"] and r["lab_exit"] == 0 and r["tps"] > 0 and r["requests"] > 40
        # Members are drawn at random, so a short run on a busy machine may miss a few of the 40: the audit
        # (audit_ok) holds winners to the distinct askers exactly; the coupon of 100 never ran out.
        assert 0 < r["winners"] <= 40
    assert summary["always_over_everysec"]["tps"] == round(rows["always"]["tps"] / rows["everysec"]["tps"], 3)
    aof = {s: any((run / s / "redis").glob("appendonly*")) for s in rows}
    assert aof == {"always": True, "everysec": True, "none": False}  # each server ran the setting it names
    table = (run / "durability.md").read_text()
    assert "| always |" in table and "always / everysec: TPS" in table
    assert table.strip() in capsys.readouterr().out


def test_unknown_setting_is_refused() -> None:
    with pytest.raises(SystemExit, match="unknown settings"):
        durability.main(["--settings", "always,sometimes"])


def test_redis_args_name_the_persistence() -> None:
    always = redis_args("redis-server", 7000, Path("/x"), "always")
    assert always[-4:] == ["--appendonly", "yes", "--appendfsync", "always"] and "--save" in always
    assert redis_args("redis-server", 7000, Path("/x"), None)[-2:] == ["--appendonly", "no"]
    node = redis_args("redis-server", 7000, Path("/x"), None, cluster_config="nodes-7000.conf")
    assert node[-2:] == ["--appendonly", "no"] and node[node.index("--cluster-config-file") + 1] == "nodes-7000.conf"
