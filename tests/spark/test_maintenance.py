"""Lake maintenance on real Delta tables: compaction, retention per device, VACUUM.

Outcomes are read back with the ``deltalake`` package, independently of Spark.
"""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from deltalake import DeltaTable as IndependentReader

from tests.fixtures.services import make_settings
from workbench.catalog.records import Device
from workbench.core.errors import ConfigError
from workbench.core.settings import Settings
from workbench.enrichment.normalization import SILVER_PARTITIONS, SILVER_SCHEMA
from workbench.gold.averages import GOLD_AVERAGES_SCHEMA
from workbench.maintenance.runner import (
    MaintenanceScheduler,
    is_commit_conflict,
    run_maintenance,
)
from workbench.maintenance.steps import MaintenanceResult, compact, vacuum
from workbench.spark.delta import ensure_delta_table

pytestmark = pytest.mark.spark

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
DEVICES = [
    Device("temp-001", retention_days=2),  # exact id: beats both wildcards below
    Device("temp-00*", retention_days=5),  # longer wildcard: beats temp-*
    Device("temp-*", retention_days=10),
    Device("temp-10*"),  # the most specific for temp-100, without retention: layer default
    Device("air-1"),  # no retention of its own: the layer default (30)
]


def silver_rows(ingestion_id: str, day: date, n: int, start: int = 0) -> list[dict[str, Any]]:
    at = datetime.combine(day, time(10), tzinfo=UTC)
    return [
        {
            "message_id": f"{ingestion_id}-{day}-{i}",
            "ingestion_id": ingestion_id,
            "source_type": "mqtt",
            "topic": f"sensors/{ingestion_id}",
            "received_at": at,
            "event_time": at + timedelta(seconds=i),
            "sensor_id": ingestion_id,
            "raw": {"t": str(i)},
            "fields": {"temperature": str(i)},
            "numeric": {"temperature": float(i)},
            "payload_kind": "object",
            "enriched_at": at,
            "date": day,
        }
        for i in range(start, start + n)
    ]


def append(
    spark: Any, path: str, rows: list[dict[str, Any]], schema: Any = SILVER_SCHEMA, files: int = 1
) -> None:
    """One Delta commit of ``rows``, as ``files`` files per partition (small files, one job)."""
    frame = spark.createDataFrame(rows, schema)
    frame = frame.coalesce(1) if files == 1 else frame.repartition(files)
    frame.write.format("delta").mode("append").save(path)


def settings_for(tmp_path: Path, **maintenance: Any) -> Settings:
    return make_settings(tmp_path, maintenance=maintenance)


def silver_table(spark: Any, settings: Settings) -> str:
    path = settings.lake.silver_readings
    ensure_delta_table(spark, path, SILVER_SCHEMA, partition_by=SILVER_PARTITIONS)
    return path


def data_files(path: str) -> set[str]:
    return {
        str(p.relative_to(path))
        for p in Path(path).rglob("*.parquet")
        if "_delta_log" not in p.parts
    }


def test_compaction_keeps_every_row_in_fewer_files(spark: Any, tmp_path: Path) -> None:
    settings = settings_for(tmp_path, compaction_min_files=8)
    path = silver_table(spark, settings)
    busy, quiet = date(2026, 11, 25), date(2026, 11, 24)
    append(spark, path, silver_rows("temp-001", busy, 30), files=10)  # ten small files
    append(spark, path, silver_rows("temp-001", quiet, 6), files=3)  # below min_files
    before = IndependentReader(path).to_pyarrow_table()
    quiet_files = {f for f in data_files(path) if "date=2026-11-24" in f}

    lines: list[str] = []
    results = run_maintenance(
        spark,
        settings,
        [],
        steps=("compact",),
        layers=("silver",),
        on_start=lambda table, step: lines.append(f"{table} {step}"),
        on_result=lambda r: lines.append(r.summary()),
    )

    [result] = results
    assert result.error is None and result.skipped is None
    assert (result.files_before, result.files_after, result.files_removed) == (13, 4, 10)
    assert lines[0] == "silver/readings compact"
    assert "13 -> 4 files" in lines[1]
    reader = IndependentReader(path)
    after = reader.to_pyarrow_table()
    assert len(reader.files()) == 4
    assert after.num_rows == before.num_rows == 36
    assert sorted(after.column("message_id").to_pylist()) == sorted(
        before.column("message_id").to_pylist()
    )
    sums = [
        sum(dict(m)["temperature"] for m in t.column("numeric").to_pylist())
        for t in (before, after)
    ]
    assert sums[0] == sums[1] == sum(range(30)) + sum(range(6))
    assert quiet_files <= set(reader.files())  # the quiet partition was not rewritten
    # A second run finds nothing worth compacting.
    again = compact(spark, path, min_files=8)
    assert again.skipped and again.files_after == 4


def test_retention_per_device_deletes_exactly_the_expired_rows(spark: Any, tmp_path: Path) -> None:
    settings = settings_for(tmp_path, silver_retention_days=30, gold_retention_days=30)
    silver = silver_table(spark, settings)
    offsets = [0, 1, 3, 6, 8, 15, 40]
    ids = ["temp-001", "temp-002", "temp-100", "air-1"]
    append(
        spark,
        silver,
        [r for i in ids for o in offsets for r in silver_rows(i, NOW.date() - timedelta(o), 2)],
    )
    gold = settings.lake.gold("sensor_averages")
    ensure_delta_table(spark, gold, GOLD_AVERAGES_SCHEMA)
    gold_days = {
        "temp-001": 2,
        "temp-002": 5,
        "temp-100": 30,
        "temp-110": 10,
        "air-1": 30,
        None: 30,
    }
    windows = []
    for iid, days in gold_days.items():
        for side, hours in (("kept", 1), ("expired", -1)):
            start = NOW - timedelta(days=days) + timedelta(hours=hours)
            windows.append(
                {
                    "window_start": start,
                    "window_end": start + timedelta(minutes=1),
                    "ingestion_id": iid,
                    "sensor_id": side,
                    "field": "temperature",
                    "avg_value": 1.0,
                    "min_value": 1.0,
                    "max_value": 1.0,
                    "count": 1,
                    "updated_at": NOW,
                }
            )
    append(spark, gold, windows, GOLD_AVERAGES_SCHEMA)
    silver_version = IndependentReader(silver).version()

    planned = run_maintenance(
        spark,
        settings,
        DEVICES,
        steps=("retention",),
        layers=("silver", "gold"),
        now=NOW,
        dry_run=True,
    )
    assert [(r.table, r.rows_deleted) for r in planned] == [
        ("silver/readings", 22),
        ("gold/sensor_averages", 6),
    ]
    assert IndependentReader(silver).version() == silver_version  # a dry run changes nothing

    done = run_maintenance(
        spark, settings, DEVICES, steps=("retention",), layers=("silver", "gold"), now=NOW
    )
    assert [(r.table, r.rows_deleted, r.error) for r in done] == [
        ("silver/readings", 22, None),
        ("gold/sensor_averages", 6, None),
    ]
    # Silver goes by whole days (metadata-only: no file rewritten): a day stays until all of
    # it is past the device's cutoff.
    assert done[0].files_removed == 11 and done[0].files_after == done[0].files_before - 11
    kept = {
        "temp-001": {0, 1},
        "temp-002": {0, 1, 3},
        "temp-100": {0, 1, 3, 6, 8, 15},
        "air-1": {0, 1, 3, 6, 8, 15},
    }
    rows = IndependentReader(silver).to_pyarrow_table(columns=["ingestion_id", "date"]).to_pylist()
    found = Counter((r["ingestion_id"], (NOW.date() - r["date"]).days) for r in rows)
    assert found == Counter({(i, o): 2 for i, days in kept.items() for o in days})
    # Gold goes by the window's exact time.
    left = IndependentReader(gold).to_pyarrow_table(columns=["ingestion_id", "sensor_id"])
    assert sorted(left.to_pylist(), key=str) == sorted(
        ({"ingestion_id": i, "sensor_id": "kept"} for i in gold_days), key=str
    )


def test_vacuum_removes_only_unreferenced_files(spark: Any, tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    path = silver_table(spark, settings)
    append(spark, path, silver_rows("temp-001", date(2026, 11, 25), 8), files=4)
    compact(spark, path, min_files=2)
    on_disk = data_files(path)
    referenced = set(IndependentReader(path).files())
    assert len(on_disk) == 5 and len(referenced) == 1

    with pytest.raises(ConfigError, match="ALLOW_SHORT_VACUUM_RETENTION"):
        vacuum(spark, path, retain_hours=0)
    safe = vacuum(spark, path, retain_hours=168)  # the files were replaced moments ago
    assert safe.files_removed == 0 and data_files(path) == on_disk
    planned = vacuum(spark, path, retain_hours=0, allow_short_retention=True, dry_run=True)
    assert planned.files_removed == 4 and data_files(path) == on_disk

    done = vacuum(spark, path, retain_hours=0, allow_short_retention=True)

    assert done.files_removed == 4 and done.bytes_removed > 0
    assert data_files(path) == referenced
    assert IndependentReader(path).to_pyarrow_table().num_rows == 8
    # The safety check is back on for everyone else once the VACUUM is done.
    assert spark.conf.get("spark.databricks.delta.retentionDurationCheck.enabled", "true") == "true"


def test_compaction_and_retention_commit_while_a_stream_appends(spark: Any, tmp_path: Path) -> None:
    """Like the enrichment stream: appends to today's partition go on during maintenance."""
    settings = settings_for(tmp_path, silver_retention_days=30, compaction_min_files=4)
    path = silver_table(spark, settings)
    today, old = NOW.date(), NOW.date() - timedelta(days=40)
    append(spark, path, silver_rows("temp-001", old, 3))
    append(spark, path, silver_rows("temp-001", today, 12), files=6)
    stop, appended, failures = threading.Event(), [12], []

    def keep_appending() -> None:
        try:
            while not stop.is_set():
                append(spark, path, silver_rows("temp-001", today, 2, start=appended[0]))
                appended[0] += 2
        except Exception as err:  # noqa: BLE001 - the assertion below shows the conflict
            failures.append(err)

    writer = threading.Thread(target=keep_appending)
    writer.start()
    try:
        results: list[MaintenanceResult] = run_maintenance(
            spark, settings, [], steps=("retention", "compact"), layers=("silver",), now=NOW
        )
    finally:
        stop.set()
        writer.join(60)
    assert not failures
    assert [(r.step, r.error) for r in results] == [("retention", None), ("compact", None)]
    assert results[0].rows_deleted == 3
    rows = IndependentReader(path).to_pyarrow_table(columns=["message_id", "date"])
    assert rows.num_rows == appended[0]  # every appended row is there, none twice
    assert set(rows.column("date").to_pylist()) == {today}


def test_scheduler_survives_a_failed_round(spark: Any, tmp_path: Path) -> None:
    settings = settings_for(tmp_path, interval_seconds=0.1, silver_retention_days=30)
    calls = 0
    second_round = threading.Event()

    def devices() -> list[Device]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("catalog away")
        second_round.set()
        return DEVICES

    scheduler = MaintenanceScheduler(spark, settings, devices)
    assert scheduler.start()
    try:
        assert second_round.wait(60)
    finally:
        scheduler.stop()  # lets the round in progress finish
    assert scheduler.rounds >= 1 and scheduler.last_error is None
    # The devices' retention reached the round: bronze was looked at (and is empty).
    assert [(r.table, r.step, r.skipped) for r in scheduler.last_results] == [
        ("bronze", "retention", "no bronze data")
    ]
    off = MaintenanceScheduler(spark, settings_for(tmp_path, interval_seconds=0), devices)
    assert not off.start()


def test_a_delta_commit_conflict_from_the_jvm_is_recognized(spark: Any) -> None:
    """DeltaTable calls raise conflicts as plain Py4JJavaError; the runner retries those."""
    from py4j.protocol import Py4JJavaError

    jvm = spark.sparkContext._jvm
    conflict = jvm.io.delta.exceptions.ConcurrentAppendException("files were added")
    other = jvm.java.lang.IllegalStateException("something else")
    assert is_commit_conflict(Py4JJavaError("o1.delete", conflict))
    assert not is_commit_conflict(Py4JJavaError("o1.delete", other))
    assert not is_commit_conflict(ValueError("plain"))


def test_a_terminal_step_failure_stops_that_step_only(spark: Any, tmp_path: Path) -> None:
    settings = settings_for(tmp_path, silver_retention_days=30)
    # A VACUUM retention Delta refuses, as a settings file edited by hand could hold (the
    # settings' own check is skipped by model_copy): a terminal ConfigError at every round.
    unsafe = settings.maintenance.model_copy(update={"vacuum_retain_hours": 1.0})
    settings = settings.model_copy(update={"maintenance": unsafe})
    silver_table(spark, settings)
    stopped: list[tuple[str, str]] = []
    scheduler = MaintenanceScheduler(
        spark, settings, lambda: DEVICES, on_terminal=lambda *s: stopped.append(s)
    )

    first = {(r.table, r.step): r for r in scheduler.run_once()}
    [(table, step)] = [key for key, r in first.items() if r.error]
    assert step == "vacuum" and "below Delta's safe" in (first[table, step].error or "")
    assert scheduler.stopped == {(table, "vacuum"): "config_error"}
    assert stopped == [(f"maintenance:vacuum:{table}", "config_error")]

    second = {(r.table, r.step) for r in scheduler.run_once()}
    assert (table, "vacuum") not in second  # not tried again
    assert {(table, "retention"), (table, "compact")} <= second  # the others still run
    assert len(stopped) == 1
