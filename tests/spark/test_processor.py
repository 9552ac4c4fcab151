"""The batch processor and gold on a real session: devices, value rules, dedupe,
alerts and rule aggregates, and rule edits picked up by a running query."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.services import make_settings
from tests.spark.conftest import WriteBronze, bronze_row
from workbench.catalog.records import Device, StreamComputation
from workbench.catalog.store import Catalog
from workbench.core.settings import Settings
from workbench.enrichment.silver_stream import run_enrichment_once, start_enrichment
from workbench.gold import alerts
from workbench.gold.gold_stream import GoldProcessor, run_gold_once
from workbench.metrics.engine import EngineMetrics

pytestmark = pytest.mark.spark

TS = "2026-11-26T10:00:{:02d}Z"


def _silver(spark: Any, settings: Settings) -> dict[str, Any]:
    rows = spark.read.format("delta").load(settings.lake.silver_readings).collect()
    return {r.message_id: r for r in rows}


def _reading(mid: str, sensor: str, temp: float, second: int = 0) -> dict[str, Any]:
    return bronze_row(mid, {"sensor_id": sensor, "temperature": temp, "ts": TS.format(second)})


def test_unregistered_sources_are_held_then_flow_once_registered(
    spark: Any, tmp_path: Any, write_bronze: WriteBronze
) -> None:
    settings = make_settings(tmp_path, engine={"device_policy": "require_approval"})
    catalog = Catalog(settings.catalog.url)
    catalog.save_device(Device("known", sensitivity="confidential"))
    catalog.save_device(Device("off", enabled=False))
    write_bronze(settings, "known", [_reading("k1", "s1", 20)])
    write_bronze(settings, "newcomer", [_reading("n1", "s2", 21), _reading("n2", "s2", 22, 5)])
    write_bronze(settings, "off", [_reading("o1", "s3", 23)])
    run_enrichment_once(spark, settings, catalog)

    assert sorted(_silver(spark, settings)) == ["k1"]
    assert _silver(spark, settings)["k1"].sensitivity == "confidential"
    held = spark.read.format("delta").load(settings.lake.silver_held)
    assert sorted(r.message_id for r in held.collect()) == ["n1", "n2", "o1"]

    catalog.save_device(Device("new*", sensitivity="public"))  # a wildcard registration
    write_bronze(settings, "known", [_reading("k2", "s1", 24, 10)])
    run_enrichment_once(spark, settings, catalog)

    silver = _silver(spark, settings)
    assert sorted(silver) == ["k1", "k2", "n1", "n2"]  # exactly once each
    assert silver["n1"].sensitivity == "public" and silver["n1"].sensor_id == "s2"
    held = spark.read.format("delta").load(settings.lake.silver_held)
    assert [r.message_id for r in held.collect()] == ["o1"]  # the disabled device stays held
    catalog.close()


def test_value_rules_apply_and_a_broken_rule_is_skipped_and_reported(
    spark: Any, lake_settings: Settings, write_bronze: WriteBronze
) -> None:
    catalog = Catalog(lake_settings.catalog.url)
    broken = catalog.add_value_rule("broken", "validate", "temperature", {"check": "regex"})
    plausible = catalog.add_value_rule(
        "plausible",
        "validate",
        "temperature",
        {"check": "range", "min": -40, "max": 60, "on_fail": "drop"},
        priority=1,
    )
    to_f = catalog.add_value_rule(
        "fahrenheit",
        "convert",
        "temperature",
        {"op": "mul", "value": 1.8, "target": "temp_f"},
        priority=2,
    )
    write_bronze(
        lake_settings,
        "ds",
        [
            _reading("ok", "s1", 10),
            _reading("hot", "s1", 99, 1),
            bronze_row("other", {"sensor": "b", "fill": 3}),
        ],
    )
    run_enrichment_once(spark, lake_settings, catalog)

    silver = _silver(spark, lake_settings)
    assert sorted(silver) == ["ok", "other"]  # "hot" dropped; the bin reading has no temperature
    assert silver["ok"].numeric == {"temperature": 10.0, "temp_f": 18.0}
    status = {r.id: r for r in catalog.value_rule_status()}
    assert status[broken].status == "failed" and "regex" in (status[broken].last_error or "")
    assert (status[plausible].status, status[plausible].rows_affected) == ("ok", 1)
    assert status[to_f].rows_affected == 1
    catalog.close()


def test_redelivered_messages_land_in_silver_once(
    spark: Any, lake_settings: Settings, write_bronze: WriteBronze
) -> None:
    catalog = Catalog(lake_settings.catalog.url)
    write_bronze(lake_settings, "ds", [_reading("m1", "s1", 1), _reading("m2", "s1", 2, 1)])
    run_enrichment_once(spark, lake_settings, catalog)
    # The ingest service crashed before acking m2: the broker redelivers it into a new file.
    write_bronze(lake_settings, "ds", [_reading("m2", "s1", 2, 1), _reading("m3", "s1", 3, 2)])
    run_enrichment_once(spark, lake_settings, catalog)
    rows = spark.read.format("delta").load(lake_settings.lake.silver_readings)
    assert sorted(r.message_id for r in rows.collect()) == ["m1", "m2", "m3"]
    catalog.close()


def test_gold_alerts_rearm_per_window_and_rule_aggregates_materialize(
    spark: Any, lake_settings: Settings, write_bronze: WriteBronze
) -> None:
    catalog = Catalog(lake_settings.catalog.url)
    catalog.add_alert_rule("too hot", "temperature", "gt", 30)
    catalog.add_value_rule(
        "max5",
        "aggregate",
        "temperature",
        {
            "function": "max",
            "window": "5 minutes",
            "group_by": ["sensor_id"],
            "table": "temp_max_5m",
        },
    )
    write_bronze(
        lake_settings,
        "ds",
        [
            _reading("a", "s1", 31, 0),
            _reading("b", "s1", 35, 10),  # same window: the same alert, a higher peak
            _reading("c", "s2", 20, 20),
            bronze_row("d", {"sensor_id": "s1", "temperature": 33, "ts": "2026-11-26T10:01:00Z"}),
        ],
    )
    run_enrichment_once(spark, lake_settings, catalog)
    run_gold_once(spark, lake_settings, catalog)

    fired = spark.read.format("delta").load(lake_settings.lake.gold(alerts.TABLE)).collect()
    got = sorted((r.window_start.strftime("%H:%M"), r.sensor_id, r.value) for r in fired)
    assert got == [("10:00", "s1", 35.0), ("10:01", "s1", 33.0)]  # once per window, s2 never

    agg = spark.read.format("delta").load(lake_settings.lake.gold("temp_max_5m")).collect()
    assert sorted((r.groups["sensor_id"], r.value, r["count"]) for r in agg) == [
        ("s1", 35.0, 3),
        ("s2", 20.0, 1),
    ]
    catalog.close()


def test_alert_states_fire_resolve_and_fire_again_once_per_episode(
    spark: Any, lake_settings: Settings, write_bronze: WriteBronze
) -> None:
    catalog = Catalog(lake_settings.catalog.url)
    rule = catalog.add_alert_rule("too hot", "temperature", "gt", 30)
    metrics = EngineMetrics(pod="t")

    def minute(mid: str, sensor: str, temp: float, at: str) -> dict[str, Any]:
        return bronze_row(
            mid, {"sensor_id": sensor, "temperature": temp, "ts": f"2026-11-26T{at}Z"}
        )

    def states() -> dict[str, Any]:
        return {s.sensor_id: s for s in catalog.list_alert_states()}

    def gauge(name: str, **labels: str) -> float | None:
        return metrics.registry.get_sample_value(name, {"pod": "t", **labels})

    write_bronze(
        lake_settings,
        "ds",
        [
            minute("a", "s1", 31, "10:00:00"),
            minute("b", "s1", 35, "10:00:10"),
            minute("c", "s2", 20, "10:00:20"),
            minute("d", "s1", 33, "10:01:00"),
        ],
    )
    run_enrichment_once(spark, lake_settings, catalog)
    run_gold_once(spark, lake_settings, catalog, metrics=metrics)
    (s1,) = states().values()  # one alert for two hot windows; s2 never crossed
    assert (s1.sensor_id, s1.status, s1.value, s1.episodes) == ("s1", "firing", 35.0, 1)
    assert gauge("workbench_alerts_firing", rule_id=str(rule)) == 1.0
    assert gauge("workbench_alert_transitions_total", rule_id=str(rule), status="firing") == 1.0

    # The same silver rows folded again (as by a replayed batch): the states stay as they are.
    silver = spark.read.format("delta").load(lake_settings.lake.silver_readings)
    GoldProcessor(lake_settings, catalog, app_id="replay").process(silver, 0)
    assert states()["s1"] == s1

    assert s1.id is not None
    catalog.acknowledge_alert(s1.id, "ana")
    write_bronze(lake_settings, "ds", [minute("e", "s1", 25, "10:02:00")])
    run_enrichment_once(spark, lake_settings, catalog)
    run_gold_once(spark, lake_settings, catalog, metrics=metrics)
    resolved = states()["s1"]
    assert (resolved.status, resolved.acknowledged_by) == ("resolved", "ana")
    assert gauge("workbench_alerts_firing", rule_id=str(rule)) == 0.0

    write_bronze(lake_settings, "ds", [minute("f", "s1", 40, "10:03:00")])
    run_enrichment_once(spark, lake_settings, catalog)
    run_gold_once(spark, lake_settings, catalog, metrics=metrics)
    again = states()["s1"]
    assert (again.status, again.episodes, again.value, again.acknowledged_by) == (
        "firing",
        2,
        40.0,
        None,
    )
    assert gauge("workbench_alert_transitions_total", rule_id=str(rule), status="firing") == 2.0
    catalog.close()


def test_an_aggregate_rule_never_writes_into_another_writers_gold_table(
    spark: Any, lake_settings: Settings, write_bronze: WriteBronze
) -> None:
    catalog = Catalog(lake_settings.catalog.url)
    catalog.save_stream_computation(
        StreamComputation("hot", "SELECT sensitivity FROM silver WHERE 1 = 0")
    )
    config = {"function": "max", "window": "5 minutes", "group_by": ["sensor_id"]}
    clash = catalog.add_value_rule("clash", "aggregate", "temperature", {**config, "table": "HOT"})
    own = catalog.add_value_rule(
        "gold_avg", "aggregate", "temperature", {**config, "table": "sensor_averages"}
    )
    write_bronze(lake_settings, "ds", [_reading("a", "s1", 31, 0)])
    run_enrichment_once(spark, lake_settings, catalog)
    run_gold_once(spark, lake_settings, catalog)

    status = {r.id: r for r in catalog.value_rule_status()}
    assert status[clash].status == "failed"
    assert "stream computation 'hot'" in (status[clash].last_error or "")
    assert status[own].status == "failed" and "the gold averages" in (status[own].last_error or "")
    assert not Path(lake_settings.lake.gold("hot")).exists()
    averages = spark.read.format("delta").load(lake_settings.lake.gold("sensor_averages"))
    assert "groups" not in averages.columns and averages.count() > 0
    catalog.close()


def test_a_rule_edit_applies_within_one_trigger_of_a_running_query(
    spark: Any, lake_settings: Settings, write_bronze: WriteBronze
) -> None:
    catalog = Catalog(lake_settings.catalog.url)
    query = start_enrichment(spark, lake_settings, catalog)
    try:
        write_bronze(lake_settings, "ds", [bronze_row("x1", {"id": "s", "tmp": 1.5})])
        query.processAllAvailable()
        catalog.add_rule("tmp", "temperature")
        write_bronze(lake_settings, "ds", [bronze_row("x2", {"id": "s", "tmp": 2.5})])
        query.processAllAvailable()  # the next trigger, same query: no restart
    finally:
        query.stop()
    silver = _silver(spark, lake_settings)
    assert silver["x1"].fields == {"sensorId": "s", "tmp": "1.5"}
    assert silver["x2"].fields == {"sensorId": "s", "temperature": "2.5"}
    catalog.close()
