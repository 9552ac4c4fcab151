"""Per-record latencies of a batch (feed :mod:`workbench.metrics.engine`).

Latencies are computed by the driver from Arrow columns: of the files a commit wrote
(:func:`file_latencies`, no Spark job) or of a cached batch (:func:`frame_epoch_seconds`).

Latencies measured from event time describe live readings only: a reading whose event time
is older than the live horizon when it is committed (``engine.live_horizon_seconds``) is
historical, and :func:`split_live` counts it apart (:class:`Historical`), so one backfill of
year-old readings does not turn every latency panel into a chart of their age.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from workbench.metrics.engine import LATENCY_BUCKETS, Historical, LatencyCounts


def frame_epoch_seconds(df: DataFrame, *columns: str) -> list[np.ndarray]:
    """Timestamp columns of a (small, cached) frame as epoch seconds, NaN for null.

    Pulled to the driver with Arrow: per-batch values computed in Spark would be literals in
    the generated code, compiled anew every batch (:mod:`workbench.spark.constants`).
    """
    table = df.select(*(F.unix_micros(c).alias(c) for c in columns)).toArrow()
    return [table.column(c).cast(pa.float64(), safe=False).to_numpy() / 1e6 for c in columns]


def bucket_counts(seconds: np.ndarray) -> LatencyCounts:
    """:class:`LatencyCounts` of per-record latencies (NaN: no latency, not counted).

    Negative latencies (a sensor clock ahead of ours) count as 0.
    """
    values = np.maximum(seconds[~np.isnan(seconds)], 0.0)
    ordered = np.sort(values)
    cumulative = np.searchsorted(ordered, np.asarray(LATENCY_BUCKETS), side="right")
    return LatencyCounts(tuple(int(c) for c in cumulative), int(values.size), float(values.sum()))


def split_live(age: np.ndarray, horizon: float) -> tuple[np.ndarray, Historical]:
    """``age`` (commit time − event time, per record) as a mask of the live records (within
    ``horizon`` seconds), and what the others were. NaN (no event time) is neither."""
    known = ~np.isnan(age)
    historical = known & (age > horizon)
    oldest = float(age[historical].max()) if historical.any() else 0.0
    return known & ~historical, Historical(int(historical.sum()), oldest)


@dataclass(frozen=True)
class FileLatencies:
    """Per-record latencies of the rows a commit wrote, at its commit time.

    Attributes:
        silver: commit time − event time, of live readings.
        ingest: receive time − event time, of live readings.
        enrichment: commit time − receive time, of every row.
        historical: the readings older than the live horizon at commit.
        newest_event: the newest event time (epoch seconds), None without any.
        oldest_received: the oldest receive time (epoch seconds), None without rows.
    """

    silver: LatencyCounts
    ingest: LatencyCounts
    enrichment: LatencyCounts
    historical: Historical
    newest_event: float | None
    oldest_received: float | None


def file_latencies(
    files: Iterable[str | bytes], committed_at: float, *, horizon: float = float("inf")
) -> FileLatencies:
    """Latencies of the rows in Parquet files (their ``event_time`` and ``received_at``).

    Args:
        files: local paths or file contents (:meth:`workbench.spark.files.LakeFiles.readable`).
        committed_at: when the commit that added them became visible (epoch seconds).
        horizon: the live horizon (seconds): older readings are historical.
    """
    columns = ("event_time", "received_at")
    tables = [
        pq.read_table(f if isinstance(f, str) else pa.BufferReader(f), columns=list(columns))
        for f in files
    ]
    event, received = (_epoch_seconds(tables, name) for name in columns)
    silver = committed_at - event
    live, historical = split_live(silver, horizon)
    return FileLatencies(
        silver=bucket_counts(silver[live]),
        ingest=bucket_counts((received - event)[live]),
        enrichment=bucket_counts(committed_at - received),
        historical=historical,
        newest_event=float(np.nanmax(event)) if np.any(~np.isnan(event)) else None,
        oldest_received=float(np.nanmin(received)) if np.any(~np.isnan(received)) else None,
    )


def _epoch_seconds(tables: list[pa.Table], name: str) -> np.ndarray:
    """A timestamp column of ``tables`` as epoch seconds (NaN for null)."""
    parts = []
    for table in tables:
        column = table.column(name)
        per_second = _PER_SECOND[column.type.unit]
        ticks = column.cast(pa.int64()).cast(pa.float64(), safe=False).to_numpy()
        parts.append(ticks / per_second)
    return np.concatenate(parts) if parts else np.empty(0)


_PER_SECOND = {"s": 1.0, "ms": 1e3, "us": 1e6, "ns": 1e9}
