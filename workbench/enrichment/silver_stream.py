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
from workbench.enrichment.bronze_source import (
    ManifestBatchFiles,
    bronze_stream,
    committed_offset,
    drain_target,
    reached,
)
from workbench.enrichment.legacy_bronze import name_legacy_bronze
from workbench.enrichment.normalization import (
    SILVER_PARTITIONS,
    SILVER_PROPERTIES,
    SILVER_SCHEMA,
)
from workbench.lake.manifest_reader import Offset
from workbench.metrics.engine import EngineMetrics
from workbench.spark.delta import ensure_delta_table
from workbench.spark.files import LakeFiles
from workbench.streams.queries import (
    BatchFailures,
    await_until,
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


def read_bronze(
    spark: SparkSession, settings: Settings, *, until: Offset | None = None
) -> DataFrame:
    """The new bronze files as a stream (from the manifest), with the partition columns.

    Messages redelivered after an ingest crash reach bronze twice with the same
    ``message_id``; rows repeating an id seen within ``engine.dedupe_minutes`` of *processing*
    time are dropped here. The watermark is on the batch's own timestamp, not on event or
    receive time, so no row is ever "late" and dropped for its age (spilled uploads, old
    replays): only repeats are.
    """
    bronze = bronze_stream(spark, settings, until=until)
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
    metrics: EngineMetrics | None = None,
    failures: BatchFailures | None = None,
) -> StreamingQuery:
    """Start the bronze → silver query (named :data:`QUERY_NAME`) on its processing-time
    trigger; :func:`run_enrichment_once` drains and stops instead.

    Args:
        spark: the engine's session.
        settings: lake paths, trigger interval, files per trigger, device policy.
        store: where rules and devices are read and usage recorded (the catalog).
        metrics: the engine's metrics (step durations, counts, latencies).
        failures: where a failing batch's error is kept (the stream manager's).
    """
    checkpoint = _prepare(spark, settings)
    return _start(spark, settings, store, checkpoint, None, metrics, failures)


def _prepare(spark: SparkSession, settings: Settings) -> str:
    """The tables exist, a lake from before the manifest has its files named; the checkpoint."""
    ensure_silver_table(spark, settings)
    name_legacy_bronze(spark, settings, old_checkpoint=FILE_SOURCE_CHECKPOINT)
    return checkpoint_path(settings.lake.checkpoints, CHECKPOINT)


def _start(
    spark: SparkSession,
    settings: Settings,
    store: EngineStore,
    checkpoint: str,
    until: Offset | None,
    metrics: EngineMetrics | None,
    failures: BatchFailures | None,
) -> StreamingQuery:
    files = ManifestBatchFiles(settings, checkpoint, spark)
    return start_batch_query(
        read_bronze(spark, settings, until=until),
        lambda app_id: BatchProcessor(
            spark, settings, store, app_id=app_id, metrics=metrics, batch_files=files
        ),
        name=QUERY_NAME,
        checkpoints=settings.lake.checkpoints,
        checkpoint=checkpoint,
        trigger="processing_time",
        interval_seconds=0 if until is not None else settings.engine.enrichment_trigger_seconds,
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
    """Process every bronze file the manifest names now, then return (tests, backfills,
    benchmarks): in batches of at most ``engine.max_files_per_trigger`` files, as the service.

    Raises:
        EngineError: if a batch failed.
    """
    checkpoint = _prepare(spark, settings)
    target = drain_target(settings, checkpoint, spark)
    files = LakeFiles(spark)
    failures = BatchFailures()
    query = _start(spark, settings, store, checkpoint, target, metrics, failures)
    await_until(query, lambda: reached(committed_offset(files, checkpoint), target), failures)
