"""Normalization of bronze rows into the silver union schema (F15, F16): pure transforms.

Every source becomes the same columns: envelope columns, the raw payload as ``map<string,
string>``, canonical ``fields`` after the rules, the numeric subset, and event time.

Rule semantics, per dataset (``ingestion_id``):

- raw keys match case-insensitively;
- the candidate raw keys of a canonical key are the dataset's own rules (by priority, id)
  followed by the global rules (priority, id); the first non-null value wins (coalesce);
- a global rule is ignored for a dataset whose own rules map the same raw key to a different
  canonical key (per-source wins);
- raw keys no rule maps keep their own name, so nothing in the payload is lost. A raw key whose
  name equals a canonical key case-insensitively is that key's last-resort candidate.

The rules are compiled on the driver into one ``CASE ingestion_id`` expression, so a batch is
normalized in a single projection whatever the number of datasets.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import (
    ArrayType,
    DateType,
    DoubleType,
    MapType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from workbench.catalog.records import NormalizationRule

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


RAW_LOWER = "_raw_lc"
"""Helper column: ``raw`` without nulls, keys lower-cased (dropped by :func:`silver_columns`)."""


def _lower_keys(raw: Column) -> Column:
    """``raw``'s non-null entries keyed by lower-cased key.

    One hash lookup per candidate key instead of a scan of the whole map per candidate (the
    largest cost of normalization). Keys differing only in case within one payload collapse to
    the last one (the session's ``mapKeyDedupPolicy`` is ``LAST_WIN``).
    """
    present = F.map_filter(raw, lambda k, v: v.isNotNull())
    return F.map_from_arrays(F.transform(F.map_keys(present), F.lower), F.map_values(present))


def _lookup(raw_lower: Column, key: str) -> Column:
    """The value whose key equals ``key`` (lower-case) case-insensitively, or null."""
    return F.try_element_at(raw_lower, F.lit(key))


def _empty_map(kind: MapType) -> Column:
    return F.create_map().cast(kind)


def _fields(raw: Column, plan: ScopePlan) -> Column:
    canon_lower = {c.lower() for c in plan.candidates}
    taken = sorted(plan.mapped | canon_lower)
    unmapped = F.map_filter(raw, lambda k, v: ~F.lower(k).isin(taken) & v.isNotNull())
    if not plan.candidates:
        return unmapped
    names = list(plan.candidates)
    lowered = F.col(RAW_LOWER)
    values = [F.coalesce(*(_lookup(lowered, c.raw_key) for c in plan.candidates[n])) for n in names]
    mapped = F.map_filter(
        F.map_from_arrays(F.array(*(F.lit(n) for n in names)), F.array(*values)),
        lambda k, v: v.isNotNull(),
    )
    return F.map_concat(mapped, unmapped)


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
    """
    global_plan, per_source = plan_rules(rules)
    raw = F.col("raw")
    iid = F.col("ingestion_id")
    fields = _scoped(iid, per_source, lambda p: _fields(raw, p), _fields(raw, global_plan))
    return (
        df.withColumn(
            "raw", F.when(F.col("payload_kind") == "object", F.from_json("payload", _STR_MAP))
        )
        .withColumn(RAW_LOWER, _lower_keys(raw))
        .withColumn("fields", F.when(raw.isNull(), _empty_map(_STR_MAP)).otherwise(fields))
    )


def silver_columns(df: DataFrame) -> DataFrame:
    """Derive the silver columns from ``fields`` and project exactly :data:`SILVER_SCHEMA`.

    ``flags`` and ``sensitivity`` are taken when present (the batch processor adds them) and
    are otherwise empty / null.
    """
    f = F.col("fields")
    numeric = F.map_filter(
        F.transform_values(f, lambda k, v: v.try_cast(DoubleType())),
        lambda k, v: v.isNotNull()
        & ~F.isnan(v)
        & (F.abs(v) != F.lit(float("inf")))
        & ~k.isin(SENSOR_KEY, TIME_KEY),
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
        .withColumn("enriched_at", F.current_timestamp())
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
    """Per rule, an aggregate counting rows where its raw key supplied the canonical value.

    Evaluated over a frame with ``raw`` and ``ingestion_id`` (:func:`canonical_fields`'
    output), e.g. inside ``DataFrame.observe`` so usage costs no extra pass over the data.
    """
    global_plan, per_source = plan_rules(rules)
    raw = F.col("raw")
    iid = F.col("ingestion_id")
    scopes: list[tuple[Column, ScopePlan]] = [(iid == ds, plan) for ds, plan in per_source.items()]
    others = iid.isNull() | ~iid.isin(list(per_source)) if per_source else F.lit(True)
    scopes.append((others, global_plan))
    supplied: dict[int, list[Column]] = {}
    for in_scope, plan in scopes:
        for keys in plan.candidates.values():
            earlier_null: Column = F.lit(True)
            for cand in keys:
                value = _lookup(F.col(RAW_LOWER), cand.raw_key)
                if cand.rule_id is not None:
                    supplied.setdefault(cand.rule_id, []).append(
                        in_scope & earlier_null & value.isNotNull()
                    )
                earlier_null = earlier_null & value.isNull()
    aggs = {}
    for rule_id, conds in supplied.items():
        hit = conds[0]
        for cond in conds[1:]:
            hit = hit | cond
        aggs[rule_id] = F.sum(F.when(raw.isNotNull() & hit, 1).otherwise(0)).alias(f"n{rule_id}")
    return aggs


def rule_usage(silver: DataFrame, rules: Sequence[NormalizationRule]) -> dict[int, int]:
    """Rows per rule where that rule's raw key supplied the canonical value, in one aggregate.

    Args:
        silver: the output of :func:`normalize` for one batch (``raw`` and ``ingestion_id``).
        rules: the rules the batch was normalized with.

    Returns:
        ``{rule_id: rows}`` for every enabled rule (zero when it supplied nothing).
    """
    aggs = usage_aggregates(rules)
    if not aggs:
        return {}
    if RAW_LOWER not in silver.columns:
        silver = silver.withColumn(RAW_LOWER, _lower_keys(F.col("raw")))
    row = silver.agg(*aggs.values()).first()
    counts = row.asDict() if row is not None else {}
    return {rule_id: int(counts.get(f"n{rule_id}") or 0) for rule_id in aggs}
