"""Per-record latencies of a batch as one Spark aggregate (feeds :mod:`workbench.spark.metrics`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from workbench.spark.metrics import LATENCY_BUCKETS, LatencyCounts


def seconds_between(later: Column, earlier: Column) -> Column:
    """``later - earlier`` in seconds (double, microsecond precision); null if either is."""
    return (F.unix_micros(later) - F.unix_micros(earlier)) / F.lit(1e6)


def latency_counts(
    df: DataFrame, latencies: Mapping[str, Column], *extra: Column
) -> tuple[dict[str, LatencyCounts], list[Any]]:
    """Bucket counts of each named latency column of ``df``, computed in a single job.

    Null latencies (records without an event time) are not counted. ``extra`` aggregates ride
    along in the same job; their values are returned second, in order.
    """
    aggs: list[Column] = []
    for value in latencies.values():
        lat = F.greatest(value, F.lit(0.0))
        aggs += [F.sum(F.when(lat <= F.lit(b), 1).otherwise(0)) for b in LATENCY_BUCKETS]
        aggs += [F.count(lat), F.sum(lat)]
    row = df.agg(*aggs, *extra).first()
    values: list[Any] = list(row) if row is not None else []
    tail = values[len(aggs) :] if values else [None] * len(extra)
    out, width = {}, len(LATENCY_BUCKETS) + 2
    for i, name in enumerate(latencies):
        chunk = values[i * width : (i + 1) * width] or [0] * width
        out[name] = LatencyCounts(
            tuple(int(v or 0) for v in chunk[:-2]), int(chunk[-2] or 0), float(chunk[-1] or 0.0)
        )
    return out, tail
