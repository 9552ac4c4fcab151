"""The gold stream: silver ``readings`` → ``sensor_averages``, ``alerts``, rule aggregates.

A thin runner: each silver micro-batch is reduced to partial window statistics
(:mod:`workbench.gold.averages`), MERGEd into gold, checked against the alert rules
(:mod:`workbench.gold.alerts`) and folded into the gold table of every ``aggregate`` value rule
(:mod:`workbench.gold.aggregates`). Each MERGE commits as Delta transaction
``(<query app id>-<table>, batch id)``, so a batch replayed after a crash is skipped per table
and every reading is counted exactly once. The same alert check then advances the catalog's
alert states (firing, resolved; a replayed batch leaves them as they are).

The query keeps Spark's event-time watermark on ``event_time`` (``engine.watermark`` behind
the newest event; checkpointed with each batch): a window that ends before it is complete. A
reading behind the watermark still lands in its window, since held rows released late, spilled
uploads and backlogs after a restart are data too, and is counted in
``gold_late_records_total``. Nothing in the query is stateful, so Spark drops nothing for it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Protocol

import numpy as np
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery

from workbench.catalog.alert_states import Transition
from workbench.catalog.records import (
    AlertObservation,
    AlertRule,
    RuleOutcome,
    StreamComputation,
    ValueRule,
)
from workbench.core.settings import Settings
from workbench.gold import aggregates, alerts, averages, stream_computation
from workbench.metrics.engine import EngineMetrics
from workbench.spark.delta import (
    committed_since,
    ensure_delta_table,
    idempotent_sql,
    latest_version,
)
from workbench.streams.latency import bucket_counts, frame_epoch_seconds, split_live
from workbench.streams.queries import (
    BatchFailures,
    BatchWatermark,
    TriggerMode,
    await_query,
    checkpoint_path,
    start_batch_query,
)

log = logging.getLogger(__name__)

QUERY_NAME = averages.QUERY_NAME
MODULE = "gold"


class GoldStore(Protocol):
    """What the gold stream reads from the catalog."""

    def list_alert_rules(self) -> list[AlertRule]: ...

    def apply_alert_observations(
        self, observations: Iterable[AlertObservation]
    ) -> list[Transition]: ...

    def firing_alerts_per_rule(self) -> dict[str, int]: ...

    def list_value_rules(self) -> list[ValueRule]: ...

    def record_value_rule_status(self, results: Mapping[int, RuleOutcome]) -> None: ...

    def list_stream_computations(
        self, *, include_disabled: bool = True
    ) -> list[StreamComputation]: ...


def ensure_gold_tables(spark: SparkSession, settings: Settings) -> None:
    """Create the fixed gold tables if absent."""
    averages.ensure_gold_table(spark, settings)
    alerts.ensure_alerts_table(spark, settings)


def register_gold_table(spark: SparkSession, name: str, path: str) -> None:
    """Name a gold table ``gold.<name>`` in the session catalog (shared with Connect sessions)."""
    spark.sql("CREATE DATABASE IF NOT EXISTS gold")
    location = path.replace("'", "\\'")
    spark.sql(f"CREATE TABLE IF NOT EXISTS gold.`{name}` USING DELTA LOCATION '{location}'")


class GoldProcessor:
    """Folds silver micro-batches into the gold tables; one instance per running query."""

    def __init__(
        self,
        settings: Settings,
        store: GoldStore,
        *,
        app_id: str,
        metrics: EngineMetrics | None = None,
        watermarks: Callable[[int], float | None] | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.app_id = app_id
        self.metrics = metrics
        self.watermarks = watermarks
        """The event-time watermark (epoch s) a batch id ran with (:class:`BatchWatermark`)."""
        self._tables_ready: set[str] = set()
        self._alerts_exported = False

    def process(self, batch: DataFrame, batch_id: int) -> dict[str, int]:
        """Fold one silver batch into gold; returns rows written per gold table."""
        session = batch.sparkSession
        written: dict[str, int] = {}
        steps: dict[str, float] = {}
        batch.persist()
        try:
            started = time.perf_counter()
            partials = averages.partial_averages(
                batch, window=self.settings.engine.window, updated_at=datetime.now(UTC)
            )
            partials.persist()
            try:
                bounds = partials.agg(F.min("window_start")).first()
                earliest = bounds[0] if bounds else None
                if earliest is None:
                    return written
                self._step("partials", started, steps)
                started = time.perf_counter()
                written[averages.TABLE] = self._merge(
                    session, averages.TABLE, partials, averages.merge_sql, earliest, batch_id
                )
                committed_at = time.time()
                self._step("averages", started, steps)
                started = time.perf_counter()
                rules = self.store.list_alert_rules()
                fired = alerts.window_alerts(partials, rules)
                if fired is not None:
                    written[alerts.TABLE] = self._merge(
                        session, alerts.TABLE, fired, alerts.merge_sql, earliest, batch_id
                    )
                self._step("alerts", started, steps)
                started = time.perf_counter()
                self._advance_alerts(alerts.window_observations(partials, rules))
                self._step("alert_states", started, steps)
            finally:
                partials.unpersist()
            started = time.perf_counter()
            written.update(self._rule_aggregates(session, batch, batch_id))
            self._step("aggregates", started, steps)
            started = time.perf_counter()
            late = self._observe(batch, batch_id, committed_at, written)
            self._step("observe", started, steps)
            log.info(
                "gold batch batch_id=%s written=%s late=%s steps=%s",
                batch_id,
                written,
                late,
                {k: round(v, 3) for k, v in steps.items()},
            )
            return written
        finally:
            batch.unpersist()

    def _merge(
        self,
        session: SparkSession,
        table: str,
        rows: DataFrame,
        sql: Callable[[str, str, datetime], str],
        earliest: datetime,
        batch_id: int,
    ) -> int:
        path = self.settings.lake.gold(table)
        view = f"gold_batch_{table}"
        rows.createOrReplaceTempView(view)
        app_id = f"{self.app_id}-{table}"
        before = latest_version(session, path)
        # The target bound is the hour of the earliest window: a looser bound skips nearly as
        # many files, and the MERGE's generated code (the bound is a literal in it) then stays
        # the same for an hour instead of being compiled anew every batch.
        bound = earliest.replace(minute=0, second=0, microsecond=0)
        # The source is a reduction of the cached micro-batch: the same rows on every read.
        result = idempotent_sql(
            session,
            sql(path, view, bound),
            app_id=app_id,
            version=batch_id,
            deterministic_source=True,
        )
        if result is None or not committed_since(session, path, f"{app_id}:{batch_id}", before):
            return 0  # a replayed batch: Delta skipped the committed transaction
        metrics = result.asDict()
        return int(metrics.get("num_updated_rows") or 0) + int(
            metrics.get("num_inserted_rows") or 0
        )

    def _advance_alerts(self, observations: list[AlertObservation]) -> None:
        """Advance the alert states (after gold's MERGE: a replayed batch changes nothing)."""
        transitions = self.store.apply_alert_observations(observations)
        for before, after in transitions:
            log.info(
                "alert %s rule=%r ingestion_id=%s sensor_id=%s value=%s (was %s)",
                after.status, after.rule_id, after.ingestion_id, after.sensor_id,
                after.value, before or "new",
            )  # fmt: skip
        if self.metrics is not None:
            for _, after in transitions:
                self.metrics.alert_changed(str(after.rule_id), after.status)
            if transitions or not self._alerts_exported:
                self.metrics.alerts_firing(self.store.firing_alerts_per_rule())
                self._alerts_exported = True

    def _rule_aggregates(
        self, session: SparkSession, batch: DataFrame, batch_id: int
    ) -> dict[str, int]:
        # Gold tables other writers own: an aggregate rule must not write into them.
        taken = dict(stream_computation.FIXED_TABLES)
        for computation in self.store.list_stream_computations():
            taken[computation.name] = f"stream computation {computation.name!r}"
        rules, skipped = aggregates.runnable(self.store.list_value_rules(), taken)
        status = {rid: RuleOutcome.failed(reason) for rid, reason in skipped.items()}
        written: dict[str, int] = {}
        for rule in rules:
            table = aggregates.table_of(rule)
            try:
                self._ensure_rule_table(session, table)
                partial = aggregates.partial_rule_aggregate(batch, rule).persist()
                try:
                    first = partial.agg(F.min("window_start")).first()
                    if first is None or first[0] is None:
                        rows = 0
                    else:
                        rows = self._merge(
                            session, table, partial, aggregates.merge_sql, first[0], batch_id
                        )
                finally:
                    partial.unpersist()
            except Exception as err:  # noqa: BLE001 - one failing rule must not fail gold
                log.warning("aggregate rule failed rule_id=%s error=%s", rule.id, err)
                status[rule.id] = RuleOutcome.failed(f"{type(err).__name__}: {err}"[:500])
                continue
            written[table] = written.get(table, 0) + rows
            status[rule.id] = RuleOutcome.ok(rows)
        if status:
            self.store.record_value_rule_status(status)
        return written

    def _ensure_rule_table(self, session: SparkSession, table: str) -> None:
        if table in self._tables_ready:
            return
        path = self.settings.lake.gold(table)
        ensure_delta_table(session, path, aggregates.RULE_AGGREGATE_SCHEMA)
        register_gold_table(session, table, path)
        self._tables_ready.add(table)

    def _step(self, step: str, started: float, steps: dict[str, float]) -> None:
        """Record a step's duration in the batch's ``steps`` (its log line) and the metrics."""
        steps[step] = elapsed = time.perf_counter() - started
        if self.metrics is not None:
            self.metrics.step(MODULE, step, elapsed)

    def _observe(
        self,
        batch: DataFrame,
        batch_id: int,
        committed_at: float,
        written: dict[str, int],
    ) -> int | None:
        """Feed the metrics; returns the readings behind the batch's watermark (None without
        metrics)."""
        m = self.metrics
        if m is None:
            return None
        for table, rows in written.items():
            m.gold_records.labels(m.pod, table).inc(rows)
        event, enriched = frame_epoch_seconds(batch, "event_time", "enriched_at")
        watermark = self.watermarks(batch_id) if self.watermarks is not None else None
        late = 0 if watermark is None else int(np.count_nonzero(event < watermark))
        m.late_records.labels(m.pod).inc(late)
        stage = bucket_counts(committed_at - enriched)
        age = committed_at - event
        live, historical = split_live(age, self.settings.engine.live_horizon_seconds)
        m.observe_latency("pipeline_sensor_to_gold_latency_seconds", bucket_counts(age[live]))
        m.observe_historical("gold", historical)
        m.observe_latency("pipeline_enrichment_to_gold_latency_seconds", stage)
        m.observe_stage("gold", stage)
        if np.any(~np.isnan(event)):
            m.newest_event("gold", float(np.nanmax(event)))
        return late


def read_silver(
    spark: SparkSession, settings: Settings, *, starting_version: str | None = None
) -> DataFrame:
    """Silver as a stream; retention deletes there only remove old rows, so skip them.

    ``starting_version`` (e.g. ``"latest"``: only commits from now on) is for probes that
    must not read the whole table.
    """
    reader = spark.readStream.format("delta").option("skipChangeCommits", "true")
    if starting_version is not None:
        reader = reader.option("startingVersion", starting_version)
    return reader.load(settings.lake.silver_readings)


def start_gold(
    spark: SparkSession,
    settings: Settings,
    store: GoldStore,
    *,
    trigger: TriggerMode = "processing_time",
    metrics: EngineMetrics | None = None,
    failures: BatchFailures | None = None,
) -> StreamingQuery:
    """Start the silver → gold query (named :data:`QUERY_NAME`), watermarked on ``event_time``
    by ``engine.watermark``."""
    ensure_gold_tables(spark, settings)
    watermarks = BatchWatermark(checkpoint_path(settings.lake.checkpoints, QUERY_NAME), spark)
    silver = read_silver(spark, settings).withWatermark("event_time", settings.engine.watermark)
    return start_batch_query(
        silver,
        lambda app_id: GoldProcessor(
            settings, store, app_id=app_id, metrics=metrics, watermarks=watermarks
        ),
        name=QUERY_NAME,
        checkpoints=settings.lake.checkpoints,
        trigger=trigger,
        interval_seconds=settings.engine.gold_trigger_seconds,
        attempts=settings.engine.batch_attempts,
        failures=failures,
    )


def run_gold_once(
    spark: SparkSession,
    settings: Settings,
    store: GoldStore,
    *,
    metrics: EngineMetrics | None = None,
) -> None:
    """Fold every silver row available now into gold, then return (tests, backfills).

    Raises:
        EngineError: if a batch failed.
    """
    failures = BatchFailures()
    query = start_gold(
        spark, settings, store, trigger="available_now", metrics=metrics, failures=failures
    )
    await_query(query, failures)


__all__ = ["QUERY_NAME", "GoldProcessor", "run_gold_once", "start_gold"]
