"""Normalization of bronze rows into the silver union schema: pure transforms.

Every source becomes the same columns: envelope columns, the raw payload as ``map<string,
string>``, canonical ``fields`` after the rules, the numeric subset, and event time.

Rule semantics, per dataset (``ingestion_id``):

- raw keys are field paths, as the catalog lists them: a nested object's members are dot paths
  (``{"loc": {"lat": 1}}`` has ``loc.lat``), up to ``MAX_PATH_DEPTH`` names
  (:mod:`workbench.catalog.schemas`); a rule may also take a whole object by its path, and
  then nothing inside it passes through on its own;
- raw keys match case-insensitively;
- the candidate raw keys of a canonical key are the dataset's own rules (by priority, id)
  followed by the global rules (priority, id); the first non-null value wins (coalesce);
- a global rule is ignored for a dataset whose own rules map the same raw key to a different
  canonical key (per-source wins);
- raw keys no rule maps keep their own name (a nested one its path), so nothing in the payload
  is lost; ``raw`` keeps the top-level keys, objects as JSON text. A raw key whose
  name equals a canonical key case-insensitively is that key's last-resort candidate;
- of raw keys equal but for case within one payload, the last one counts (and of a key
  repeated exactly, ``raw`` keeps one entry, at its first place, with the last value).

The rules are compiled on the driver into one JSON plan per scope (:func:`plan_text`), picked
per row by a ``CASE ingestion_id`` expression. The JVM function :data:`PAYLOAD_FUNCTION`
(``kernels/jvm/src/workbench/spark/PayloadFields.java``, built by ``make setup``) reads a
payload into ``raw`` exactly as ``from_json(payload, 'map<string,string>')`` would and applies
the plan in the same pass over its field paths (``CanonicalFields.java`` holds the plan's
matching). The semantics live here; the Java classes only run them, and the tests hold them to
these semantics and to ``from_json``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import (
    ArrayType,
    DataType,
    DateType,
    DoubleType,
    LongType,
    MapType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from workbench.catalog.records import NormalizationRule
from workbench.spark.constants import batch_timestamp

SENSOR_KEY = "sensorId"
TIME_KEY = "timestamp"

_STR_MAP = MapType(StringType(), StringType())
_NUM_MAP = MapType(StringType(), DoubleType())

#: The silver ``readings`` table, in column order.
SILVER_SCHEMA = StructType(
    [
        StructField("message_id", StringType()),
        StructField("ingestion_id", StringType()),
        StructField("source_type", StringType()),
        StructField("topic", StringType()),
        StructField("received_at", TimestampType()),
        StructField("event_time", TimestampType()),
        StructField("event_time_raw", StringType()),
        StructField("sensor_id", StringType()),
        StructField("raw", _STR_MAP),
        StructField("fields", _STR_MAP),
        StructField("numeric", _NUM_MAP),
        StructField("payload_kind", StringType()),
        StructField("error", StringType()),
        StructField("flags", ArrayType(StringType())),
        StructField("sensitivity", StringType()),
        StructField("enriched_at", TimestampType()),
        StructField("date", DateType()),
    ]
)

SILVER_PARTITIONS: tuple[str, ...] = ("date", "ingestion_id")

#: Delta keeps min/max statistics (for skipping files) of the columns queries filter on only;
#: by default it would gather them for the first 32 columns, message ids included, on every
#: write.
SILVER_PROPERTIES: dict[str, str] = {
    "delta.dataSkippingStatsColumns": "event_time,received_at,enriched_at,sensor_id"
}


@dataclass(frozen=True)
class Candidate:
    """One raw key that may supply a canonical key's value; ``rule_id`` None for the fallback."""

    raw_key: str
    """Lower-cased raw key."""
    rule_id: int | None


@dataclass(frozen=True)
class ScopePlan:
    """The compiled rules of one scope: one dataset, or every dataset without rules of its own."""

    candidates: dict[str, list[Candidate]] = field(default_factory=dict)
    """Canonical key → its raw keys in coalescing order."""
    mapped: frozenset[str] = frozenset()
    """Lower-cased raw keys some rule of this scope maps."""


def plan_rules(rules: Sequence[NormalizationRule]) -> tuple[ScopePlan, dict[str, ScopePlan]]:
    """Compile rules into the global plan and one plan per dataset that has rules of its own.

    Args:
        rules: rules as the catalog lists them; disabled ones are ignored.

    Returns:
        ``(global_plan, {ingestion_id: plan})``.
    """
    enabled = [r for r in rules if r.enabled]
    ordered = sorted(enabled, key=lambda r: (r.priority, r.id))
    global_rules = [r for r in ordered if r.ingestion_id is None]
    datasets = sorted({r.ingestion_id for r in ordered if r.ingestion_id is not None})
    per_source = {
        ds: _plan([r for r in ordered if r.ingestion_id == ds], global_rules) for ds in datasets
    }
    return _plan([], global_rules), per_source


def _plan(own: list[NormalizationRule], global_rules: list[NormalizationRule]) -> ScopePlan:
    own_targets: dict[str, set[str]] = {}
    for rule in own:
        own_targets.setdefault(rule.raw_key.lower(), set()).add(rule.canonical_key)
    effective = list(own)
    for rule in global_rules:
        targets = own_targets.get(rule.raw_key.lower())
        # Per-source wins: the dataset maps this raw key elsewhere, so the global rule is off.
        if targets is not None and rule.canonical_key not in targets:
            continue
        effective.append(rule)
    candidates: dict[str, list[Candidate]] = {}
    for rule in effective:
        keys = candidates.setdefault(rule.canonical_key, [])
        raw = rule.raw_key.lower()
        # The first rule naming a raw key supplies its value; a later duplicate never could.
        if all(c.raw_key != raw for c in keys):
            keys.append(Candidate(raw, rule.id))
    mapped = frozenset(rule.raw_key.lower() for rule in effective)
    for canonical, keys in candidates.items():
        own_name = canonical.lower()
        if own_name not in mapped and all(c.raw_key != own_name for c in keys):
            keys.append(Candidate(own_name, None))
    return ScopePlan(candidates, mapped)


PAYLOAD_FUNCTION = "wb_payload_fields"
"""The JVM function that reads a JSON payload into ``raw`` and runs a scope plan on it."""
NUMERIC_FUNCTION = "wb_numeric_fields"
"""The JVM function that keeps the finite numbers of a ``fields`` map."""
RULES_USED = "_rules_used"
"""Helper column: ids of the rules whose raw key supplied a value (dropped by
:func:`silver_columns`)."""

_RULES = StructField(RULES_USED, ArrayType(LongType()))
#: name → (class in ``kernels/jvm/src``, return type).
_FUNCTIONS: dict[str, tuple[str, DataType]] = {
    PAYLOAD_FUNCTION: (
        "workbench.spark.PayloadFields",
        StructType([StructField("raw", _STR_MAP), StructField("fields", _STR_MAP), _RULES]),
    ),
    NUMERIC_FUNCTION: ("workbench.spark.NumericFields", _NUM_MAP),
}


def plan_text(plan: ScopePlan) -> str:
    """The text the JVM function reads a scope plan from: ``<key>\\n<JSON>``.

    JSON: ``{"c": [[canonical, [[raw_lower, rule_id | null], ...]], ...], "t": [taken, ...]}``,
    the candidates in coalescing order and the lower-cased raw keys that never pass through
    under their own name (the mapped ones and the canonical names). The key, a digest of the
    JSON, is what the function caches parsed plans by (it sees the text once per row).
    """
    canon_lower = {c.lower() for c in plan.candidates}
    text = json.dumps(
        {
            "c": [
                [n, [[c.raw_key, c.rule_id] for c in keys]] for n, keys in plan.candidates.items()
            ],
            "t": sorted(plan.mapped | canon_lower),
        },
        separators=(",", ":"),
    )
    return f"{hashlib.blake2b(text.encode(), digest_size=8).hexdigest()}\n{text}"


def register_function(spark: SparkSession) -> None:
    """Make the JVM functions (:data:`PAYLOAD_FUNCTION`, :data:`NUMERIC_FUNCTION`) callable in
    ``spark``.

    Idempotent; Spark Connect sessions too. Functions are per session; a streaming query's own
    session is a clone and has them.
    """
    for name, (java_class, returns) in _FUNCTIONS.items():
        if not spark.catalog.functionExists(name):
            spark.udf.registerJavaFunction(name, java_class, returns)


def _plan_of_row(ingestion_id: Column, rules: Sequence[NormalizationRule]) -> Column:
    """The plan text of each row's scope (:func:`plan_text`).

    The rules are compiled here, on the driver, into one JSON plan per scope; the JVM functions
    apply a plan to a payload in one pass over its keys (as Spark expressions, each of the
    dozens of candidate keys costs a scan of the payload map).
    """
    global_plan, per_source = plan_rules(rules)
    return _scoped(
        ingestion_id, per_source, lambda p: F.lit(plan_text(p)), F.lit(plan_text(global_plan))
    )


def _scoped(
    ingestion_id: Column,
    per_source: dict[str, ScopePlan],
    make: Callable[[ScopePlan], Column],
    fallback: Column,
) -> Column:
    expr: Column | None = None
    for ds, plan in per_source.items():
        value = make(plan)
        expr = (
            F.when(ingestion_id == ds, value)
            if expr is None
            else expr.when(ingestion_id == ds, value)
        )
    return fallback if expr is None else expr.otherwise(fallback)


def _parse_time(text: Column) -> Column:
    """Epoch seconds, epoch milliseconds or an ISO-8601 string → timestamp; else null."""
    num = text.try_cast(DoubleType())
    return (
        F.when(num.isNull(), text.try_cast(TimestampType()))
        .when(F.abs(num) < 1e11, F.timestamp_seconds(num))
        .when(F.abs(num) < 1e14, F.timestamp_millis(num.cast("long")))
    )


def canonical_fields(df: DataFrame, rules: Sequence[NormalizationRule]) -> DataFrame:
    """Add ``raw`` (the payload as ``map<string, string>``) and ``fields`` (after the rules).

    ``raw`` is null for payloads that are not JSON objects; ``fields`` is then an empty map.
    Also adds :data:`RULES_USED` (for :func:`usage_aggregates`). The bronze columns silver
    does not keep (``payload``, ``meta``, ``hour``) are dropped right after parsing, so no
    later projection copies them.
    """
    register_function(df.sparkSession)
    payload = F.when(F.col("payload_kind") == "object", F.col("payload"))
    result = "_normalized"
    normalized = F.call_function(
        PAYLOAD_FUNCTION, payload, _plan_of_row(F.col("ingestion_id"), rules)
    )
    return (
        df.withColumn(result, normalized)
        .drop("payload", "meta", "hour")
        .withColumn("raw", F.col(f"{result}.raw"))
        .withColumn("fields", F.col(f"{result}.fields"))
        .withColumn(RULES_USED, F.col(f"{result}.{RULES_USED}"))
        .drop(result)
    )


def silver_columns(df: DataFrame, *, enriched_at: datetime | None = None) -> DataFrame:
    """Derive the silver columns from ``fields`` and project exactly :data:`SILVER_SCHEMA`.

    ``flags`` and ``sensitivity`` are taken when present (the batch processor adds them) and
    are otherwise empty / null.
    """
    f = F.col("fields")
    register_function(df.sparkSession)
    numeric = F.call_function(
        NUMERIC_FUNCTION, F.map_keys(f), F.map_values(f), F.lit(f"{SENSOR_KEY}\n{TIME_KEY}")
    )
    event_time = F.coalesce(F.col("event_time"), _parse_time(F.try_element_at(f, F.lit(TIME_KEY))))
    out = df
    if "flags" not in df.columns:
        out = out.withColumn("flags", F.array())
    if "sensitivity" not in df.columns:
        out = out.withColumn("sensitivity", F.lit(None))
    out = (
        out.withColumn("numeric", numeric)
        .withColumn("event_time", event_time)
        .withColumn("sensor_id", F.try_element_at(f, F.lit(SENSOR_KEY)))
        .withColumn(
            "enriched_at",
            F.current_timestamp() if enriched_at is None else batch_timestamp(enriched_at),
        )
        .withColumn("date", F.to_date(F.coalesce(F.col("event_time"), F.col("received_at"))))
    )
    return out.select(*(F.col(c.name).cast(c.dataType) for c in SILVER_SCHEMA.fields))


def normalize(df: DataFrame, rules: Sequence[NormalizationRule]) -> DataFrame:
    """Bronze rows (with the ``ingestion_id`` partition column) → silver rows, rules only.

    Args:
        df: rows with the bronze file columns plus ``ingestion_id``.
        rules: normalization rules (global and per dataset).

    Returns:
        A frame with exactly :data:`SILVER_SCHEMA`'s columns. ``raw`` is null for payloads
        that are not JSON objects; ``fields`` and ``numeric`` are then empty maps.
    """
    return silver_columns(canonical_fields(df, rules))


def usage_aggregates(rules: Sequence[NormalizationRule]) -> dict[int, Column]:
    """Per enabled rule, an aggregate counting rows where its raw key supplied the value.

    Evaluated over :func:`canonical_fields`' output (:data:`RULES_USED`), e.g. inside
    ``DataFrame.observe`` so usage costs no extra pass over the data.
    """
    used = F.col(RULES_USED)
    return {
        rule.id: F.sum(F.array_contains(used, F.lit(rule.id)).cast("int")).alias(f"n{rule.id}")
        for rule in rules
        if rule.enabled
    }


def rule_usage(bronze: DataFrame, rules: Sequence[NormalizationRule]) -> dict[int, int]:
    """Rows per rule where that rule's raw key supplied the canonical value, in one aggregate.

    Args:
        bronze: bronze rows with ``ingestion_id`` (what :func:`normalize` takes).
        rules: the rules to normalize them with.

    Returns:
        ``{rule_id: rows}`` for every enabled rule (zero when it supplied nothing).
    """
    aggs = usage_aggregates(rules)
    if not aggs:
        return {}
    row = canonical_fields(bronze, rules).agg(*aggs.values()).first()
    counts = row.asDict() if row is not None else {}
    return {rule_id: int(counts.get(f"n{rule_id}") or 0) for rule_id in aggs}
