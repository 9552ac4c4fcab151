"""Gold ``sensor_averages`` (F20): event-time windowed statistics per sensor and field.

Silver's ``numeric`` map is exploded into ``(field, value)`` rows, grouped by event-time window,
dataset, sensor and field. The stream runs in update mode and MERGEs each batch's changed
windows into the gold table, so a partial window is visible after one trigger and a replayed
batch rewrites the same rows instead of adding new ones.
"""

from __future__ import annotations

import logging

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery
from pyspark.sql.types import (
    DoubleType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from workbench.core.settings import Settings
from workbench.spark.streaming import TriggerMode, await_query, start_query
from workbench.spark.tables import ensure_delta_table

log = logging.getLogger(__name__)

TABLE = "sensor_averages"
QUERY_NAME = "gold_sensor_averages"

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
    ]
)

# Null-safe on the nullable keys: a reading without a sensor id must update its own row,
# not insert a new one on every batch.
_MERGE_ON = (
    "t.window_start = s.window_start AND t.field = s.field "
    "AND t.ingestion_id <=> s.ingestion_id AND t.sensor_id <=> s.sensor_id"
)


def sensor_averages(silver: DataFrame, *, window: str, watermark: str) -> DataFrame:
    """Windowed avg/min/max/count per ``(window, ingestion_id, sensor_id, field)``.

    Args:
        silver: silver readings (batch or stream).
        window: window duration, e.g. ``"1 minute"``.
        watermark: how late an event may arrive, e.g. ``"2 minutes"``.

    Returns:
        The gold columns except ``updated_at``.
    """
    readings = (
        silver.where(F.col("event_time").isNotNull())
        .withWatermark("event_time", watermark)
        .select(
            "event_time",
            "ingestion_id",
            "sensor_id",
            F.explode("numeric").alias("field", "value"),
        )
    )
    grouped = readings.groupBy(
        F.window("event_time", window).alias("w"), "ingestion_id", "sensor_id", "field"
    ).agg(
        F.avg("value").alias("avg_value"),
        F.min("value").alias("min_value"),
        F.max("value").alias("max_value"),
        F.count("value").alias("count"),
    )
    return grouped.select(
        F.col("w.start").alias("window_start"),
        F.col("w.end").alias("window_end"),
        "ingestion_id",
        "sensor_id",
        "field",
        "avg_value",
        "min_value",
        "max_value",
        F.col("count").cast(LongType()).alias("count"),
    )


def ensure_gold_table(spark: SparkSession, settings: Settings) -> None:
    """Create the empty gold table if absent (tolerating one made by another writer)."""
    ensure_delta_table(spark, settings.lake.gold(TABLE), GOLD_AVERAGES_SCHEMA)


def merge_batch(spark: SparkSession, path: str, batch: DataFrame) -> None:
    """Upsert one batch of updated windows into the gold table at ``path``."""
    from delta.tables import DeltaTable

    updates = batch.withColumn("updated_at", F.current_timestamp()).select(
        *GOLD_AVERAGES_SCHEMA.names
    )
    (
        DeltaTable.forPath(spark, path)
        .alias("t")
        .merge(updates.alias("s"), _MERGE_ON)
        .whenMatchedUpdateAll()
        .whenNotMatchedInsertAll()
        .execute()
    )


def start_averages(
    spark: SparkSession,
    settings: Settings,
    *,
    trigger: TriggerMode = "processing_time",
) -> StreamingQuery:
    """Start the silver → gold ``sensor_averages`` query (named :data:`QUERY_NAME`)."""
    ensure_gold_table(spark, settings)
    path = settings.lake.gold(TABLE)
    silver = (
        spark.readStream.format("delta")
        # Retention deletes in silver (F22) must not stop gold; they only remove old rows.
        .option("skipChangeCommits", "true")
        .load(settings.lake.silver_readings)
    )
    stats = sensor_averages(
        silver, window=settings.engine.window, watermark=settings.engine.watermark
    )

    def _batch(batch: DataFrame, batch_id: int) -> None:
        merge_batch(spark, path, batch)
        log.debug("gold batch merged query=%s batch_id=%s", QUERY_NAME, batch_id)

    return start_query(
        stats.writeStream.outputMode("update").foreachBatch(_batch),
        name=QUERY_NAME,
        checkpoints=settings.lake.checkpoints,
        trigger=trigger,
        interval_seconds=settings.engine.gold_trigger_seconds,
    )


def run_averages_once(spark: SparkSession, settings: Settings) -> None:
    """Aggregate every silver row available now into gold, then return (tests, backfills).

    Raises:
        EngineError: if a batch failed.
    """
    await_query(start_averages(spark, settings, trigger="available_now"))
