"""The enrichment stream: bronze Parquet → silver ``readings`` Delta.

A thin runner around :class:`workbench.enrichment.batch.BatchProcessor`: it wires the
manifest source (:mod:`workbench.enrichment.bronze_source`), the de-duplication of
redelivered messages, the checkpoint and the trigger.
"""

from __future__ import annotations

import logging

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery

from workbench.core.settings import Settings
from workbench.enrichment.batch import BatchProcessor, EngineStore, ensure_held_table
from workbench.enrichment.bronze_source import ManifestBatchFiles, bronze_stream
from workbench.enrichment.legacy_bronze import name_legacy_bronze
from workbench.enrichment.normalization import (
    SILVER_PARTITIONS,
    SILVER_PROPERTIES,
    SILVER_SCHEMA,
)
from workbench.metrics.engine import EngineMetrics
from workbench.spark.delta import ensure_delta_table
from workbench.streams.queries import (
    BatchFailures,
    TriggerMode,
    await_query,
    checkpoint_path,
    start_batch_query,
)

log = logging.getLogger(__name__)

QUERY_NAME = "enrichment"
#: The query's checkpoint under the checkpoints root. Named apart from the query: lakes from
#: before the manifest have a file-source checkpoint under the query's own name
#: (:data:`FILE_SOURCE_CHECKPOINT`), which this source cannot resume.
CHECKPOINT = "enrichment-manifest"
FILE_SOURCE_CHECKPOINT = QUERY_NAME


def ensure_silver_table(spark: SparkSession, settings: Settings) -> None:
    """Create the empty silver tables if absent, so queries work before data."""
    ensure_delta_table(
        spark,
        settings.lake.silver_readings,
        SILVER_SCHEMA,
        partition_by=SILVER_PARTITIONS,
        properties=SILVER_PROPERTIES,
    )
    ensure_held_table(spark, settings)


def read_bronze(spark: SparkSession, settings: Settings) -> DataFrame:
    """The new bronze files as a stream (from the manifest), with the partition columns.

    Messages redelivered after an ingest crash reach bronze twice with the same
    ``message_id``; rows repeating an id seen within ``engine.dedupe_minutes`` of *processing*
    time are dropped here. The watermark is on the batch's own timestamp, not on event or
    receive time, so no row is ever "late" and dropped for its age (spilled uploads, old
    replays): only repeats are.
    """
    bronze = bronze_stream(spark, settings)
    minutes = settings.engine.dedupe_minutes
    if not minutes:
        return bronze
    return (
        bronze.withColumn("_seen_at", F.current_timestamp())
        .withWatermark("_seen_at", f"{int(minutes * 60)} seconds")
        .dropDuplicatesWithinWatermark(["message_id"])
        .drop("_seen_at")
    )


def start_enrichment(
    spark: SparkSession,
    settings: Settings,
    store: EngineStore,
    *,
    trigger: TriggerMode = "processing_time",
    metrics: EngineMetrics | None = None,
    failures: BatchFailures | None = None,
) -> StreamingQuery:
    """Start the bronze → silver query (named :data:`QUERY_NAME`).

    Args:
        spark: the engine's session.
        settings: lake paths, trigger interval, files per trigger, device policy.
        store: where rules and devices are read and usage recorded (the catalog).
        trigger: ``processing_time`` for the service, ``available_now`` to drain and stop.
        metrics: the engine's metrics (step durations, counts, latencies).
        failures: where a failing batch's error is kept (the stream manager's).
    """
    ensure_silver_table(spark, settings)
    name_legacy_bronze(spark, settings, old_checkpoint=FILE_SOURCE_CHECKPOINT)
    checkpoint = checkpoint_path(settings.lake.checkpoints, CHECKPOINT)
    files = ManifestBatchFiles(settings, checkpoint, spark)
    return start_batch_query(
        read_bronze(spark, settings),
        lambda app_id: BatchProcessor(
            spark, settings, store, app_id=app_id, metrics=metrics, batch_files=files
        ),
        name=QUERY_NAME,
        checkpoints=settings.lake.checkpoints,
        checkpoint=checkpoint,
        trigger=trigger,
        interval_seconds=settings.engine.enrichment_trigger_seconds,
        attempts=settings.engine.batch_attempts,
        failures=failures,
    )


def run_enrichment_once(
    spark: SparkSession,
    settings: Settings,
    store: EngineStore,
    *,
    metrics: EngineMetrics | None = None,
) -> None:
    """Process every bronze file available now, then return (tests, backfills, benchmarks).

    Raises:
        EngineError: if a batch failed.
    """
    failures = BatchFailures()
    query = start_enrichment(
        spark, settings, store, trigger="available_now", metrics=metrics, failures=failures
    )
    await_query(query, failures)
