"""The batch processor: one enrichment micro-batch in five profiled steps.

1. ``allowed_ids``: the batch's datasets (read from its files' partition directories, no job)
   against the device registry. Enabled devices flow;
   rows of unregistered (under ``require_approval``) or disabled devices are **held** in the
   ``silver/_held`` Delta table, never discarded; unknown ids are registered first under
   ``auto_register``. Held rows of a dataset that is now allowed are released into this batch.
2. ``should_process``: a batch without data stops here. Rows of held datasets are appended to
   the held table; the rows to write (allowed + released) are parsed and normalized to
   canonical fields.
3. ``filter``: the value-rule chain in priority order; rules that cannot run are skipped
   and reported.
4. ``transform``: silver columns (numeric map, event time, sensor id, sensitivity, flags).
5. ``write``: one idempotent Delta append (``txnAppId``/``txnVersion``: a retried batch never
   duplicates rows), then the per-rule counts and per-record latencies of what was committed.

Spark is lazy: steps 2–4 build the plan and the work runs inside step 5's job, so their
durations are driver time (rule reads, compilation) and ``write`` holds the execution. Rule
counts come from ``DataFrame.observe`` on the written frame and latencies from two columns of
the files the commit added (read with Arrow), so the batch is computed once (twice, from a
cache, only when it has rows to hold).
Each step is a method that returns a small frozen result (:class:`Admission`,
:class:`Selection`, :class:`Filtered`, :class:`Transformed`, :class:`Written`) the next steps
read. Exceptions propagate: the query fails, the stream manager restarts it from its
checkpoint.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol
from urllib.parse import unquote

from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StructField, StructType, TimestampType

from workbench.catalog.records import Device, NormalizationRule, RuleOutcome, ValueRule
from workbench.core.settings import Settings
from workbench.enrichment.bronze_schema import BRONZE_READ_SCHEMA
from workbench.enrichment.devices import DeviceDecision, DevicePolicy, decide_devices
from workbench.enrichment.normalization import SILVER_PARTITIONS, usage_aggregates
from workbench.enrichment.transform import enrich, to_silver
from workbench.enrichment.value_rules import (
    DROPPED,
    CompiledRules,
    SparkRegexCheck,
    compile_rules,
    hit_column,
)
from workbench.metrics.engine import EngineMetrics
from workbench.spark.delta import (
    committed_files,
    committed_since,
    ensure_delta_table,
    latest_version,
)
from workbench.spark.files import LakeFiles
from workbench.streams.latency import file_latencies

log = logging.getLogger(__name__)

MODULE = "enrichment"
STEPS = ("allowed_ids", "should_process", "filter", "transform", "write")

#: The held-rows table: the bronze read columns plus when they were held.
HELD_SCHEMA = StructType([*BRONZE_READ_SCHEMA.fields, StructField("held_at", TimestampType())])


class EngineStore(Protocol):
    """What the processor needs from the catalog (:class:`workbench.catalog.store.Catalog`)."""

    def list_rules(self) -> list[NormalizationRule]: ...

    def list_value_rules(self) -> list[ValueRule]: ...

    def list_devices(self) -> list[Device]: ...

    def save_device(self, device: Device) -> None: ...

    def record_rule_usage(self, usage: dict[int, int], batch_key: str | None = None) -> None: ...

    def record_value_rule_status(self, results: Mapping[int, RuleOutcome]) -> None: ...


def ingestion_ids_of(paths: Sequence[str]) -> set[str] | None:
    """The datasets of bronze files, from their ``ingestion_id=`` directories.

    None if a path is outside the bronze layout (the caller must then look at the rows).
    """
    ids: set[str] = set()
    for path in paths:
        found = [p for p in path.split("/") if p.startswith(_ID_DIR)]
        if not found:
            return None
        ids.add(unquote(found[-1][len(_ID_DIR) :]))
    return ids


_ID_DIR = "ingestion_id="

FilesOfBatch = Callable[[int], list[str] | None]
"""A batch id's bronze files, None if unknown (:class:`workbench.streams.queries.BatchFiles`)."""


@dataclass
class BatchReport:
    """What one batch did (logged, and returned for tests)."""

    batch_id: int
    committed: bool = False
    written: int = 0
    held: int = 0
    released: int = 0
    dropped: int = 0
    steps: dict[str, float] = field(default_factory=dict)
    skipped_rules: dict[int, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Admission:
    """Step 1's answer: the batch's datasets, those with held rows, and the registry's say."""

    ids: frozenset[str]
    """Datasets with rows in this batch."""
    waiting: frozenset[str]
    """Datasets with rows in the held table."""
    decision: DeviceDecision


@dataclass(frozen=True)
class Selection:
    """Step 2's answer for a batch with data: the rows to write and what was held."""

    rows: DataFrame
    """Rows of allowed datasets, this batch's and released ones."""
    rules: list[NormalizationRule]
    release: tuple[str, ...]
    """Datasets whose held rows are in ``rows`` (deleted from the held table once written)."""
    held: int
    """Rows this batch appended to the held table."""
    cached: bool
    """The batch is persisted (it was read twice)."""


@dataclass(frozen=True)
class Filtered:
    """Step 3's answer: the rows through the value-rule chain, and which rules ran."""

    chain: DataFrame
    compiled: CompiledRules


@dataclass(frozen=True)
class Transformed:
    """Step 4's answer: the silver frame and the observation that counts it as it is written."""

    silver: DataFrame
    observation: Observation
    usage_ids: tuple[int, ...]
    """Normalization rules whose rows affected the observation counts."""


@dataclass(frozen=True)
class Written:
    """Step 5's answer: the files the append committed."""

    files: tuple[str, ...] | None
    """None: an earlier attempt of the batch had committed it (the append was skipped)."""
    committed_at: float
    """When the append returned (epoch seconds), for the latencies."""

    @property
    def committed(self) -> bool:
        """This attempt committed the batch."""
        return self.files is not None


class BatchProcessor:
    """Runs enrichment micro-batches; one instance per running query.

    Args:
        spark: the engine session (each batch then uses its query's own session).
        settings: lake paths and the device policy.
        store: rules and devices (the catalog).
        app_id: the Delta ``txnAppId``, stable for one checkpoint.
        metrics: where step durations, counts and latencies go (optional in tests).
        batch_files: the bronze files of each batch (the stream's file log); without it, or
            when it does not know a batch, the datasets of a batch are found with a query.
    """

    def __init__(
        self,
        spark: SparkSession,
        settings: Settings,
        store: EngineStore,
        *,
        app_id: str,
        metrics: EngineMetrics | None = None,
        batch_files: FilesOfBatch | None = None,
    ) -> None:
        self._session = spark
        self._batch_files = batch_files
        self.settings = settings
        self.store = store
        self.app_id = app_id
        self.metrics = metrics
        self._held_ids: set[str] | None = None
        self._regex = SparkRegexCheck(spark)

    @property
    def held_path(self) -> str:
        """The held-rows Delta table."""
        return self.settings.lake.silver_held

    def process(self, batch: DataFrame, batch_id: int) -> BatchReport:
        """Run the five steps on one micro-batch (see the module docstring)."""
        report = BatchReport(batch_id)
        # The query's own session (a clone per streaming query): every read and write of the
        # batch goes through it, so frames of two sessions never meet in one plan.
        self._session = batch.sparkSession
        # Whatever the outcome, a batch cached to be read twice is released at the end.
        with ExitStack() as cleanup:
            with self._step(report, "allowed_ids"):
                admission = self._allowed_ids(batch, batch_id)
            with self._step(report, "should_process"):
                selected = self._should_process(batch, batch_id, admission, cleanup)
            if selected is None:
                return report  # a batch without data (Spark runs them to move watermarks)
            report.held = selected.held
            with self._step(report, "filter"):
                filtered = self._filter(selected, admission.decision)
            report.skipped_rules = dict(filtered.compiled.skipped)
            with self._step(report, "transform"):
                transformed = self._transform(filtered, selected.rules, batch_id)
            with self._step(report, "write"):
                written = self._write_silver(batch, transformed.silver, batch_id, selected.cached)
            report.committed = written.committed
            if written.committed:
                self._account(report, filtered.compiled, transformed, written, batch_id)
            if selected.release:
                report.released = self._release(list(selected.release))
            self._count(report)
            return report

    # -- the five steps -----------------------------------------------------------------

    def _allowed_ids(self, batch: DataFrame, batch_id: int) -> Admission:
        """Step 1: the batch's datasets and those with held rows, against the registry."""
        ids = self._ingestion_ids(batch, batch_id)
        # Datasets with held rows are decided too: a registration since releases them.
        waiting = self._held(set())
        decision = self._decide(sorted(ids | waiting))
        return Admission(frozenset(ids), frozenset(waiting), decision)

    def _should_process(
        self, batch: DataFrame, batch_id: int, admission: Admission, cleanup: ExitStack
    ) -> Selection | None:
        """Step 2: hold the rows of held datasets; the rows to write (allowed + released).

        None for a batch without data: nothing to hold, write or release. A batch cached
        here is unpersisted by ``cleanup`` when the batch ends.
        """
        decision = admission.decision
        release = sorted(admission.waiting & set(decision.allowed))
        if not admission.ids and not release:
            return None
        hold = sorted(decision.held & admission.ids)
        held = 0
        if hold:
            # Read twice (held rows, then silver rows): keep the de-duplicated batch.
            batch.persist()
            cleanup.callback(batch.unpersist)
            held = self._hold(batch, hold, batch_id)
        rows = batch.where(F.col("ingestion_id").isin(sorted(decision.allowed)))
        if release:
            rows = rows.unionByName(self._held_rows(release))
        return Selection(rows, self.store.list_rules(), tuple(release), held, cached=bool(hold))

    def _filter(self, selected: Selection, decision: DeviceDecision) -> Filtered:
        """Step 3: the value-rule chain (and normalization) over the rows to write."""
        compiled = compile_rules(self.store.list_value_rules(), self._regex)
        chain = enrich(
            selected.rows, selected.rules, compiled.runnable, sensitivity=decision.allowed
        )
        return Filtered(chain, compiled)

    def _transform(
        self, filtered: Filtered, rules: list[NormalizationRule], batch_id: int
    ) -> Transformed:
        """Step 4: the silver columns, observed for the per-rule counts of what is written."""
        usage = usage_aggregates(rules)
        observation = Observation(f"silver-{batch_id}-{uuid.uuid4().hex[:8]}")
        observed = filtered.chain.observe(
            observation,
            F.count(F.lit(1)).alias("rows"),
            F.sum(F.when(F.col(DROPPED).isNotNull(), 1).otherwise(0)).alias("dropped"),
            *(
                F.sum(F.col(hit_column(r.id)).cast("int")).alias(f"r{r.id}")
                for r in filtered.compiled.runnable
            ),
            *usage.values(),
        )
        silver = to_silver(observed, enriched_at=datetime.now(UTC))
        return Transformed(silver, observation, tuple(usage))

    def _write_silver(
        self, batch: DataFrame, silver: DataFrame, batch_id: int, cached: bool
    ) -> Written:
        """Step 5: the idempotent Delta append (the batch's whole computation runs here)."""
        files = self._write(silver, batch_id)
        committed_at = time.time()
        if files is None and not cached:
            # Delta skipped the replayed append without computing the batch; a stateful
            # source (the de-duplication) must still run once per batch.
            batch.count()
        return Written(None if files is None else tuple(files), committed_at)

    # -- after the commit ---------------------------------------------------------------

    def _account(
        self,
        report: BatchReport,
        compiled: CompiledRules,
        transformed: Transformed,
        written: Written,
        batch_id: int,
    ) -> None:
        """Counts, rule outcomes and latencies of a committed batch."""
        stats = transformed.observation.get
        report.dropped = int(stats.get("dropped") or 0)
        report.written = int(stats.get("rows") or 0) - report.dropped
        self._report_rules(compiled, stats, batch_id, list(transformed.usage_ids))
        self._observe_latencies(list(written.files or ()), written.committed_at)

    def _count(self, report: BatchReport) -> None:
        """The batch's record metrics and its log line."""
        if self.metrics is not None:
            self.metrics.held_records.labels(self.metrics.pod).inc(report.held)
            if report.committed:
                self.metrics.enrichment_records.labels(self.metrics.pod).inc(report.written)
        log.info(
            "enrichment batch batch_id=%s committed=%s written=%s dropped=%s held=%s "
            "released=%s steps=%s",
            report.batch_id,
            report.committed,
            report.written,
            report.dropped,
            report.held,
            report.released,
            {k: round(v, 3) for k, v in report.steps.items()},
        )

    def _ingestion_ids(self, batch: DataFrame, batch_id: int) -> set[str]:
        """The datasets in ``batch``: from its files when known, else one ``distinct`` query.

        The query also runs a batch without files (Spark's no-data batches), which a stateful
        source needs to be run.
        """
        files = self._batch_files(batch_id) if self._batch_files is not None else None
        ids = ingestion_ids_of(files) if files else None
        if ids is not None:
            return ids
        return {r[0] for r in batch.select("ingestion_id").distinct().collect()}

    @contextmanager
    def _step(self, report: BatchReport, name: str) -> Iterator[None]:
        started = time.perf_counter()
        yield
        report.steps[name] = elapsed = time.perf_counter() - started
        if self.metrics is not None:
            self.metrics.step(MODULE, name, elapsed)

    def _decide(self, ingestion_ids: list[str]) -> DeviceDecision:
        policy: DevicePolicy = self.settings.engine.device_policy
        decision = decide_devices(ingestion_ids, self.store.list_devices(), policy)
        for device in decision.register:
            self.store.save_device(device)
            log.info("device registered automatically ingestion_id=%s", device.ingestion_id)
        return decision

    def _write(self, silver: DataFrame, batch_id: int) -> list[str] | None:
        """Append idempotently; the files this call committed (None: already committed)."""
        marker = f"{self.app_id}:{batch_id}"
        path = self.settings.lake.silver_readings
        before = latest_version(self._session, path)
        (
            silver.write.format("delta")
            .mode("append")
            .option("txnAppId", self.app_id)
            .option("txnVersion", batch_id)
            .option("userMetadata", marker)
            .partitionBy(*SILVER_PARTITIONS)
            .save(path)
        )
        # The observation exists only if the job ran, i.e. if this call committed.
        return committed_files(self._session, path, marker, before)

    def _report_rules(
        self, compiled: CompiledRules, stats: dict[str, int], batch_id: int, rule_ids: list[int]
    ) -> None:
        runnable, skipped = compiled.runnable, compiled.skipped
        results = {r.id: RuleOutcome.ok(int(stats.get(f"r{r.id}") or 0)) for r in runnable}
        results.update({rid: RuleOutcome.failed(reason) for rid, reason in skipped.items()})
        if results:
            self.store.record_value_rule_status(results)
        usage = {rid: int(stats.get(f"n{rid}") or 0) for rid in rule_ids}
        self.store.record_rule_usage(usage, batch_key=f"{self.app_id}:{batch_id}")
        if self.metrics is not None:
            m = self.metrics
            self.metrics.record_rule_usage(usage)
            for rid, outcome in results.items():
                if rid in skipped:
                    m.value_rule_failures.labels(m.pod, str(rid)).inc()
                elif outcome.rows_affected:
                    m.value_rule_rows.labels(m.pod, str(rid)).inc(outcome.rows_affected)
        for rid, reason in skipped.items():
            log.warning("value rule skipped rule_id=%s reason=%s", rid, reason)

    def _observe_latencies(self, files: list[str], committed_at: float) -> None:
        """Per-record latencies of the rows this batch committed, from the files it added.

        Two columns of the batch's own files, read with Arrow by the driver: no Spark job,
        and the batch itself is never computed twice.
        """
        if self.metrics is None:
            return
        lake = LakeFiles(self._session)
        found = file_latencies(
            (lake.readable(f) for f in files),
            committed_at,
            horizon=self.settings.engine.live_horizon_seconds,
        )
        m = self.metrics
        m.observe_latency("pipeline_sensor_to_enrichment_latency_seconds", found.silver)
        m.observe_historical("silver", found.historical)
        m.observe_stage("ingest", found.ingest)
        m.observe_stage("enrichment", found.enrichment)
        m.newest_event("bronze", found.newest_event)
        m.newest_event("silver", found.newest_event)
        if found.oldest_received is not None:
            m.processing_lag.labels(m.pod).set(max(0.0, time.time() - found.oldest_received))

    # -- held rows ----------------------------------------------------------------------

    def _held(self, added: set[str]) -> set[str]:
        """Datasets with held rows (read from the table once, then tracked)."""
        if self._held_ids is None:
            ensure_delta_table(
                self._session, self.held_path, HELD_SCHEMA, partition_by=("ingestion_id",)
            )
            found = self._session.read.format("delta").load(self.held_path)
            self._held_ids = {r[0] for r in found.select("ingestion_id").distinct().collect()}
        self._held_ids |= added
        return set(self._held_ids)

    def _hold(self, batch: DataFrame, ids: list[str], batch_id: int) -> int:
        """Append the rows of datasets ``ids`` to the held table (idempotent per batch).

        Returns how many rows this call held (0 if an earlier attempt of the batch did).
        """
        self._held(set(ids))
        rows = batch.where(F.col("ingestion_id").isin(ids))
        observation = Observation(f"held-{batch_id}-{uuid.uuid4().hex[:8]}")
        marker = f"{self.app_id}-held:{batch_id}"
        before = latest_version(self._session, self.held_path)
        (
            rows.withColumn("held_at", F.current_timestamp())
            .select(*HELD_SCHEMA.names)
            .observe(observation, F.count(F.lit(1)).alias("rows"))
            .write.format("delta")
            .mode("append")
            .option("txnAppId", f"{self.app_id}-held")
            .option("txnVersion", batch_id)
            .option("userMetadata", marker)
            .save(self.held_path)
        )
        log.info("rows held until their device is registered ingestion_ids=%s", ids)
        if not committed_since(self._session, self.held_path, marker, before):
            return 0  # held by an earlier attempt of this batch
        return int(observation.get.get("rows") or 0)

    def _held_rows(self, ingestion_ids: list[str]) -> DataFrame:
        held = self._session.read.format("delta").load(self.held_path)
        return held.where(F.col("ingestion_id").isin(ingestion_ids)).select(
            *BRONZE_READ_SCHEMA.names
        )

    def _release(self, ingestion_ids: list[str]) -> int:
        """Delete released rows from the held table, after their silver commit.

        A crash between the two replays this batch: its silver append is then skipped as
        already committed and the delete runs, so released rows land exactly once.
        """
        from delta.tables import DeltaTable

        table = DeltaTable.forPath(self._session, self.held_path)
        table.delete(F.col("ingestion_id").isin(ingestion_ids))
        metrics = table.history(1).select("operationMetrics").first()
        released = int((metrics[0] or {}).get("numDeletedRows", 0)) if metrics else 0
        assert self._held_ids is not None
        self._held_ids -= set(ingestion_ids)
        log.info("held rows released ingestion_ids=%s rows=%s", ingestion_ids, released)
        return released


def ensure_held_table(spark: SparkSession, settings: Settings) -> None:
    """Create the empty held-rows table if absent."""
    ensure_delta_table(
        spark, settings.lake.silver_held, HELD_SCHEMA, partition_by=("ingestion_id",)
    )
