"""Runs a stream computation (:mod:`workbench.gold.stream_computation`) into ``gold/<name>``.

- **One session per query**: the view ``silver`` of each computation lives on a session of its
  own (``spark.newSession()``: same catalog, own temporary views), so computations built at the
  same time cannot see each other's view.
- **One checkpoint per (id, version)**: ``_checkpoints/computations/<name>/<id>-v<version>``.
  Changing the SQL raises the version, so the query starts over on all of silver; a re-created
  name gets a new id, so it never resumes a deleted computation's checkpoint.
- **No mixing of versions**: before a version's query starts, ``gold/<name>`` is emptied and
  given the version's columns by one Delta overwrite with transaction
  ``(workbench-computation-<name>-<id>-reset, version)``. Delta skips a transaction it has seen,
  so a restart of the same version never empties the table again.
- **No duplicates**: each micro-batch is appended as Delta transaction ``(<query app id>,
  batch id)`` (see :func:`workbench.streams.queries.start_batch_query`), so a batch replayed
  after a crash is skipped.
- **Checked before saving**: :func:`check_streamable` builds the query against the real silver
  table and starts it with a no-op sink reading only new commits, then stops it. Spark checks
  what a stream cannot do (an aggregation without an event-time window, sorting...) when a query
  starts, so this is the check, at the cost of one short-lived query (about 0.1 s).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable

from pyspark.errors import PySparkException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.streaming import StreamingQuery
from pyspark.sql.types import StructType

from workbench.catalog.records import StreamComputation
from workbench.core.errors import ComputationError
from workbench.core.settings import Settings
from workbench.gold.gold_stream import read_silver, register_gold_table
from workbench.gold.stream_computation import WHAT, build_computation, query_name
from workbench.metrics.engine import EngineMetrics
from workbench.spark.delta import committed_since, latest_version
from workbench.spark.files import LakeFiles
from workbench.streams.queries import (
    BatchFailures,
    TriggerMode,
    await_query,
    start_batch_query,
)

__all__ = [
    "ComputationWriter",
    "OnBatch",
    "check_streamable",
    "checkpoint_of",
    "drop_computation",
    "run_computation_once",
    "start_computation",
]

log = logging.getLogger(__name__)

#: Told ``(computation name, batch id, rows written)`` after every micro-batch.
OnBatch = Callable[[str, int, int], None]

#: Runtime settings of the engine's session a query session must keep (``newSession`` starts
#: from the SparkConf, without what was set on the running session).
_INHERITED_CONFS = ("spark.sql.streaming.stopTimeout",)


def checkpoint_root(settings: Settings, name: str) -> str:
    """Where every checkpoint of computation ``name`` lives."""
    return f"{settings.lake.checkpoints}/computations/{name}"


def checkpoint_of(settings: Settings, computation: StreamComputation) -> str:
    """The checkpoint of one computation version."""
    return f"{checkpoint_root(settings, computation.name)}/{computation.id}-v{computation.version}"


def query_session(spark: SparkSession) -> SparkSession:
    """A session for one query: shares ``spark``'s catalog and tables, not its temp views."""
    session = spark.newSession()
    for key in _INHERITED_CONFS:
        value = spark.conf.get(key, None)
        if value is not None:
            session.conf.set(key, value)
    return session


class ComputationWriter:
    """Appends a computation's micro-batches to its gold table, each batch exactly once."""

    def __init__(
        self,
        name: str,
        path: str,
        *,
        app_id: str,
        metrics: EngineMetrics | None = None,
        on_batch: OnBatch | None = None,
    ) -> None:
        self.name = name
        self.path = path
        self.app_id = app_id
        self.metrics = metrics
        self.on_batch = on_batch

    def process(self, batch: DataFrame, batch_id: int) -> int:
        """Append one batch as transaction ``(app_id, batch_id)``; returns the rows written
        (0 for an empty batch and for a replay Delta skipped)."""
        session = batch.sparkSession
        started = time.perf_counter()
        batch.persist()
        try:
            rows = batch.count()
            if rows:
                marker = f"{self.app_id}:{batch_id}"
                before = latest_version(session, self.path)
                (
                    batch.write.format("delta")
                    .mode("append")
                    .option("txnAppId", self.app_id)
                    .option("txnVersion", str(batch_id))
                    .option("userMetadata", marker)
                    .save(self.path)
                )
                if not committed_since(session, self.path, marker, before):
                    rows = 0  # a replayed batch: Delta skipped the committed transaction
        finally:
            batch.unpersist()
        log.info("stream computation batch name=%s batch_id=%s rows=%s", self.name, batch_id, rows)
        if self.metrics is not None:
            # The engine's progress listener does not hear this query's own session.
            self.metrics.batch_finished(query_name(self.name), time.perf_counter() - started)
            if rows:
                self.metrics.gold_records.labels(self.metrics.pod, self.name).inc(rows)
        if self.on_batch is not None:
            self.on_batch(self.name, batch_id, rows)
        return rows


def check_streamable(
    spark: SparkSession, settings: Settings, computation: StreamComputation
) -> StructType:
    """Check that Spark can run the computation as an append-mode stream; returns its columns.

    Raises:
        ComputationError: the SQL is refused (see :func:`build_computation`) or Spark cannot
            run it as a stream in append mode (its reason in the message).
    """
    session = query_session(spark)
    silver = read_silver(session, settings, starting_version="latest")
    out = build_computation(silver, computation, watermark=settings.engine.watermark)
    probe = f"{settings.lake.checkpoints}/_probes/{uuid.uuid4().hex}"
    try:
        query = (
            out.writeStream.format("noop")
            .outputMode("append")
            .option("checkpointLocation", probe)
            .start()
        )
        query.stop()
    except PySparkException as err:
        text = str(err).strip()
        reason = text.splitlines()[0] if text else type(err).__name__
        raise ComputationError(
            f"{WHAT} {computation.name!r} cannot run as a stream in append mode: {reason}. "
            "Aggregate per event-time window (GROUP BY window(event_time, '1 minute'), ...), "
            "which the watermark closes, and do not sort",
            computation=computation.name,
        ) from err
    finally:
        LakeFiles(session).delete_tree(probe)
    return out.schema


def start_computation(
    spark: SparkSession,
    settings: Settings,
    computation: StreamComputation,
    *,
    trigger: TriggerMode = "processing_time",
    metrics: EngineMetrics | None = None,
    on_batch: OnBatch | None = None,
    failures: BatchFailures | None = None,
) -> StreamingQuery:
    """Start computation ``computation`` as query ``computation:<name>``.

    Empties ``gold/<name>`` first when this version has not run yet, names the table
    ``gold.<name>`` and drops the checkpoints of other versions.

    Raises:
        ComputationError: the computation cannot be built (see :func:`build_computation`).
    """
    session = query_session(spark)
    out = build_computation(
        read_silver(session, settings), computation, watermark=settings.engine.watermark
    )
    path = settings.lake.gold(computation.name)
    _reset_table(session, path, computation, out.schema)
    register_gold_table(session, computation.name, path)
    current = checkpoint_of(settings, computation)
    root, lake = checkpoint_root(settings, computation.name), LakeFiles(session)
    for name in lake.names(root):
        if name != current.rsplit("/", 1)[-1]:
            lake.delete_tree(f"{root}/{name}")
    return start_batch_query(
        out,
        lambda app_id: ComputationWriter(
            computation.name, path, app_id=app_id, metrics=metrics, on_batch=on_batch
        ),
        name=query_name(computation.name),
        checkpoints=settings.lake.checkpoints,
        checkpoint=current,
        trigger=trigger,
        interval_seconds=settings.engine.gold_trigger_seconds,
        attempts=settings.engine.batch_attempts,
        failures=failures,
    )


def run_computation_once(
    spark: SparkSession,
    settings: Settings,
    computation: StreamComputation,
    *,
    on_batch: OnBatch | None = None,
) -> None:
    """Run the computation over every silver row available now, then return (tests, backfills).

    Raises:
        ComputationError: the computation cannot be built.
        EngineError: if a batch failed.
    """
    failures = BatchFailures()
    query = start_computation(
        spark, settings, computation, trigger="available_now", on_batch=on_batch, failures=failures
    )
    await_query(query, failures)


def drop_computation(spark: SparkSession, settings: Settings, name: str) -> None:
    """Remove what computation ``name`` left: ``gold.<name>``, its data and its checkpoints.

    Its query must be stopped first.
    """
    spark.sql(f"DROP TABLE IF EXISTS gold.`{name}`")
    lake = LakeFiles(spark)
    lake.delete_tree(settings.lake.gold(name))
    lake.delete_tree(checkpoint_root(settings, name))
    log.info("stream computation dropped name=%s", name)


def _reset_table(
    session: SparkSession, path: str, computation: StreamComputation, schema: StructType
) -> None:
    """Empty ``path`` with ``schema``'s columns, once per computation version."""
    app_id = f"workbench-computation-{computation.name}-{computation.id}-reset"
    (
        session.createDataFrame([], schema)
        .write.format("delta")
        .mode("overwrite")
        .option("overwriteSchema", "true")
        .option("txnAppId", app_id)
        .option("txnVersion", str(computation.version))
        .option("userMetadata", f"{app_id}:{computation.version}")
        .save(path)
    )
