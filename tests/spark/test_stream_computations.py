"""User-defined stream computations on a real session: silver rows in, gold.<name> out."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.services import make_settings
from workbench.catalog.records import StreamComputation, ValueRule
from workbench.core.errors import ComputationError
from workbench.core.settings import Settings
from workbench.enrichment.normalization import SILVER_SCHEMA
from workbench.enrichment.silver_stream import ensure_silver_table
from workbench.gold.computation_query import (
    check_streamable,
    checkpoint_of,
    drop_computation,
    run_computation_once,
)
from workbench.gold.stream_computation import check_name

pytestmark = pytest.mark.spark

WINDOWED = """
    SELECT window.start AS window_start, window.end AS window_end, sensor_id, sensitivity,
           avg(numeric['temperature']) AS avg_temperature, count(*) AS readings
    FROM silver
    GROUP BY window(event_time, '1 minute'), sensor_id, sensitivity
"""
HOT = """
    SELECT message_id, sensor_id, event_time, numeric['temperature'] AS temperature, sensitivity
    FROM silver WHERE numeric['temperature'] > 15
"""


def _at(minute: int, second: int) -> datetime:
    return datetime(2026, 11, 26, 10, minute, second, tzinfo=UTC)


def _append_silver(
    spark: Any, settings: Settings, rows: list[tuple[str, str, datetime | None, float]]
) -> None:
    """Append ``(message_id, sensor_id, event_time, temperature)`` rows as one silver commit."""
    records: list[dict[str, Any]] = [
        {
            "message_id": mid,
            "ingestion_id": "mqtt_demo_0001",
            "source_type": "mqtt",
            "topic": "sensors/test",
            "received_at": _at(10, 0),
            "event_time": event_time,
            "sensor_id": sensor,
            "fields": {"temperature": str(value)},
            "numeric": {"temperature": value},
            "flags": [],
            "sensitivity": "internal",
            "enriched_at": _at(10, 0),
            "date": _at(0, 0).date(),
        }
        for mid, sensor, event_time, value in rows
    ]
    frame = spark.createDataFrame(records, SILVER_SCHEMA)
    frame.write.format("delta").mode("append").save(settings.lake.silver_readings)


def _lose_last_commit(settings: Settings, comp: StreamComputation) -> None:
    """A crash after the batch's Delta commit, before the checkpoint recorded it."""
    commits = Path(checkpoint_of(settings, comp)) / "commits"
    last = max(int(p.name) for p in commits.iterdir() if p.name.isdigit())
    os.remove(commits / str(last))
    os.remove(commits / f".{last}.crc")


def _gold(spark: Any, name: str) -> list[Any]:
    return spark.sql(f"SELECT * FROM gold.{name}").collect()


@pytest.fixture
def silver(spark: Any, lake_settings: Settings) -> Settings:
    """A fresh lake with an empty silver table."""
    ensure_silver_table(spark, lake_settings)
    return lake_settings


@pytest.fixture(scope="module")
def shared_silver(spark: Any, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """One lake with silver for checks that write nothing."""
    settings = make_settings(tmp_path_factory.mktemp("shared-silver"))
    ensure_silver_table(spark, settings)
    _append_silver(spark, settings, [("a", "s1", _at(0, 1), 10.0)])
    return settings


def test_windowed_average_emits_each_window_once_the_watermark_passes_it(
    spark: Any, silver: Settings
) -> None:
    comp = StreamComputation("minute_temps", WINDOWED, id=1)
    _append_silver(
        spark,
        silver,
        [
            ("m1", "s1", _at(0, 10), 10.0),
            ("m2", "s1", _at(0, 40), 20.0),
            ("m3", "s2", _at(0, 30), 5.0),
            ("m4", "s1", _at(1, 10), 30.0),
            ("m5", "s1", None, 99.0),  # no event time: in no window
        ],
    )
    run_computation_once(spark, silver, comp)
    assert _gold(spark, comp.name) == []  # watermark 2 min: no window has closed yet

    _append_silver(spark, silver, [("m6", "s2", _at(4, 30), 1.0)])  # watermark -> 10:02:30
    written: list[tuple[int, int]] = []
    run_computation_once(
        spark, silver, comp, on_batch=lambda _n, b, rows: written.append((b, rows))
    )
    rows = {
        (r.window_start.strftime("%H:%M"), r.sensor_id): (r.avg_temperature, r.readings)
        for r in _gold(spark, comp.name)
    }
    # Windows 10:00 and 10:01 are final; 10:04 stays open until the watermark passes 10:05.
    assert rows == {
        ("10:00", "s1"): (15.0, 2),
        ("10:00", "s2"): (5.0, 1),
        ("10:01", "s1"): (30.0, 1),
    }
    assert sum(n for _, n in written) == 3
    assert {r.sensitivity for r in _gold(spark, comp.name)} == {"internal"}


def test_stateless_filter_and_restart_write_nothing_twice(spark: Any, silver: Settings) -> None:
    comp = StreamComputation("hot_readings", HOT, id=2)
    _append_silver(spark, silver, [("a", "s1", _at(0, 1), 10.0), ("b", "s1", _at(0, 2), 20.0)])
    run_computation_once(spark, silver, comp)
    assert [(r.message_id, r.temperature) for r in _gold(spark, comp.name)] == [("b", 20.0)]

    _lose_last_commit(silver, comp)  # the batch runs again, as after a crash
    run_computation_once(spark, silver, comp)
    assert [r.message_id for r in _gold(spark, comp.name)] == ["b"]  # the replay was skipped

    _append_silver(spark, silver, [("c", "s2", _at(0, 3), 30.0), ("d", "s2", _at(0, 4), 1.0)])
    run_computation_once(spark, silver, comp)  # a restart from the checkpoint
    run_computation_once(spark, silver, comp)  # and one with nothing new
    assert sorted(r.message_id for r in _gold(spark, comp.name)) == ["b", "c"]


def test_windowed_restart_after_a_lost_checkpoint_commit_keeps_windows_exact(
    spark: Any, silver: Settings
) -> None:
    comp = StreamComputation("minute_temps_replay", WINDOWED, id=3)
    _append_silver(spark, silver, [("m1", "s1", _at(0, 10), 10.0), ("m2", "s1", _at(0, 20), 30.0)])
    run_computation_once(spark, silver, comp)
    _append_silver(spark, silver, [("m3", "s1", _at(5, 0), 1.0)])
    run_computation_once(spark, silver, comp)
    _lose_last_commit(silver, comp)
    run_computation_once(spark, silver, comp)
    _append_silver(spark, silver, [("m4", "s1", _at(9, 0), 2.0)])  # closes 10:05 too
    run_computation_once(spark, silver, comp)
    rows = sorted(
        (r.window_start.strftime("%H:%M"), r.avg_temperature, r.readings)
        for r in _gold(spark, comp.name)
    )
    assert rows == [("10:00", 20.0, 2), ("10:05", 1.0, 1)]


def test_new_sql_version_starts_over_without_old_rows(spark: Any, silver: Settings) -> None:
    first = StreamComputation("versioned", HOT, id=4)
    _append_silver(spark, silver, [("a", "s1", _at(0, 1), 20.0), ("b", "s2", _at(0, 2), 40.0)])
    run_computation_once(spark, silver, first)
    assert len(_gold(spark, "versioned")) == 2

    second = StreamComputation(
        "versioned",
        "SELECT sensor_id, sensitivity, numeric['temperature'] * 2 AS doubled FROM silver "
        "WHERE sensor_id = 's2'",
        id=4,
        version=2,
    )
    run_computation_once(spark, silver, second)
    rows = _gold(spark, "versioned")
    assert [(r.sensor_id, r.doubled) for r in rows] == [("s2", 80.0)]  # v1 rows are gone
    assert rows[0].asDict().keys() == {"sensor_id", "sensitivity", "doubled"}
    root = Path(checkpoint_of(silver, second)).parent
    assert [p.name for p in root.iterdir()] == ["4-v2"]  # the v1 checkpoint was dropped

    run_computation_once(spark, silver, second)  # a restart of v2 does not empty the table
    assert len(_gold(spark, "versioned")) == 1

    drop_computation(spark, silver, "versioned")
    assert not root.exists() and not Path(silver.lake.gold("versioned")).exists()
    assert spark.sql("SHOW TABLES IN gold LIKE 'versioned'").count() == 0


@pytest.mark.parametrize(
    ("name", "sql", "message"),
    [
        (
            "bad_syntax",
            "SELECT sensor_id, sensitivity FROM silver WHERE sensor_id =",
            r"\(line 1, column 60\): \[PARSE_SYNTAX_ERROR\]",
        ),
        ("bad_column", "SELECT nope, sensitivity FROM silver", "UNRESOLVED_COLUMN"),
        ("two", "SELECT 1; SELECT 2", r"\(line 1, column 11\).*extra input 'SELECT'"),
        ("dml", "DELETE FROM silver", "only read-only queries .* is a DeleteFromTable"),
        (
            "no_sensitivity",
            "SELECT sensor_id, event_time FROM silver",
            "add `sensitivity` to the SELECT and GROUP BY so access checks can filter",
        ),
        (
            "no_window",
            "SELECT sensor_id, sensitivity, avg(numeric['temperature']) AS t FROM silver "
            "GROUP BY sensor_id, sensitivity",
            "cannot run as a stream in append mode: .*STREAMING_OUTPUT_MODE",
        ),
        (
            "sorted",
            "SELECT sensor_id, sensitivity, event_time FROM silver ORDER BY event_time",
            "cannot run as a stream in append mode: .*Sorting is not supported",
        ),
        ("not_silver", "SELECT 'public' AS sensitivity", "does not read the silver stream"),
        ("unnamed", "SELECT sensitivity, numeric['temperature'] * 2 FROM silver", "with AS"),
        ("1starts_with_digit", "SELECT sensitivity FROM silver", "cannot name the table"),
        ("has-dash", "SELECT sensitivity FROM silver", "cannot name the table"),
        ("alerts", "SELECT sensitivity FROM silver", "is taken: gold.alerts holds"),
    ],
)
def test_rejected_before_it_runs(
    spark: Any, shared_silver: Settings, name: str, sql: str, message: str
) -> None:
    with pytest.raises(ComputationError, match=message) as caught:
        check_streamable(spark, shared_silver, StreamComputation(name, sql, id=9))
    assert caught.value.fields["computation"] == name
    assert not Path(shared_silver.lake.gold(name)).exists()  # nothing was written
    probes = Path(shared_silver.lake.checkpoints) / "_probes"
    assert not probes.exists() or not any(probes.iterdir())


def test_accepted_query_leaves_no_probe_behind(spark: Any, shared_silver: Settings) -> None:
    schema = check_streamable(spark, shared_silver, StreamComputation("ok", WINDOWED, id=10))
    assert schema.names == [
        "window_start",
        "window_end",
        "sensor_id",
        "sensitivity",
        "avg_temperature",
        "readings",
    ]
    assert not any((Path(shared_silver.lake.checkpoints) / "_probes").iterdir())
    assert not Path(shared_silver.lake.gold("ok")).exists()


def test_name_taken_by_an_aggregate_rule() -> None:
    rule = ValueRule(1, "t5", "aggregate", "temperature", {"function": "avg", "table": "avg5"})
    with pytest.raises(ComputationError, match="aggregate value rule 't5'"):
        check_name("AVG5", [rule])
    check_name("avg6", [rule])


def test_rows_written_survive_an_engine_restart(spark: Any, silver: Settings) -> None:
    from workbench.catalog.store import Catalog
    from workbench.gold.computation_service import StreamComputations
    from workbench.streams.supervisor import StreamManager

    catalog = Catalog(silver.catalog.url)
    try:
        comp = catalog.save_stream_computation(StreamComputation("hot_rows", HOT))
        _append_silver(spark, silver, [("a", "s1", _at(0, 1), 20.0), ("b", "s1", _at(0, 2), 30.0)])
        run_computation_once(spark, silver, comp)  # ran before the engine restarted

        # The restarted engine registers the computation; its version has run: rows count.
        computations = StreamComputations(spark, silver, catalog, StreamManager())
        computations.register_all()
        assert computations.get("hot_rows")["rows_written"] == 2
        # A new version has not run yet: its table will be emptied when it starts.
        newer = catalog.save_stream_computation(StreamComputation("hot_rows", HOT + " AND 1 = 1"))
        assert newer.version == 2
        restarted = StreamComputations(spark, silver, catalog, StreamManager())
        restarted.register_all()
        assert restarted.get("hot_rows")["rows_written"] == 0
    finally:
        catalog.close()
