"""Smoke test of ``workbench bench backfill``: a tiny replay through the CLI prints the contract.

Three sensors, 400 hours each, beside the 50 live sensors, as the user runs it (the CLI, in a
child process that starts the whole stack twice). Speed is never asserted; the shape of the
result is, and what must hold at any speed: every replayed and live reading reached silver,
every replayed one is covered by gold, and no flush wrote more than two files per dataset.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.test_bench_engine import run_bench

pytestmark = pytest.mark.spark


def test_backfill_benchmark_reports_its_figures_and_loses_nothing(tmp_path: Path) -> None:
    result, _ = run_bench(tmp_path, "backfill", "--sensors", "3", "--hours", "400", timeout=900)
    assert result["name"] == "backfill"
    assert result["params"]["sensors"] == 3 and result["params"]["hours"] == 400
    details = result["details"]
    assert details["published"] == details["baseline_published"] == 1200
    assert details["baseline_durable"] == 1200
    assert details["silver"] == details["gold_covered"] == 1200
    assert details["live_published"] > 0 and details["live_silver"] == details["live_published"]
    assert result["lost"] == 0
    assert 1 <= result["bronze_files_per_flush"] <= 2
    assert result["live_silver_p95_s"] is not None and result["live_silver_p95_s"] > 0
    assert result["ratio"] == pytest.approx(result["figure"] / result["baseline"], rel=0.01)
    assert set(details["targets"]) == {
        "ratio",
        "live_silver_p95_s",
        "lost",
        "bronze_files_per_flush",
        "met",
    }
    # Where the time went: each service's CPU while the figure was measured, and the machine's.
    assert set(details["baseline_cpu_s"]) == {"ingest", "broker", "machine"}
    assert set(details["cpu_s"]) == {"ingest", "engine", "broker", "machine"}
    assert details["cpu_s"]["engine"] > 0 and details["baseline_cpu_s"]["ingest"] > 0
    assert details["cpu_s"]["machine"] >= details["cpu_s"]["engine"]
