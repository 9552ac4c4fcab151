"""``aggregate`` value rules materialized in gold: user-defined windowed aggregations.

A rule ``{"function": "avg", "window": "5 minutes", "group_by": ["sensor_id"], "table": "t"}``
on canonical field ``f`` keeps, per window and group, the mergeable statistics of ``f``'s numeric
values (count, sum, sum of squares, min, max) in ``gold/<table>`` and the requested function's
value computed from them, so every batch is folded in with one MERGE like the averages.
Group columns are ``sensor_id``, ``ingestion_id`` or any canonical field name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import (
    DoubleType,
    LongType,
    MapType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from workbench.catalog.records import ValueRule
from workbench.gold.averages import stddev_sql
from workbench.gold.labels import highest_label, highest_label_sql

FUNCTIONS = ("avg", "sum", "min", "max", "count", "stddev")
_TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_COLUMNS = ("sensor_id", "ingestion_id")

RULE_AGGREGATE_SCHEMA = StructType(
    [
        StructField("rule_id", LongType()),
        StructField("window_start", TimestampType()),
        StructField("window_end", TimestampType()),
        StructField("group_key", StringType()),
        StructField("groups", MapType(StringType(), StringType())),
        StructField("field", StringType()),
        StructField("function", StringType()),
        StructField("value", DoubleType()),
        StructField("count", LongType()),
        StructField("sum_value", DoubleType()),
        StructField("sum_sq", DoubleType()),
        StructField("min_value", DoubleType()),
        StructField("max_value", DoubleType()),
        StructField("sensitivity", StringType()),
        StructField("updated_at", TimestampType()),
    ]
)


def table_of(rule: ValueRule) -> str:
    """The gold table an aggregate rule writes (``config.table``, default ``agg_<name>``)."""
    return str(rule.config.get("table") or f"agg_{rule.name}")


def check_aggregate(rule: ValueRule) -> str | None:
    """Why an aggregate rule cannot run, or None."""
    c = rule.config
    if c.get("function") not in FUNCTIONS:
        return f"aggregate function {c.get('function')!r} is not one of {list(FUNCTIONS)}"
    window = c.get("window")
    if not isinstance(window, str) or not re.match(r"^\d+\s+(second|minute|hour|day)s?$", window):
        return f"aggregate window {window!r} is not like '5 minutes'"
    groups = c.get("group_by", ["sensor_id"])
    if not isinstance(groups, list) or not all(isinstance(g, str) and g for g in groups):
        return "group_by must be a list of column or field names"
    if not _TABLE_NAME.match(table_of(rule)):
        return f"table {table_of(rule)!r} is not a valid table name"
    return None


def _group_value(name: str) -> Column:
    return F.col(name) if name in _COLUMNS else F.try_element_at(F.col("fields"), F.lit(name))


def partial_rule_aggregate(silver: DataFrame, rule: ValueRule) -> DataFrame:
    """One batch's statistics for ``rule`` per window and group (:data:`RULE_AGGREGATE_SCHEMA`)."""
    c = rule.config
    groups: list[str] = list(c.get("group_by", ["sensor_id"]))
    rows = silver.where(F.col("event_time").isNotNull())
    if rule.ingestion_id:
        rows = rows.where(F.col("ingestion_id") == F.lit(rule.ingestion_id))
    value = F.try_element_at(F.col("numeric"), F.lit(rule.field))
    group_map = F.create_map(*(x for g in groups for x in (F.lit(g), _group_value(g))))
    rows = rows.select(
        "event_time", "sensitivity", value.alias("v"), group_map.alias("groups")
    ).where(F.col("v").isNotNull())
    grouped = rows.groupBy(F.window("event_time", c["window"]).alias("w"), "groups").agg(
        F.count("v").alias("count"),
        F.sum("v").alias("sum_value"),
        F.sum(F.col("v") * F.col("v")).alias("sum_sq"),
        F.min("v").alias("min_value"),
        F.max("v").alias("max_value"),
        highest_label("sensitivity").alias("sensitivity"),
    )
    return grouped.select(
        F.lit(rule.id).cast(LongType()).alias("rule_id"),
        F.col("w.start").alias("window_start"),
        F.col("w.end").alias("window_end"),
        F.to_json(F.map_entries("groups")).alias("group_key"),
        "groups",
        F.lit(rule.field).alias("field"),
        F.lit(c["function"]).alias("function"),
        F.lit(None).cast(DoubleType()).alias("value"),
        F.col("count").cast(LongType()).alias("count"),
        "sum_value",
        "sum_sq",
        "min_value",
        "max_value",
        "sensitivity",
        F.current_timestamp().alias("updated_at"),
    )


def merge_sql(target: str, source_view: str, earliest: datetime) -> str:
    """Fold partial statistics into ``target`` and recompute each row's ``value``."""
    n, total, squares = (
        "(t.count + s.count)",
        "(t.sum_value + s.sum_value)",
        "(t.sum_sq + s.sum_sq)",
    )
    lo, hi = "least(t.min_value, s.min_value)", "greatest(t.max_value, s.max_value)"
    location = target.replace("`", "``")
    first = value_sql(
        "s.function", "s.count", "s.sum_value", "s.sum_sq", "s.min_value", "s.max_value"
    )
    return f"""
        MERGE INTO delta.`{location}` AS t
        USING (SELECT s.*, {first} AS v
               FROM {source_view} AS s) AS s
        ON t.rule_id = s.rule_id AND t.window_start = s.window_start AND t.group_key = s.group_key
           AND t.window_start >= TIMESTAMP '{earliest.isoformat()}'
        WHEN MATCHED THEN UPDATE SET
            count = {n}, sum_value = {total}, sum_sq = {squares},
            min_value = {lo}, max_value = {hi},
            value = {value_sql("t.function", n, total, squares, lo, hi)},
            sensitivity = {highest_label_sql("s.sensitivity", "t.sensitivity")},
            updated_at = s.updated_at
        WHEN NOT MATCHED THEN INSERT (
            rule_id, window_start, window_end, group_key, groups, field, function, value, count,
            sum_value, sum_sq, min_value, max_value, sensitivity, updated_at
        ) VALUES (
            s.rule_id, s.window_start, s.window_end, s.group_key, s.groups, s.field, s.function,
            s.v, s.count, s.sum_value, s.sum_sq, s.min_value, s.max_value, s.sensitivity,
            s.updated_at
        )
    """


def value_sql(function: str, n: str, total: str, squares: str, lo: str, hi: str) -> str:
    """SQL for the rule's function (the column ``function``) from the mergeable statistics."""
    return f"""CASE {function}
        WHEN 'avg' THEN {total} / {n}
        WHEN 'sum' THEN {total}
        WHEN 'min' THEN {lo}
        WHEN 'max' THEN {hi}
        WHEN 'count' THEN CAST({n} AS DOUBLE)
        WHEN 'stddev' THEN {stddev_sql(n, total, squares)}
    END"""


def runnable(
    rules: Sequence[ValueRule], taken: Mapping[str, str] | None = None
) -> tuple[list[ValueRule], dict[int, str]]:
    """Enabled aggregate rules that can run, and the others with their reasons.

    Args:
        rules: the catalog's value rules.
        taken: gold tables other writers own (name → what it holds, e.g. a stream
            computation): a rule whose table is one of them is skipped, never mixed into it.
            Of rules naming the same table, the oldest (lowest id) owns it.
    """
    owners = {name.lower(): owner for name, owner in (taken or {}).items()}
    ok, skipped = [], {}
    for rule in sorted(rules, key=lambda r: r.id):
        if rule.kind != "aggregate" or not rule.enabled:
            continue
        problem = check_aggregate(rule)
        owner = owners.get(table_of(rule).lower())
        if problem is None and owner is not None:
            problem = (
                f"its table gold.{table_of(rule)} holds {owner}; set another config.table "
                "or rename the rule"
            )
        if problem is None:
            ok.append(rule)
            owners[table_of(rule).lower()] = f"aggregate rule {rule.id} ({rule.name})"
        else:
            skipped[rule.id] = problem
    return ok, skipped
