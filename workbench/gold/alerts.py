"""Gold ``alerts``: threshold rules on any canonical field, re-armed per window.

A rule fires at most once per ``(rule, window, dataset, sensor)``: the first batch in which a
window's reading crosses the threshold inserts the alert, later batches of the same window only
move its peak value. The next window starts clean, so a sensor that stays hot alerts once per
window (not once forever, and not once per reading).

The same partials also say, per rule, sensor and window, whether the window crossed
(:func:`window_observations`): the catalog's alert states (firing, resolved, acknowledged)
advance from those, one state per rule and sensor however many windows cross.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from functools import reduce

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import (
    DoubleType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from workbench.catalog.records import AlertObservation, AlertRule
from workbench.core.settings import Settings
from workbench.spark.delta import ensure_delta_table

TABLE = "alerts"

ALERTS_SCHEMA = StructType(
    [
        StructField("rule_id", LongType()),
        StructField("rule_name", StringType()),
        StructField("field", StringType()),
        StructField("op", StringType()),
        StructField("threshold", DoubleType()),
        StructField("window_start", TimestampType()),
        StructField("window_end", TimestampType()),
        StructField("ingestion_id", StringType()),
        StructField("sensor_id", StringType()),
        StructField("value", DoubleType()),
        StructField("sensitivity", StringType()),
        StructField("first_seen_at", TimestampType()),
        StructField("updated_at", TimestampType()),
    ]
)

_OPS = {
    "gt": (">", "max_value"),
    "ge": (">=", "max_value"),
    "lt": ("<", "min_value"),
    "le": ("<=", "min_value"),
}


def _rule_scopes(
    partials: DataFrame, rules: Sequence[AlertRule]
) -> Iterator[tuple[AlertRule, DataFrame, Column, str]]:
    """Each enabled rule with the partials it watches, its crossing test and the column the
    test reads (``max_value`` for gt/ge, ``min_value`` for lt/le)."""
    for rule in rules:
        if not rule.enabled or rule.op not in _OPS:
            continue
        symbol, column = _OPS[rule.op]
        scope = partials.where(F.col("field") == F.lit(rule.field))
        if rule.ingestion_id:
            scope = scope.where(F.col("ingestion_id") == F.lit(rule.ingestion_id))
        yield rule, scope, F.expr(f"{column} {symbol} {float(rule.threshold)!r}"), column


def window_alerts(partials: DataFrame, rules: Sequence[AlertRule]) -> DataFrame | None:
    """Alerts raised by one batch's partial window statistics (:func:`partial_averages`).

    A partial maximum above a threshold means the window's maximum is too, so the batch's own
    partials decide without reading the stored windows back. Returns None without rules.
    """
    parts = [
        scope.where(crossed).select(
            F.lit(rule.id).cast(LongType()).alias("rule_id"),
            F.lit(rule.name).alias("rule_name"),
            "field",
            F.lit(rule.op).alias("op"),
            F.lit(float(rule.threshold)).alias("threshold"),
            "window_start",
            "window_end",
            "ingestion_id",
            "sensor_id",
            F.col(column).alias("value"),
            "sensitivity",
            F.current_timestamp().alias("first_seen_at"),
            F.current_timestamp().alias("updated_at"),
        )
        for rule, scope, crossed, column in _rule_scopes(partials, rules)
    ]
    return reduce(DataFrame.unionByName, parts) if parts else None


def window_observations(partials: DataFrame, rules: Sequence[AlertRule]) -> list[AlertObservation]:
    """What one batch's partial window statistics say of every enabled rule, per sensor and
    window: whether it crossed, and the batch's most extreme value (collected: one row per rule,
    sensor and window of the batch)."""
    parts = [
        scope.select(
            F.lit(rule.id).cast(LongType()).alias("rule_id"),
            F.lit(rule.op in ("gt", "ge")).alias("worse_is_higher"),
            "ingestion_id",
            "sensor_id",
            "window_start",
            F.coalesce(crossed, F.lit(False)).alias("crossed"),
            F.col(column).alias("value"),
            "sensitivity",
        )
        for rule, scope, crossed, column in _rule_scopes(partials, rules)
    ]
    if not parts:
        return []
    rows = reduce(DataFrame.unionByName, parts).collect()
    return [
        AlertObservation(
            rule_id=int(r["rule_id"]),
            ingestion_id=r["ingestion_id"] or "",
            sensor_id=r["sensor_id"] or "",
            window_start=_utc(r["window_start"]),
            crossed=bool(r["crossed"]),
            value=None if r["value"] is None else float(r["value"]),
            sensitivity=r["sensitivity"] or "restricted",
            worse_is_higher=bool(r["worse_is_higher"]),
        )
        for r in rows
    ]


def _utc(value: datetime) -> datetime:
    """Spark hands timestamps back naive, in the session's time zone (UTC in the engine)."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def merge_sql(target: str, source_view: str, earliest: datetime) -> str:
    """Insert new alerts; for an alert already raised, keep its most extreme value."""
    location = target.replace("`", "``")
    return f"""
        MERGE INTO delta.`{location}` AS t
        USING {source_view} AS s
        ON t.rule_id = s.rule_id AND t.window_start = s.window_start
           AND t.ingestion_id <=> s.ingestion_id AND t.sensor_id <=> s.sensor_id
           AND t.window_start >= TIMESTAMP '{earliest.isoformat()}'
        WHEN MATCHED THEN UPDATE SET
            value = CASE WHEN t.op IN ('gt', 'ge') THEN greatest(t.value, s.value)
                         ELSE least(t.value, s.value) END,
            updated_at = s.updated_at
        WHEN NOT MATCHED THEN INSERT *
    """


def ensure_alerts_table(spark: SparkSession, settings: Settings) -> None:
    """Create the empty alerts table if absent."""
    ensure_delta_table(spark, settings.lake.gold(TABLE), ALERTS_SCHEMA)
