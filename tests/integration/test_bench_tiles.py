"""Smoke test of ``workbench bench tiles``: a tiny run through the CLI prints the JSON contract.

Four clients, one round, as the user runs it (the CLI, in a child process that starts the whole
stack, Voila and headless Chromium). Speed is never asserted; the shape of the result is, and
that both paths did the same work: every refresh got all four tiles with rows, the baseline ran
as many queries as the cache answered, and a new gold version reached the clients while they
watched.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_bench_engine import run_bench

FIGURES = {
    "warm_p95_s",
    "fresh_p95_s",
    "baseline_p95_s",
    "ratio",
    "first_tile_s",
    "voila_kernel_rss_mb",
}
CLIENTS = 4

pytestmark = [pytest.mark.spark, pytest.mark.browser]


def _bench(tmp_path: Path, *args: str, timeout: float) -> tuple[dict[str, Any], str]:
    result, stderr = run_bench(tmp_path, *args, timeout=timeout)
    assert set(result) >= FIGURES
    return result, stderr


def test_tiles_benchmark_measures_both_paths_on_the_same_refreshes(tmp_path: Path) -> None:
    result, _ = _bench(tmp_path, "tiles", "--clients", str(CLIENTS), "--rounds", "1", timeout=480)
    details, params = result["details"], result["params"]
    assert result["name"] == "tiles"
    assert params["clients"] == CLIENTS and params["tiles"] == 4
    assert params["roles"] == {"user": CLIENTS // 2, "viewer": CLIENTS // 2}

    # Every refresh of either path got all four tiles, each with rows.
    assert result["lost"] == 0
    assert details["incomplete_refreshes"] == {"cache": 0, "connect": 0}
    assert details["tile_rows_min"] > 0
    refreshes = CLIENTS * params["rounds"] * params["refreshes_per_phase"]
    assert details["cache_refreshes"] == details["baseline_refreshes"] == refreshes
    assert details["cache_tile_fetches"] == details["baseline_queries"] == 4 * refreshes
    assert details["warm_s"]["count"] + details["fresh_s"]["count"] == refreshes

    # Gold moved while the clients watched, and they saw it.
    assert details["gold_versions_committed"] >= 1
    assert details["gold_versions_seen"] >= 2
    assert details["fresh_s"]["count"] >= 1
    assert details["staleness_s"]["count"] == details["fresh_s"]["count"]
    assert details["cache_runs_seen"] >= 1

    # The figures are measured, ordered and consistent; never judged for speed.
    for kind in ("warm", "fresh", "baseline"):
        spread = details[f"{kind}_s"]
        assert 0 < spread["min"] <= spread["p50"] <= spread["p95"] <= spread["max"]
    assert result["warm_p95_s"] == result["figure"] == details["warm_s"]["p95"]
    assert result["fresh_p95_s"] == details["fresh_s"]["p95"]
    assert result["baseline_p95_s"] == result["baseline"] == details["baseline_s"]["p95"]
    assert result["ratio"] == pytest.approx(result["figure"] / result["baseline"], rel=0.01)
    assert set(details["engine_cpu_s"]) == {"cache", "connect"}
    assert all(seconds > 0 for seconds in details["engine_cpu_s"].values())

    # Voila drew a tile for the viewer's link, in a kernel of its own.
    assert result["first_tile_s"] > 0
    assert result["voila_kernel_rss_mb"] > 0
    assert details["voila"]["kernel_found"] is True
    assert {"pyspark", "voila", "playwright"} <= set(result["versions"])
