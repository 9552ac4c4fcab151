"""The enrichment and gold streams on a real session, run to completion with availableNow."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from deltalake import DeltaTable as IndependentReader

from tests.spark.conftest import WriteBronze, bronze_row
from workbench.catalog.store import Catalog
from workbench.core.settings import Settings
from workbench.enrichment.batch import BatchProcessor
from workbench.enrichment.bronze_schema import BRONZE_READ_SCHEMA
from workbench.enrichment.silver_stream import run_enrichment_once
from workbench.gold import alerts
from workbench.gold.averages import TABLE
from workbench.gold.gold_stream import GoldProcessor, run_gold_once

pytestmark = pytest.mark.spark

DS = "mqtt_demo_0001"


def _silver(spark: Any, settings: Settings) -> dict[str, Any]:
    rows = spark.read.format("delta").load(settings.lake.silver_readings).collect()
    return {r.message_id: r for r in rows}


def _gold(spark: Any, settings: Settings) -> dict[tuple[str, str, str], Any]:
    rows = spark.read.format("delta").load(settings.lake.gold(TABLE)).collect()
    return {(r.window_start.strftime("%H:%M"), r.sensor_id, r.field): r for r in rows}


#: Columns that identify a row of each gold table (the MERGE keys).
GOLD_KEYS = {
    TABLE: ("window_start", "ingestion_id", "sensor_id", "field"),
    alerts.TABLE: ("rule_id", "window_start", "ingestion_id", "sensor_id"),
}


def _plain(value: Any) -> Any:
    """A value as both readers can agree on it: instants as epoch seconds, maps as dicts."""
    if isinstance(value, datetime):
        # Spark gives naive local times, delta-rs aware UTC ones: the same instant either way.
        return round(value.timestamp(), 6)
    if isinstance(value, list) and all(isinstance(v, tuple) and len(v) == 2 for v in value):
        return dict(value)  # a map, as delta-rs returns it
    return value


def _sorted_on(rows: list[dict[str, Any]], key: tuple[str, ...]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda r: [(r[k] is None, r[k]) for k in key])


def _assert_same_as_delta_rs(spark: Any, path: str, key: tuple[str, ...]) -> int:
    """Read a Delta table with Spark and with delta-rs: the same rows (floats to 1e-9)."""
    frame = spark.read.format("delta").load(path)
    by_spark = [
        {k: _plain(v) for k, v in r.asDict(recursive=True).items()} for r in frame.collect()
    ]
    table = IndependentReader(path).to_pyarrow_table()
    by_delta_rs = [{k: _plain(v) for k, v in r.items()} for r in table.to_pylist()]
    assert table.num_rows == len(by_spark)
    assert table.column_names == frame.columns
    for ours, theirs in zip(_sorted_on(by_spark, key), _sorted_on(by_delta_rs, key), strict=True):
        for column, value in ours.items():
            if isinstance(value, float):
                assert theirs[column] == pytest.approx(value, rel=1e-9, abs=1e-9), column
            else:
                assert theirs[column] == value, column
    return len(by_spark)


def test_bronze_to_silver_to_gold(
    spark: Any, lake_settings: Settings, write_bronze: WriteBronze
) -> None:
    catalog = Catalog(lake_settings.catalog.url)  # seeded with the default rules
    catalog.add_alert_rule("hot", "temperature", "gt", 24)  # so gold has alerts too
    write_bronze(
        lake_settings,
        DS,
        [
            bronze_row(
                "m1", {"sensor_id": "t-1", "temperature": 20.0, "timestamp": "2026-11-26T10:00:10Z"}
            ),
            bronze_row(
                "m2",
                {"SensorId": "t-1", "Temp": 22.0, "ts": "2026-11-26T10:00:40Z", "humidity": 50},
            ),
            bronze_row(
                "m3", {"device_id": "t-2", "temp_c": "30", "timestamp": "2026-11-26T10:00:30Z"}
            ),
        ],
    )
    write_bronze(
        lake_settings,
        DS,
        [
            bronze_row(
                "m4",
                {
                    "sensor_id": "t-1",
                    "temperature": 25,
                    "timestamp": "2026-11-26T10:01:05Z",
                    "note": "hello",
                },
            ),
            bronze_row("m5", "not json at all"),
        ],
    )

    run_enrichment_once(spark, lake_settings, catalog)
    silver = _silver(spark, lake_settings)

    assert sorted(silver) == ["m1", "m2", "m3", "m4", "m5"]
    m2 = silver["m2"]
    assert m2.ingestion_id == DS
    assert m2.sensor_id == "t-1"
    assert m2.fields == {
        "sensorId": "t-1",
        "temperature": "22.0",
        "timestamp": "2026-11-26T10:00:40Z",
        "humidity": "50",
    }
    assert m2.numeric == {"temperature": 22.0, "humidity": 50.0}
    assert m2.event_time == datetime(2026, 11, 26, 10, 0, 40)  # session time zone is UTC
    assert silver["m3"].sensor_id == "t-2"
    assert silver["m4"].fields["note"] == "hello"
    assert silver["m5"].raw is None and silver["m5"].fields == {}
    assert silver["m5"].payload_kind == "non_json"

    run_gold_once(spark, lake_settings, catalog)
    gold = _gold(spark, lake_settings)

    assert set(gold) == {
        ("10:00", "t-1", "temperature"),
        ("10:00", "t-1", "humidity"),
        ("10:00", "t-2", "temperature"),
        ("10:01", "t-1", "temperature"),
    }
    t1 = gold[("10:00", "t-1", "temperature")]
    assert (t1.avg_value, t1.min_value, t1.max_value, t1["count"]) == (21.0, 20.0, 22.0, 2)
    assert t1.window_end.strftime("%H:%M") == "10:01"
    assert t1.ingestion_id == DS and t1.updated_at is not None
    assert (t1.sum_value, t1.sum_sq, t1.stddev_value) == (42.0, 884.0, 2**0.5)
    assert t1.sensitivity == "internal"  # auto-registered device, default sensitivity
    assert gold[("10:00", "t-2", "temperature")].avg_value == 30.0
    assert gold[("10:01", "t-1", "temperature")]["count"] == 1

    # A later reading in an open window updates its row instead of adding one.
    write_bronze(
        lake_settings,
        DS,
        [
            bronze_row(
                "m6", {"sensor_id": "t-1", "temperature": 27, "timestamp": "2026-11-26T10:01:50Z"}
            )
        ],
        hour="10",
    )
    run_enrichment_once(spark, lake_settings, catalog)
    run_gold_once(spark, lake_settings, catalog)
    gold = _gold(spark, lake_settings)
    assert len(gold) == 4
    late = gold[("10:01", "t-1", "temperature")]
    assert (late.avg_value, late["count"], late.min_value, late.max_value) == (26.0, 2, 25.0, 27.0)

    # An independent Delta reader (delta-rs) sees every gold table as Spark does.
    gold_root = Path(lake_settings.lake.gold(TABLE)).parent
    tables = sorted(p.name for p in gold_root.iterdir() if (p / "_delta_log").is_dir())
    assert tables == sorted(GOLD_KEYS)
    counts = {
        t: _assert_same_as_delta_rs(spark, lake_settings.lake.gold(t), GOLD_KEYS[t]) for t in tables
    }
    assert counts == {TABLE: 4, alerts.TABLE: 2}  # 30 for t-2 at 10:00, 25 then 27 for t-1 at 10:01
    catalog.close()


def test_rule_edit_applies_to_the_next_batch(
    spark: Any, lake_settings: Settings, write_bronze: WriteBronze
) -> None:
    catalog = Catalog(lake_settings.catalog.url)
    ts = "2026-11-26T10:00:00Z"
    write_bronze(lake_settings, DS, [bronze_row("a1", {"id": "s", "reading": 1.5, "ts": ts})])
    run_enrichment_once(spark, lake_settings, catalog)

    rule = catalog.add_rule("READING", "temperature", ingestion_id=DS)
    write_bronze(lake_settings, DS, [bronze_row("a2", {"id": "s", "reading": 2.5, "ts": ts})])
    run_enrichment_once(spark, lake_settings, catalog)

    silver = _silver(spark, lake_settings)
    assert silver["a1"].fields == {"sensorId": "s", "reading": "1.5", "timestamp": ts}
    assert silver["a2"].fields == {"sensorId": "s", "temperature": "2.5", "timestamp": ts}
    usage = {u.id: u.rows_affected for u in catalog.rule_usage()}
    assert usage[rule.id] == 1
    catalog.close()


def test_replayed_batches_do_not_duplicate(
    spark: Any, lake_settings: Settings, write_bronze: WriteBronze
) -> None:
    catalog = Catalog(lake_settings.catalog.url)
    write_bronze(
        lake_settings,
        DS,
        [
            bronze_row("r1", {"sensor": "x", "temperature": 1, "ts": "2026-11-26T10:00:00Z"}),
            bronze_row("r2", {"sensor": "x", "temperature": 3, "ts": "2026-11-26T10:00:30Z"}),
        ],
    )
    batch = spark.read.schema(BRONZE_READ_SCHEMA).parquet(lake_settings.lake.bronze)
    from workbench.enrichment.silver_stream import ensure_silver_table
    from workbench.gold.averages import ensure_gold_table

    ensure_silver_table(spark, lake_settings)
    processor = BatchProcessor(spark, lake_settings, catalog, app_id="test-app")
    # The same batch id twice, as after a crash before the checkpoint commit.
    first, replay = processor.process(batch, 0), processor.process(batch, 0)
    assert (first.committed, first.written) == (True, 2)
    assert (replay.committed, replay.written) == (False, 0)
    silver = spark.read.format("delta").load(lake_settings.lake.silver_readings)
    assert silver.count() == 2
    # Usage is counted once: the replay committed nothing.
    usage = {u.rule.raw_key: u.rows_affected for u in catalog.rule_usage() if u.rows_affected}
    assert usage == {"sensor": 2, "temperature": 2, "ts": 2}

    ensure_gold_table(spark, lake_settings)
    gold_processor = GoldProcessor(lake_settings, catalog, app_id="test-gold")
    assert gold_processor.process(silver, 0) == {TABLE: 1}
    assert gold_processor.process(silver, 0) == {TABLE: 0}  # replayed: skipped, not re-added
    gold = _gold(spark, lake_settings)
    assert list(gold) == [("10:00", "x", "temperature")]
    assert gold[("10:00", "x", "temperature")].avg_value == 2.0
    assert gold[("10:00", "x", "temperature")]["count"] == 2
    catalog.close()


def test_gold_keeps_a_watermark_and_still_merges_late_readings(
    spark: Any, lake_settings: Settings, write_bronze: WriteBronze
) -> None:
    """Spark's event-time watermark on gold moves with the newest event; a reading behind it
    is counted as late and lands in its window all the same."""
    from datetime import UTC

    from prometheus_client import generate_latest

    from workbench.gold.gold_stream import QUERY_NAME
    from workbench.metrics.engine import EngineMetrics
    from workbench.spark.files import LakeFiles
    from workbench.streams.queries import batch_watermark, checkpoint_path

    catalog = Catalog(lake_settings.catalog.url)
    metrics = EngineMetrics(pod="p")

    def reading(message_id: str, hh_mm: str) -> dict[str, Any]:
        payload = {"sensor_id": "s1", "temperature": 20.0, "ts": f"2026-11-26T{hh_mm}:30Z"}
        return bronze_row(message_id, payload)

    def late_records() -> float:
        text = generate_latest(metrics.registry).decode()
        line = next(ln for ln in text.splitlines() if ln.startswith("gold_late_records_total{"))
        return float(line.split()[-1])

    write_bronze(lake_settings, DS, [reading("a", "10:00"), reading("b", "10:10")])
    run_enrichment_once(spark, lake_settings, catalog)
    run_gold_once(spark, lake_settings, catalog, metrics=metrics)
    assert late_records() == 0  # the first batch runs before any watermark

    # The newest event so far is 10:10:30: the next batch's watermark is 2 minutes behind it.
    write_bronze(lake_settings, DS, [reading("late", "09:00"), reading("c", "10:20")])
    run_enrichment_once(spark, lake_settings, catalog)
    run_gold_once(spark, lake_settings, catalog, metrics=metrics)
    checkpoint = checkpoint_path(lake_settings.lake.checkpoints, QUERY_NAME)
    expected = datetime(2026, 11, 26, 10, 8, 30, tzinfo=UTC).timestamp()
    assert batch_watermark(LakeFiles(None), checkpoint, 1) == expected
    assert batch_watermark(LakeFiles(None), checkpoint, 0) is None
    assert late_records() == 1
    gold = _gold(spark, lake_settings)
    assert sorted(k[0] for k in gold if k[2] == "temperature") == [
        "09:00",
        "10:00",
        "10:10",
        "10:20",
    ]
    assert gold[("09:00", "s1", "temperature")]["count"] == 1  # merged, not dropped
