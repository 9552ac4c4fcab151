"""Aggregate value rules materialized in gold by the stream: every function's value."""

from __future__ import annotations

import statistics
from typing import Any

import pytest
from pyspark.sql import functions as F

from tests.spark.conftest import WriteBronze, bronze_row
from workbench.catalog.store import Catalog
from workbench.core.settings import Settings
from workbench.enrichment.silver_stream import run_enrichment_once
from workbench.gold.aggregates import FUNCTIONS
from workbench.gold.gold_stream import run_gold_once

pytestmark = pytest.mark.spark

DS = "agg_ds"

#: Temperatures per (window start, sensor), per run of the streams: the second run folds
#: into the windows the first one wrote (the MERGE's update path) and opens a new one.
FIRST = {("10:00", "s1"): [10.0, 12.0, 17.0], ("10:00", "s2"): [5.0]}
SECOND = {("10:00", "s1"): [21.0], ("10:05", "s1"): [40.0, -2.5]}


def _rows(prefix: str, values: dict[tuple[str, str], list[float]]) -> list[dict[str, Any]]:
    rows = []
    for (start, sensor), temps in values.items():
        for i, temp in enumerate(temps):
            ts = f"2026-11-26T{start}:{10 * i + 5:02d}Z"
            payload = {"sensor_id": sensor, "temperature": temp, "ts": ts}
            rows.append(bronze_row(f"{prefix}-{start}-{sensor}-{i}", payload))
    # Neither counts: a temperature that is not a number, and a reading without one.
    ts = "2026-11-26T10:00:59Z"
    rows.append(bronze_row(f"{prefix}-nan", {"sensor_id": "s1", "temperature": "n/a", "ts": ts}))
    rows.append(bronze_row(f"{prefix}-hum", {"sensor_id": "s1", "humidity": 50, "ts": ts}))
    return rows


def _expected(function: str, values: list[float]) -> float | None:
    """The value computed in Python; stddev is the sample one (n - 1), as Spark's ``stddev``."""
    return {
        "avg": lambda v: statistics.fmean(v),
        "sum": lambda v: float(sum(v)),
        "min": lambda v: min(v),
        "max": lambda v: max(v),
        "count": lambda v: float(len(v)),
        "stddev": lambda v: statistics.stdev(v) if len(v) > 1 else None,
    }[function](values)


def _gold(spark: Any, settings: Settings, function: str) -> dict[tuple[str, str], Any]:
    """The rows of the rule named after ``function`` (table ``agg_<name>``), by window, sensor."""
    rows = spark.read.format("delta").load(settings.lake.gold(f"agg_{function}")).collect()
    return {(r.window_start.strftime("%H:%M"), r.groups["sensor_id"]): r for r in rows}


def _check(spark: Any, settings: Settings, values: dict[tuple[str, str], list[float]]) -> None:
    for function in FUNCTIONS:
        gold = _gold(spark, settings, function)
        assert sorted(gold) == sorted(values), function
        for key, temps in values.items():
            row = gold[key]
            assert row.function == function and row["count"] == len(temps)
            assert (row.min_value, row.max_value) == (min(temps), max(temps))
            assert row.sum_value == pytest.approx(sum(temps))
            expected = _expected(function, temps)
            if expected is None:
                assert row.value is None, (function, key)  # one reading has no stddev
            else:
                assert row.value == pytest.approx(expected, rel=1e-9), (function, key)


def test_every_aggregate_function_materializes_its_value(
    spark: Any, lake_settings: Settings, write_bronze: WriteBronze
) -> None:
    catalog = Catalog(lake_settings.catalog.url)
    # A table per rule (the default ``agg_<name>``): a rule naming a taken table is skipped.
    config = {"window": "5 minutes", "group_by": ["sensor_id"]}
    ids = {
        fn: catalog.add_value_rule(fn, "aggregate", "temperature", {**config, "function": fn})
        for fn in FUNCTIONS
    }
    write_bronze(lake_settings, DS, _rows("a", FIRST))
    run_enrichment_once(spark, lake_settings, catalog)
    run_gold_once(spark, lake_settings, catalog)
    _check(spark, lake_settings, FIRST)  # rows inserted by the MERGE

    write_bronze(lake_settings, DS, _rows("b", SECOND))
    run_enrichment_once(spark, lake_settings, catalog)
    run_gold_once(spark, lake_settings, catalog)
    both = {k: FIRST.get(k, []) + SECOND.get(k, []) for k in FIRST | SECOND}
    _check(spark, lake_settings, both)  # ("10:00", "s1") updated from the merged statistics

    # A running total per rule: two rows inserted, then one updated and one inserted.
    status = {r.id: (r.status, r.rows_affected) for r in catalog.value_rule_status()}
    assert {fn: status[i] for fn, i in ids.items()} == dict.fromkeys(FUNCTIONS, ("ok", 4))

    # Spark's own ``stddev`` is ``stddev_samp``: the rule's value is that, not the population
    # one (which differs for these four readings: 4.97 sample, 4.30 population).
    s1 = both[("10:00", "s1")]
    assert statistics.stdev(s1) != pytest.approx(statistics.pstdev(s1))
    silver = spark.read.format("delta").load(lake_settings.lake.silver_readings)
    by_spark = (
        silver.where((F.col("sensor_id") == "s1") & (F.minute("event_time") < 5))
        .agg(F.stddev(F.col("numeric")["temperature"]))
        .first()[0]
    )
    row = _gold(spark, lake_settings, "stddev")[("10:00", "s1")]
    assert row.value == pytest.approx(by_spark, rel=1e-9)
    assert row.value == pytest.approx(statistics.stdev(s1), rel=1e-9)
    catalog.close()
