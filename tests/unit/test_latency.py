"""Per-record latencies from committed Parquet files (the engine's latency histograms)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from workbench.metrics.engine import LATENCY_BUCKETS, EngineMetrics
from workbench.streams.latency import bucket_counts, file_latencies, split_live

T0 = 1_795_700_000.0  # epoch seconds


def test_bucket_counts_are_cumulative_skip_nan_and_clamp_negatives() -> None:
    counts = bucket_counts(np.array([0.05, 0.3, 4.0, -2.0, np.nan, 4000.0]))
    by_bound = dict(zip(LATENCY_BUCKETS, counts.cumulative, strict=True))
    assert by_bound[0.1] == 2  # 0.05 and the negative, counted as 0
    assert by_bound[0.5] == 3 and by_bound[5.0] == 4 and by_bound[3600.0] == 4
    assert counts.count == 5  # NaN left out; 4000 s is above every bound but counted
    assert counts.total == 0.05 + 0.3 + 4.0 + 0.0 + 4000.0


def test_file_latencies_read_paths_and_bytes_with_spark_nanosecond_timestamps(
    tmp_path: Path,
) -> None:
    # Spark writes INT96 timestamps, which Arrow reads as nanoseconds, naive.
    def ns(seconds: float | None) -> int | None:
        return None if seconds is None else round(seconds * 1e9)

    first = pa.table(
        {
            "event_time": pa.array([ns(T0), None], pa.timestamp("ns")),
            "received_at": pa.array([ns(T0 + 1), ns(T0 + 2)], pa.timestamp("ns")),
        }
    )
    # Files written by other tools: microseconds, UTC.
    second = pa.table(
        {
            "event_time": pa.array([round((T0 + 3.5) * 1e6)], pa.timestamp("us", tz="UTC")),
            "received_at": pa.array([round((T0 + 4) * 1e6)], pa.timestamp("us", tz="UTC")),
        }
    )
    pq.write_table(first, tmp_path / "a.parquet")
    sink = pa.BufferOutputStream()
    pq.write_table(second, sink)

    found = file_latencies([str(tmp_path / "a.parquet"), sink.getvalue().to_pybytes()], T0 + 10)
    assert found.silver.count == 2  # the row without an event time has no sensor latency
    assert abs(found.silver.total - (10.0 + 6.5)) < 1e-6
    assert found.ingest.count == 2 and abs(found.ingest.total - (1.0 + 0.5)) < 1e-6
    assert found.enrichment.count == 3 and abs(found.enrichment.total - (9 + 8 + 6)) < 1e-6
    assert found.newest_event is not None and abs(found.newest_event - (T0 + 3.5)) < 1e-6
    assert found.oldest_received is not None and abs(found.oldest_received - (T0 + 1)) < 1e-6


def test_readings_older_than_the_live_horizon_are_counted_apart(tmp_path: Path) -> None:
    year = 365 * 24 * 3600.0
    table = pa.table(
        {
            # Two live readings, two from a backfill a year back, one without an event time.
            "event_time": pa.array(
                [round(t * 1e6) if t else None for t in (T0, T0 + 1, T0 - year, T0 - 2 * year)]
                + [None],
                pa.timestamp("us", tz="UTC"),
            ),
            "received_at": pa.array([round((T0 + 2) * 1e6)] * 5, pa.timestamp("us", tz="UTC")),
        }
    )
    pq.write_table(table, tmp_path / "f.parquet")
    found = file_latencies([str(tmp_path / "f.parquet")], T0 + 5, horizon=600)
    assert found.silver.count == 2 and abs(found.silver.total - (5 + 4)) < 1e-6
    assert found.ingest.count == 2  # the ingest stage of live readings only
    assert found.enrichment.count == 5  # receive → commit is no age: every row
    assert found.historical.count == 2
    assert abs(found.historical.oldest_age - (2 * year + 5)) < 1e-3


def test_historical_readings_are_exported_beside_the_histograms() -> None:
    metrics = EngineMetrics(pod="t")
    live, historical = split_live(np.array([1.0, 2.0, 7200.0, np.nan]), 600)
    assert list(live) == [True, True, False, False]
    metrics.observe_historical("gold", historical)
    sample = metrics.registry.get_sample_value
    assert sample("pipeline_historical_records_total", {"pod": "t", "layer": "gold"}) == 1
    assert sample("pipeline_historical_age_seconds", {"pod": "t", "layer": "gold"}) == 7200
    assert sample("pipeline_historical_records_total", {"pod": "t", "layer": "silver"}) == 0
    _, none = split_live(np.array([1.0]), 600)
    metrics.observe_historical("gold", none)
    assert sample("pipeline_historical_age_seconds", {"pod": "t", "layer": "gold"}) == 0
