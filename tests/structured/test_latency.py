"""Latency measurement: ordered statistics, fixed threads restored afterwards, model left as it was."""

from __future__ import annotations

import pytest
import torch

from prunekit.common.errors import UserError
from prunekit.common.latency import _quantile, measure_latency
from tests.structured.nets import SHAPE, TinyConv


def test_statistics_are_ordered_and_settings_restored():
    model = TinyConv().train()
    before = torch.get_num_threads()
    stats = measure_latency(model, SHAPE, 4, threads=2, warmup=1, repeats=7)
    assert 0 < stats["min_ms"] <= stats["p10_ms"] <= stats["median_ms"] <= stats["p90_ms"] <= stats["max_ms"]
    assert stats["threads"] == 2 and stats["batch_size"] == 4 and stats["repeats"] == 7
    assert stats["device"] == "cpu"
    assert torch.get_num_threads() == before
    assert model.training


def test_quantile_interpolates_like_numpy():
    assert _quantile([4.0, 1.0, 3.0, 2.0], 0.5) == 2.5
    assert _quantile([5.0], 0.9) == 5.0
    assert _quantile([0.0, 10.0], 0.1) == 1.0


def test_bad_arguments():
    with pytest.raises(UserError, match="repeats >= 1"):
        measure_latency(TinyConv(), SHAPE, 1, repeats=0)


def test_interleaved_timing_orders_alternatives_by_cost():
    import time

    from prunekit.common.latency import time_interleaved

    def spin(seconds: float) -> None:  # busy: costs CPU time, unlike sleep
        end = time.thread_time() + seconds
        while time.thread_time() < end:
            pass

    stats = time_interleaved(
        {"short": lambda: time.sleep(0.0005), "long": lambda: time.sleep(0.003), "busy": lambda: spin(0.002)},
        rounds=3,
        sample_seconds=0.004,
    )
    assert set(stats) == {"short", "long", "busy"}
    for s in stats.values():
        assert 0 < s["min_ms"] <= s["p10_ms"] <= s["median_ms"] <= s["p90_ms"] and s["inner"] >= 1
        assert 0 <= s["cpu_min_ms"] <= s["cpu_p10_ms"] <= s["cpu_median_ms"] <= s["cpu_p90_ms"]
    assert stats["long"]["min_ms"] > 2.5 and stats["short"]["min_ms"] >= 0.5
    assert stats["long"]["cpu_median_ms"] < 1.0  # sleeping costs wall time, not CPU time
    assert 1.9 <= stats["busy"]["cpu_median_ms"] <= stats["busy"]["median_ms"]
    with pytest.raises(UserError, match="rounds >= 1"):
        time_interleaved({"a": lambda: None}, rounds=0)


def test_blocks_adapt_to_a_fast_model():
    """torch.utils.benchmark picks several passes per timed block when one pass is too short for the clock."""
    tiny = torch.nn.Linear(4, 2)
    stats = measure_latency(tiny, (4,), 1, threads=1, warmup=2, repeats=5)
    assert stats["passes_per_repeat"] > 1 and stats["repeats"] == 5 and stats["threads"] == 1
    assert stats["median_ms"] < 1.0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_latency_is_synchronised():
    stats = measure_latency(TinyConv(), SHAPE, 8, warmup=2, repeats=5, device="cuda")
    assert stats["device"].startswith("cuda") and stats["threads"] is None and stats["min_ms"] > 0
