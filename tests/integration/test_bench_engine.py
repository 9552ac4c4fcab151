"""Smoke tests of the engine benchmarks: tiny runs that print the JSON contract with no loss.

``workbench bench enrich`` and ``workbench bench latency`` run as the user runs them (the CLI,
in a child process with its own Spark driver), on a size small enough for the test suite. Speed
is never asserted (benchmarks are not timed tests); the shape of the result, zero loss, the
same-run baselines (for enrich, a job by hand that must write the same rows) and the progress
bar on stderr are.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
KEYS = {"name", "figure", "unit", "baseline", "ratio", "lost", "machine", "versions", "params"}


def run_bench(tmp_path: Path, *args: str, timeout: float) -> tuple[dict[str, Any], str]:
    env = {"PATH": "/usr/sbin:/usr/bin:/bin", "HOME": str(tmp_path)}
    env["WORKBENCH__HOME"] = str(tmp_path / "home")
    env["WORKBENCH__CONFIG"] = str(tmp_path / "none.toml")
    env["WORKBENCH__SPARK__JAR_CACHE"] = str(ROOT / ".workbench" / "jars")
    done = subprocess.run(
        [sys.executable, "-m", "workbench", "bench", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(result) >= KEYS
    assert {"cores", "ram_gb"} <= set(result["machine"])
    assert "%|" in done.stderr  # the tqdm bar
    return result, done.stderr


@pytest.mark.spark
def test_enrich_benchmark_accounts_for_every_bronze_row(tmp_path: Path) -> None:
    result, _ = run_bench(tmp_path, "enrich", "--records", "5000", timeout=400)
    assert result["name"] == "enrich"
    assert result["params"]["records"] == 5000
    assert result["params"]["normalization_rules"] == 10
    assert result["details"]["bronze_rows"] == 5000
    assert result["details"]["copy_rows"] == 5000
    # Every reading is in silver exactly once, or was dropped by a value rule.
    assert result["details"]["silver_duplicates"] == 0
    assert result["lost"] == 0
    if result["params"]["value_rules"]:
        assert len(result["params"]["value_rules"]) == 5
        assert result["details"]["dropped_by_rules"] > 0
        assert result["details"]["must_drop_rows_in_silver"] == 0
    # The baseline is the same rules written by hand: it wrote the very same silver rows.
    assert result["details"]["by_hand_rows"] == result["details"]["silver_rows"]
    assert result["details"]["by_hand_ids_not_in_silver"] == 0
    assert result["details"]["silver_ids_not_by_hand"] == 0
    assert result["details"]["by_hand_same_rows"] is True
    assert result["figure"] > 0 and result["baseline"] > 0 and result["copy_baseline"] > 0
    assert result["ratio"] == pytest.approx(result["figure"] / result["baseline"], rel=0.02)
    assert result["copy_ratio"] == pytest.approx(
        result["figure"] / result["copy_baseline"], rel=0.02
    )
    assert result["details"]["targets"]["ratio"] == 1.0
    assert {"pyspark", "delta-spark"} <= set(result["versions"])
    # The bronze lake is cached per size: a second run reuses it.
    cached = list((tmp_path / "home" / "bench").glob("enrich-bronze-5000-v*/manifest.json"))
    assert len(cached) == 1


@pytest.mark.spark
@pytest.mark.slow
def test_latency_benchmark_sees_every_reading_in_silver_and_gold(tmp_path: Path) -> None:
    result, _ = run_bench(tmp_path, "latency", "--seconds", "10", "--rate", "50", timeout=600)
    assert result["name"] == "latency"
    assert result["details"]["published"] == 500
    assert result["lost"] == 0
    assert result["details"]["silver_readings"] == 500
    assert result["details"]["gold_uncovered"] == 0
    for layer in ("silver", "gold"):
        p50, p95, p99 = (result[f"{layer}_p{q}_s"] for q in (50, 95, 99))
        assert 0 < p50 <= p95 <= p99
    # A reading reaches gold only after silver, and silver only after bronze.
    assert result["gold_p50_s"] >= result["silver_p50_s"] >= result["details"]["bronze_p50_s"]
    assert result["figure"] == result["silver_p95_s"]
    assert result["baseline"] == result["details"]["bronze_p95_s"] > 0
    assert result["params"]["rate"] == 50


def test_gold_latency_covers_the_kth_reading_when_count_reaches_k() -> None:
    from workbench.bench.delta_watch import SilverRecord, gold_latencies, percentile

    # Sensor s, window [60, 120): readings reach silver in versions 1, 1, 2; a reading of the
    # next window (version 2) is never counted by gold.
    records = {
        "a": SilverRecord(event_time=61.0, sensor_id="s", version=1, committed=63.0),
        "b": SilverRecord(event_time=62.0, sensor_id="s", version=1, committed=63.0),
        "c": SilverRecord(event_time=64.0, sensor_id="s", version=2, committed=66.0),
        "d": SilverRecord(event_time=121.0, sensor_id="s", version=2, committed=123.0),
    }
    events = {("s", 60.0): [(2, 70.0), (3, 75.0)]}  # gold counts 2 at t=70, 3 at t=75
    latencies, uncovered = gold_latencies(records, events, 60)
    assert sorted(latencies) == [8.0, 9.0, 11.0]  # a, b at 70; c at 75
    assert uncovered == 1
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([], 95) is None
