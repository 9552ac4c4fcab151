"""Rule preview: the stream's own transform run on recent bronze rows.

:func:`preview_rules` reads the newest bronze rows of a dataset, runs
:func:`workbench.enrichment.transform.enrich` on them with the given (or the stored) rules and
returns the rows before and after, what each rule did, and the raw keys no rule maps. Because
it calls the very functions the batch processor writes with, a preview shows exactly what the
stream would write for those rows. It works on the engine's session and over Spark Connect.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from workbench.catalog.records import Device, NormalizationRule, ValueRule
from workbench.core.errors import NotFoundError
from workbench.core.settings import Settings
from workbench.enrichment.bronze_schema import BRONZE_READ_SCHEMA
from workbench.enrichment.devices import decide_devices
from workbench.enrichment.transform import enrich, to_silver
from workbench.enrichment.value_rules import (
    DROPPED,
    FLAGS,
    RegexCheck,
    SparkRegexCheck,
    compile_rules,
    hit_column,
)

PREVIEW_ROWS = 200


class RuleSource(Protocol):
    """Where the stored rules come from (the catalog)."""

    def list_rules(self) -> list[NormalizationRule]: ...

    def list_value_rules(self) -> list[ValueRule]: ...

    def list_devices(self) -> list[Device]: ...


@dataclass(frozen=True)
class RuleOutcome:
    """What one value rule did to the previewed rows."""

    rule_id: int
    name: str
    kind: str
    affected: int
    """Rows the rule dropped, converted, flagged or defaulted."""
    dropped: int
    flagged: int
    skipped_reason: str | None = None
    """Why the rule cannot run (then it did nothing), as the stream would report it."""


@dataclass(frozen=True)
class RulePreview:
    """Rows before and after the rules, per-rule outcomes and unmapped raw keys."""

    before: list[dict[str, Any]]
    """The bronze rows: message id, dataset, payload."""
    after: list[dict[str, Any]]
    """The silver rows the stream would write (dropped rows are absent)."""
    outcomes: list[RuleOutcome]
    unmapped_keys: dict[str, int] = field(default_factory=dict)
    """Raw keys that stayed under their own name (no rule maps them), with row counts."""
    held_datasets: list[str] = field(default_factory=list)
    """Datasets the stream holds back now (not registered under ``require_approval``, or
    disabled). Their rows are previewed, without a sensitivity; the stream writes them only
    once the device is registered and enabled."""

    @property
    def dropped_ids(self) -> list[str]:
        """Message ids of rows the rules dropped."""
        kept = {row["message_id"] for row in self.after}
        return [row["message_id"] for row in self.before if row["message_id"] not in kept]


def recent_bronze(
    spark: SparkSession, settings: Settings, *, ingestion_id: str | None, rows: int
) -> DataFrame:
    """The newest ``rows`` bronze rows (of one dataset, or of all), newest first."""
    bronze = spark.read.schema(BRONZE_READ_SCHEMA).parquet(settings.lake.bronze)
    if ingestion_id:
        bronze = bronze.where(F.col("ingestion_id") == F.lit(ingestion_id))
    return bronze.orderBy(F.col("received_at").desc()).limit(rows)


def preview_rules(
    spark: SparkSession,
    settings: Settings,
    source: RuleSource,
    *,
    ingestion_id: str | None = None,
    rows: int = PREVIEW_ROWS,
    rules: Sequence[NormalizationRule] | None = None,
    value_rules: Sequence[ValueRule] | None = None,
    regex: RegexCheck | None = None,
) -> RulePreview:
    """Preview rules on the newest bronze rows.

    Args:
        spark: a session (the engine's, or a Spark Connect client's).
        settings: where bronze lives.
        source: the stored rules, used for whichever of ``rules`` / ``value_rules`` is None.
        ingestion_id: the dataset to preview (None: all).
        rows: how many of the newest rows.
        rules: normalization rules to try instead of the stored ones (e.g. with an edit).
        value_rules: value rules to try instead of the stored ones.
        regex: the pattern check to reuse (default: a new :class:`SparkRegexCheck` on ``spark``).

    Raises:
        NotFoundError: if there are no bronze rows to preview.
    """
    norm = list(source.list_rules() if rules is None else rules)
    tried = list(source.list_value_rules() if value_rules is None else value_rules)
    compiled = compile_rules(tried, regex or SparkRegexCheck(spark))
    sample = recent_bronze(spark, settings, ingestion_id=ingestion_id, rows=rows).cache()
    before = [r.asDict() for r in sample.select("message_id", "ingestion_id", "payload").collect()]
    if not before:
        where = f"dataset {ingestion_id!r}" if ingestion_id else "the lake"
        raise NotFoundError(f"no bronze rows to preview in {where}; ingest some data first")
    datasets = sorted({row["ingestion_id"] for row in before})
    devices = decide_devices(datasets, source.list_devices(), settings.engine.device_policy)
    # An auto-registered source gets the default device, as the stream would register it.
    chain = enrich(sample, norm, compiled.runnable, sensitivity=devices.allowed)
    helper = [DROPPED, FLAGS, "fields"] + [hit_column(r.id) for r in compiled.runnable]
    marks = [r.asDict(recursive=True) for r in chain.select(*helper).collect()]
    after = [r.asDict(recursive=True) for r in to_silver(chain).collect()]
    sample.unpersist()
    outcomes = [
        RuleOutcome(
            r.id,
            r.name,
            r.kind,
            affected=sum(1 for m in marks if m[hit_column(r.id)]),
            dropped=sum(1 for m in marks if m[DROPPED] == r.id),
            flagged=sum(1 for m in marks if f"{r.kind}:{r.name}" in (m[FLAGS] or [])),
        )
        for r in compiled.runnable
    ]
    by_id = {r.id: r for r in tried}
    outcomes += [
        RuleOutcome(rid, by_id[rid].name, by_id[rid].kind, 0, 0, 0, skipped_reason=reason)
        for rid, reason in compiled.skipped.items()
    ]
    canonical = {r.canonical_key for r in norm if r.enabled}
    unmapped: Counter[str] = Counter()
    for mark in marks:
        unmapped.update(k for k in (mark["fields"] or {}) if k not in canonical)
    return RulePreview(before, after, outcomes, dict(unmapped.most_common()), sorted(devices.held))
