"""Gold ``alerts``: threshold rules on any canonical field, re-armed per window.

A rule fires at most once per ``(rule, window, dataset, sensor)``: the first batch in which a
window's reading crosses the threshold inserts the alert, later batches of the same window only
move its peak value. The next window starts clean, so a sensor that stays hot alerts once per
window (not once forever, and not once per reading).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import reduce

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import (
    DoubleType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from workbench.catalog.records import AlertRule
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


def window_alerts(partials: DataFrame, rules: Sequence[AlertRule]) -> DataFrame | None:
    """Alerts raised by one batch's partial window statistics (:func:`partial_averages`).

    A partial maximum above a threshold means the window's maximum is too, so the batch's own
    partials decide without reading the stored windows back. Returns None without rules.
    """
    parts = []
    for rule in rules:
        if not rule.enabled or rule.op not in _OPS:
            continue
        symbol, column = _OPS[rule.op]
        scope = partials.where(F.col("field") == F.lit(rule.field))
        if rule.ingestion_id:
            scope = scope.where(F.col("ingestion_id") == F.lit(rule.ingestion_id))
        fired = scope.where(F.expr(f"{column} {symbol} {float(rule.threshold)!r}"))
        parts.append(
            fired.select(
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
        )
    return reduce(DataFrame.unionByName, parts) if parts else None


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
