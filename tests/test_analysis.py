"""The lab's arithmetic: percentiles, the sell-out split, the per-second timeline."""

from __future__ import annotations

import pytest

from experiments.engine.analysis import latency, percentile, sellout_answer, summarise, timeline
from experiments.engine.costs import Sample, api_cpu_us_per_request, split
from experiments.engine.results import Latency, Phase


def test_percentile_by_nearest_rank() -> None:
    values = list(range(1, 101))
    assert [percentile(values, q) for q in (50, 95, 99, 100)] == [50, 95, 99, 100]
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 50) is None


def test_latency_ignores_requests_without_a_response() -> None:
    records = [(0.0, 202, 10.0), (0.1, 410, 30.0), (0.2, 0, 60000.0)]
    assert latency(records) == Latency(mean=20.0, p50=10.0, p95=30.0, p99=30.0, max=30.0)


def test_the_tail_after_the_first_second_leaves_out_the_connect_storm() -> None:
    # Three users who connected late in the first second waited 20 s; everyone after answered in 5 ms.
    records = [(100.0 + i / 10, 202, 20000.0) for i in range(3)] + [(101.0 + i / 10, 410, 5.0) for i in range(40)]
    result = summarise(records, sellout_at=None)
    assert result.latency_ms.max == 20000.0
    assert result.latency_after_first_s_ms.max == 5.0 and result.latency_after_first_s_ms.p99 == 5.0


def test_sellout_split() -> None:
    # 10 s of load: 2 requests a second until the sell-out at t=4, then 5 a second.
    records = [(100 + t + i / 2, 202, 5.0) for t in range(4) for i in range(2)]
    records += [(104 + t + i / 5, 410, 1.0) for t in range(6) for i in range(5)]
    result = summarise(records, sellout_at=104.0)
    assert result.requests == 38 and result.sellout_s == 4.0
    assert result.tps_while_stock == pytest.approx(2.0)
    assert result.tps_after_sellout == pytest.approx(30 / (109.8 - 104))
    assert result.statuses == {"202": 8, "410": 30}
    assert result.errors == {"sold_out": 30}
    assert sellout_answer(records) == pytest.approx(104.001)


def test_no_sellout_means_stock_remained_all_along() -> None:
    records = [(0.0, 202, 1.0), (1.0, 202, 1.0), (2.0, 202, 1.0)]
    result = summarise(records, sellout_at=None)
    assert result.tps_while_stock == result.tps == 1.5
    assert result.tps_after_sellout is None and result.sellout_s is None
    read = summarise(records, sellout_at=None, rush=False)
    assert read.tps_while_stock is None
    assert summarise([], None).requests == 0
    assert sellout_answer(records) is None


def test_timeline_counts_each_second() -> None:
    records = [(10.0, 202, 4.0), (10.5, 409, 2.0), (12.2, 0, 9.0), (12.3, 503, 8.0), (13.1, 202, 1.0)]
    rows = timeline(records, start=10.0, end=13.1)  # the fourth second, barely begun, is left out
    assert [(r.t, r.tps, r.ok, r.refused, r.errors) for r in rows] == [
        (0, 2, 1, 1, 0),
        (1, 0, 0, 0, 0),
        (2, 2, 0, 0, 2),
    ]
    assert rows[0].p50_ms == 2.0


def test_timeline_has_a_point_for_each_second_of_the_run() -> None:
    records = [(100.0 + k / 10, 202, 1.0) for k in range(80)]  # an 8 s run: the last request sent at 7.9 s
    assert [r.t for r in timeline(records, start=100.0, end=107.9)] == list(range(8))
    assert [r.tps for r in timeline(records, start=100.0, end=107.9)] == [10] * 8


def test_costs_split_at_the_sellout_from_the_first_answer() -> None:
    # API 1 CPU s a second, Redis 0.1; EVALSHA 10 calls of 10 us a second; answers from t=102, sold out at 105.
    samples = [Sample(100.0 + i, float(i), 0.0, i / 10, None, i * 10, i * 100) for i in range(11)]
    records = [(102.0 + k / 10, 202 if k < 30 else 410, 0.0) for k in range(80)]
    costs = split(samples, records, 105.0, "n/a")
    assert costs.stock == Phase(3.0, 30, 100_000.0, 10_000.0, None, 0.0, 10.0)
    assert costs.sold_out is not None and costs.sold_out.requests == 50 and costs.sold_out.seconds == 5.0
    assert api_cpu_us_per_request(samples, records) == 125_000.0  # 10 s of CPU over 80 answers
