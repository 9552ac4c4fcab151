"""The enrichment stream (F15, F19): bronze Parquet → silver ``readings`` Delta.

A thin runner around :func:`workbench.enrichment.normalization.normalize`: it wires the file
source, the per-batch rule lookup, the idempotent Delta append and the checkpoint.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.streaming import StreamingQuery

from workbench.catalog.records import NormalizationRule
from workbench.core.errors import EngineError
from workbench.core.settings import Settings
from workbench.enrichment.bronze import BRONZE_READ_SCHEMA
from workbench.enrichment.normalization import (
    SILVER_PARTITIONS,
    SILVER_SCHEMA,
    normalize,
    rule_usage,
)
from workbench.spark.streaming import TriggerMode, await_query, start_query
from workbench.spark.tables import ensure_delta_table

log = logging.getLogger(__name__)

QUERY_NAME = "enrichment"


class RuleStore(Protocol):
    """What the stream needs from the catalog (:class:`workbench.catalog.store.Catalog`)."""

    def list_rules(self) -> list[NormalizationRule]:
        """Enabled rules, global and per dataset."""
        ...

    def record_rule_usage(self, usage: dict[int, int]) -> None:
        """Add one batch's rows affected per rule id."""
        ...


UsageCallback = Callable[[dict[int, int]], None]


def ensure_silver_table(spark: SparkSession, settings: Settings) -> None:
    """Create the empty silver ``readings`` table if absent, so queries work before data."""
    ensure_delta_table(
        spark, settings.lake.silver_readings, SILVER_SCHEMA, partition_by=SILVER_PARTITIONS
    )


def read_bronze(spark: SparkSession, settings: Settings) -> DataFrame:
    """The bronze files as a stream, with the partition columns from the path."""
    if "://" not in settings.lake.bronze:
        # The file source refuses a missing directory; the ingest service may not have run yet.
        Path(settings.lake.bronze).mkdir(parents=True, exist_ok=True)
    return (
        spark.readStream.format("parquet")
        .schema(BRONZE_READ_SCHEMA)
        .option("maxFilesPerTrigger", settings.engine.max_files_per_trigger)
        .load(settings.lake.bronze)
    )


def write_batch(
    settings: Settings,
    store: RuleStore,
    batch: DataFrame,
    batch_id: int,
    *,
    app_id: str,
    on_usage: UsageCallback | None = None,
) -> None:
    """Normalize one micro-batch with the current rules and append it to silver.

    Exceptions propagate: a failed batch fails the query, which the stream manager restarts
    from the checkpoint. The append is idempotent: Delta skips a ``(txnAppId, txnVersion)`` it
    has already committed, so a retried batch never duplicates rows.
    """
    # Read on every batch so a rule edit applies within one trigger, without a restart.
    rules = store.list_rules()
    batch.persist()
    try:
        if batch.isEmpty():
            return
        silver = normalize(batch, rules)
        (
            silver.write.format("delta")
            .mode("append")
            .option("txnAppId", app_id)
            .option("txnVersion", batch_id)
            .save(settings.lake.silver_readings)
        )
        usage = rule_usage(silver, rules)
        store.record_rule_usage(usage)
        if on_usage is not None:
            on_usage(usage)
        log.debug("enrichment batch written batch_id=%s rules=%d", batch_id, len(rules))
    finally:
        batch.unpersist()


def start_enrichment(
    spark: SparkSession,
    settings: Settings,
    store: RuleStore,
    *,
    trigger: TriggerMode = "processing_time",
    on_usage: UsageCallback | None = None,
) -> StreamingQuery:
    """Start the bronze → silver query (named :data:`QUERY_NAME`).

    Args:
        spark: the engine's session.
        settings: lake paths, trigger interval, files per trigger.
        store: where rules are read and usage recorded (the catalog).
        trigger: ``processing_time`` for the service, ``available_now`` to drain and stop.
        on_usage: called after each written batch with ``{rule_id: rows}`` (metrics).
    """
    ensure_silver_table(spark, settings)
    app_id_holder: dict[str, str] = {}

    def _batch(batch: DataFrame, batch_id: int) -> None:
        app_id = app_id_holder.get("id") or _query_app_id(spark)
        app_id_holder["id"] = app_id
        write_batch(settings, store, batch, batch_id, app_id=app_id, on_usage=on_usage)

    return start_query(
        read_bronze(spark, settings).writeStream.foreachBatch(_batch),
        name=QUERY_NAME,
        checkpoints=settings.lake.checkpoints,
        trigger=trigger,
        interval_seconds=settings.engine.enrichment_trigger_seconds,
    )


def _query_app_id(spark: SparkSession) -> str:
    # The txnAppId must be stable across restarts of one checkpoint, and new for a new
    # checkpoint (whose batch ids restart at 0 and would otherwise be skipped as duplicates).
    # The query id is exactly that: it is stored in the checkpoint. The query is registered as
    # active before its first batch runs, and names of active queries are unique.
    for query in spark.streams.active:
        if query.name == QUERY_NAME:
            return f"workbench-{QUERY_NAME}-{query.id}"
    raise EngineError(f"the {QUERY_NAME} query is not active", query=QUERY_NAME)


def run_enrichment_once(spark: SparkSession, settings: Settings, store: RuleStore) -> None:
    """Process every bronze file available now, then return (tests, backfills).

    Raises:
        EngineError: if a batch failed.
    """
    await_query(start_enrichment(spark, settings, store, trigger="available_now"))
