"""Gold ``sensor_averages``: event-time windowed statistics per sensor and canonical field.

Each silver micro-batch is folded into the table as *partial* aggregates: count, sum, sum of
squares, min and max per ``(window, ingestion_id, sensor_id, field)`` are MERGEd into the stored
ones (averages and standard deviations follow from them). Nothing waits for the watermark (it
tells when a window is complete), so a partial window is visible after one trigger and a late
reading still lands in its own window; the MERGE commits with the batch's Delta transaction id,
so a replayed batch is skipped instead of counted twice (see :mod:`workbench.gold.gold_stream`).
"""

from __future__ import annotations

from datetime import datetime

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import (
    DoubleType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from workbench.core.settings import Settings
from workbench.gold.labels import highest_label, highest_label_sql
from workbench.spark.constants import batch_timestamp
from workbench.spark.delta import ensure_delta_table

TABLE = "sensor_averages"
QUERY_NAME = "gold"
"""The silver → gold query (averages, alerts and the ``aggregate`` value rules)."""

#: The gold table, exactly (fixtures written with ``deltalake`` rely on it).
GOLD_AVERAGES_SCHEMA = StructType(
    [
        StructField("window_start", TimestampType()),
        StructField("window_end", TimestampType()),
        StructField("ingestion_id", StringType()),
        StructField("sensor_id", StringType()),
        StructField("field", StringType()),
        StructField("avg_value", DoubleType()),
        StructField("min_value", DoubleType()),
        StructField("max_value", DoubleType()),
        StructField("count", LongType()),
        StructField("updated_at", TimestampType()),
        StructField("sum_value", DoubleType()),
        StructField("sum_sq", DoubleType()),
        StructField("stddev_value", DoubleType()),
        StructField("sensitivity", StringType()),
    ]
)

KEYS = ("window_start", "ingestion_id", "sensor_id", "field")


def readings(silver: DataFrame) -> DataFrame:
    """Silver rows as ``(event_time, ingestion_id, sensor_id, sensitivity, field, value)``."""
    return silver.where(F.col("event_time").isNotNull()).select(
        "event_time",
        "ingestion_id",
        "sensor_id",
        "sensitivity",
        F.explode("numeric").alias("field", "value"),
    )


def partial_averages(
    silver: DataFrame, *, window: str, updated_at: datetime | None = None
) -> DataFrame:
    """One batch's statistics per ``(window, ingestion_id, sensor_id, field)``.

    Args:
        silver: silver rows of one micro-batch (or any batch of silver).
        window: window duration, e.g. ``"1 minute"``.
        updated_at: the rows' ``updated_at`` (default: the query's current time).

    Returns:
        The gold columns; ``avg_value`` and ``stddev_value`` are those of this batch alone.
    """
    grouped = (
        readings(silver)
        .groupBy(F.window("event_time", window).alias("w"), "ingestion_id", "sensor_id", "field")
        .agg(
            F.count("value").alias("count"),
            F.sum("value").alias("sum_value"),
            F.sum(F.col("value") * F.col("value")).alias("sum_sq"),
            F.min("value").alias("min_value"),
            F.max("value").alias("max_value"),
            highest_label("sensitivity").alias("sensitivity"),
        )
    )
    count = F.col("count").cast(DoubleType())
    return grouped.select(
        F.col("w.start").alias("window_start"),
        F.col("w.end").alias("window_end"),
        "ingestion_id",
        "sensor_id",
        "field",
        (F.col("sum_value") / count).alias("avg_value"),
        "min_value",
        "max_value",
        F.col("count").cast(LongType()).alias("count"),
        (F.current_timestamp() if updated_at is None else batch_timestamp(updated_at)).alias(
            "updated_at"
        ),
        "sum_value",
        "sum_sq",
        _stddev(F.col("sum_value"), F.col("sum_sq"), count).alias("stddev_value"),
        "sensitivity",
    )


def _stddev(total: F.Column, squares: F.Column, n: F.Column) -> F.Column:
    """Sample standard deviation from count, sum and sum of squares (null below 2 values)."""
    variance = (squares - total * total / n) / (n - F.lit(1.0))
    return F.when(n > 1, F.sqrt(F.greatest(variance, F.lit(0.0))))


def stddev_sql(n: str, total: str, squares: str) -> str:
    """:func:`_stddev` as SQL over expressions for count, sum and sum of squares."""
    variance = f"(({squares} - {total} * {total} / {n}) / ({n} - 1))"
    return f"CASE WHEN {n} > 1 THEN sqrt(greatest({variance}, 0.0)) END"


def merge_sql(target: str, source_view: str, earliest: datetime) -> str:
    """The MERGE folding ``source_view`` (partial aggregates) into the table at ``target``.

    ``earliest`` bounds the target rows by ``window_start`` so Delta skips files by their
    statistics instead of scanning the whole table. Rows written before sums were kept
    (``sum_value`` null) are folded in through their average.
    """
    t_sum = "coalesce(t.sum_value, t.avg_value * t.count)"
    t_sq = "coalesce(t.sum_sq, t.avg_value * t.avg_value * t.count)"
    n = "(t.count + s.count)"
    total = f"({t_sum} + s.sum_value)"
    squares = f"({t_sq} + s.sum_sq)"
    location = target.replace("`", "``")
    return f"""
        MERGE INTO delta.`{location}` AS t
        USING {source_view} AS s
        ON t.window_start = s.window_start AND t.field = s.field
           AND t.ingestion_id <=> s.ingestion_id AND t.sensor_id <=> s.sensor_id
           AND t.window_start >= TIMESTAMP '{earliest.isoformat()}'
        WHEN MATCHED THEN UPDATE SET
            count = {n},
            sum_value = {total},
            sum_sq = {squares},
            avg_value = {total} / {n},
            min_value = least(t.min_value, s.min_value),
            max_value = greatest(t.max_value, s.max_value),
            stddev_value = {stddev_sql(n, total, squares)},
            sensitivity = {highest_label_sql("s.sensitivity", "t.sensitivity")},
            updated_at = s.updated_at
        WHEN NOT MATCHED THEN INSERT *
    """


def ensure_gold_table(spark: SparkSession, settings: Settings) -> None:
    """Create the empty gold table if absent (tolerating one made by another writer)."""
    ensure_delta_table(spark, settings.lake.gold(TABLE), GOLD_AVERAGES_SCHEMA)
