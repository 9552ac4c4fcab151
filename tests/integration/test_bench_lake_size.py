"""Smoke test of ``workbench bench lake-size``: two small lakes through the CLI.

The history is drained by a real enrichment before the latency run, so the engine never reads
it: silver holds none of its rows. Speed is never asserted; the shape of the result is.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.test_bench_engine import run_bench

pytestmark = pytest.mark.spark


def test_lake_size_reports_every_size_and_never_reads_the_history(tmp_path: Path) -> None:
    result, _ = run_bench(
        tmp_path,
        "lake-size",
        *("--sizes", "200,3000", "--seconds", "4", "--rate", "50", "--triggers", "5"),
        timeout=900,
    )
    assert result["name"] == "lake-size" and result["lost"] == 0
    sizes = result["sizes"]
    assert [row["files"] for row in sizes] == [200, 3000]
    for row in sizes:
        assert row["history_in_silver"] == 0 and row["lost"] == 0
        assert row["latest_offset_p95_s"] is not None  # Spark's batches reported it
        assert row["silver_p95_s"] > 0 and row["gold_p95_s"] > 0
        assert row["reader"]["latest_offset_ms"]["p95"] > 0
        # The history's writer, the catch-up's legacy mark, the latency run's ingest, the probe.
        assert row["reader"]["writers"] >= 4
        assert row["catch_up_s"] > 0 and row["enrichment_batches"] >= 1
    assert result["figure"] == pytest.approx(sizes[-1]["latest_offset_p95_s"] * 1000, abs=0.01)
    assert result["baseline"] == pytest.approx(sizes[0]["latest_offset_p95_s"] * 1000, abs=0.01)
    assert isinstance(result["details"]["targets"]["met"], bool)
