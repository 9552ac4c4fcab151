"""The built-in example computations run on demo-like data and draw their tiles.

The lake is what the demo's engine holds after a few minutes of the temperature simulator:
silver readings of three sensors, gold per-minute averages and a few threshold alerts, all
from the default MQTT source's dataset, registered as ``public`` as ``workbench up`` does.
Every computation is read from the catalog the migrations seeded, run through
:meth:`Computations.run` on real Spark and drawn with the tile builder.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest

from tests.fixtures.services import make_settings
from workbench.analytics.computation_runner import Computations, check_tile
from workbench.analytics.query_service import QueryResult, QueryService
from workbench.analytics.tiles import EMPTY_MESSAGE, build_tile_figure
from workbench.catalog.examples import DEMO_DASHBOARD, EXAMPLE_COMPUTATIONS
from workbench.catalog.migrations import DEFAULT_COMPUTATIONS
from workbench.catalog.records import VIZ_TYPES, Computation, Parameter, Tile
from workbench.catalog.schemas import DatasetObservation
from workbench.catalog.store import Catalog
from workbench.catalog.users import Identity
from workbench.client.results import QueryAnswer
from workbench.core.errors import ComputationError
from workbench.core.ids import ingestion_id
from workbench.ingest.service import DEFAULT_MQTT_SOURCE
from workbench.stack.demo_access import demo_devices

pytestmark = pytest.mark.spark

ANALYST = Identity("ulla", "user", 1)
VIEWER = Identity("vera", "viewer", 2)
DEMO_ID = ingestion_id(DEFAULT_MQTT_SOURCE, "mqtt")
SENSORS = ("temp-0001", "temp-0002", "temp-0003")
MINUTES = 10
"""Minutes of data, the newest window starting two minutes before now."""
ALERTS = 2
BUILT_IN = sorted([*EXAMPLE_COMPUTATIONS, *(str(c["name"]) for c in DEFAULT_COMPUTATIONS)])


def temperature(sensor: int, minute: int) -> float:
    """Sensor ``sensor`` (0-based) averages this at minute ``minute`` (0 the oldest)."""
    return 20.0 + sensor + minute / 2


def humidity(sensor: int) -> float:
    return 50.0 + 5 * sensor


def _drop_tables(spark: Any) -> None:
    for name in ("silver.readings", "gold.sensor_averages", "gold.alerts"):
        spark.sql(f"DROP TABLE IF EXISTS {name}")


def _seed(spark: Any, settings: Any, now: datetime) -> datetime:
    """Write silver, gold averages and alerts as Delta tables; returns the newest window."""
    from workbench.enrichment.normalization import SILVER_SCHEMA
    from workbench.gold.alerts import ALERTS_SCHEMA
    from workbench.gold.averages import GOLD_AVERAGES_SCHEMA

    first = now.replace(second=0, microsecond=0) - timedelta(minutes=MINUTES + 1)
    silver: list[tuple[Any, ...]] = []
    gold: list[tuple[Any, ...]] = []
    for minute in range(MINUTES):
        window = first + timedelta(minutes=minute)
        for s, sensor in enumerate(SENSORS):
            t, h = temperature(s, minute), humidity(s)
            for second in (10, 40):  # two readings a minute, each with both fields
                at = window + timedelta(seconds=second)
                flags = ["out_of_range"] if (s == 2 and second == 10) else []
                silver.append(
                    (
                        f"m-{sensor}-{minute}-{second}",
                        DEMO_ID,
                        "mqtt",
                        f"sensors/{sensor}",
                        at + timedelta(seconds=1),
                        at,
                        at.isoformat(),
                        sensor,
                        {"temperature": str(t), "humidity": str(h)},
                        {"temperature": str(t), "humidity": str(h)},
                        {"temperature": t, "humidity": h},
                        "object",
                        None,
                        flags,
                        "public",
                        at + timedelta(seconds=2),
                        at.date(),
                    )
                )
            for field, value in (("temperature", t), ("humidity", h)):
                gold.append(
                    (
                        window,
                        window + timedelta(minutes=1),
                        DEMO_ID,
                        sensor,
                        field,
                        value,
                        value - 1,
                        value + 1,
                        2,
                        now,
                        value * 2,
                        value * value * 2 + 2,
                        1.0,
                        "public",
                    )
                )
    newest = first + timedelta(minutes=MINUTES - 1)
    alerts = []
    for minute in (MINUTES - 2, MINUTES - 1):  # temp-0003 ran hot in the last two windows
        window = first + timedelta(minutes=minute)
        peak = temperature(2, minute) + 1
        end = window + timedelta(minutes=1)
        rule = (1, "too hot", "temperature", "gt", 24.0)
        alerts.append((*rule, window, end, DEMO_ID, "temp-0003", peak, "public", now, now))
    assert len(alerts) == ALERTS
    tables = [
        (settings.lake.silver_readings, SILVER_SCHEMA, silver),
        (settings.lake.gold("sensor_averages"), GOLD_AVERAGES_SCHEMA, gold),
        (settings.lake.gold("alerts"), ALERTS_SCHEMA, alerts),
    ]
    for path, schema, rows in tables:
        spark.createDataFrame(rows, schema).write.format("delta").save(path)
    return newest


@pytest.fixture(scope="module")
def demo(spark: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    """The demo's tables registered as the engine registers them, a migrated catalog that
    knows the simulator's dataset (``public``), and the computations over both."""
    from workbench.api.engine_app import register_tables

    home = tmp_path_factory.mktemp("examples")
    settings = make_settings(home)
    catalog = Catalog(settings.catalog.url)
    demo_devices(catalog)
    now = datetime.now(UTC)
    catalog.record_observations(
        [DatasetObservation(DEMO_ID, "mqtt", records=1, first_seen=now, last_seen=now)]
    )
    _drop_tables(spark)  # whatever an earlier module left registered
    newest = _seed(spark, settings, now)
    register_tables(spark, settings)
    computations = Computations(QueryService(spark, catalog), catalog)
    yield SimpleNamespace(
        spark=spark, catalog=catalog, computations=computations, newest=newest, now=now
    )
    _drop_tables(spark)
    catalog.close()


def frame(result: QueryResult) -> pd.DataFrame:
    """The result as the widgets get it: through the answer's JSON, times as timestamps."""
    return QueryAnswer.from_dict(json.loads(json.dumps(result.to_dict()))).to_pandas()


def named_columns(computation: Computation) -> set[str]:
    """The result columns a computation's tile config names."""
    config = computation.tile_config
    named = {str(config[k]) for k in ("x", "y", "color", "value", "time") if k in config}
    return named | {str(c) for c in config.get("columns") or ()}


def test_the_catalog_holds_every_built_in_computation(demo: SimpleNamespace) -> None:
    stored = {c.name: c for c in demo.catalog.list_computations()}
    assert set(BUILT_IN) <= set(stored)
    assert len(BUILT_IN) >= 10
    for name in BUILT_IN:
        assert stored[name].tile_type in VIZ_TYPES, name
        assert stored[name].description, name


# What each computation answers on the seeded data: a check on its rows beyond "some rows".
def _expect_latest(df: pd.DataFrame, demo: SimpleNamespace) -> None:
    assert len(df) == len(SENSORS) * 2  # one row per sensor and field
    assert set(df["window_start"]) == {pd.Timestamp(demo.newest)}


def _expect_per_minute(df: pd.DataFrame, _demo: SimpleNamespace) -> None:
    assert len(df) == MINUTES and set(df["readings"]) == {2 * len(SENSORS)}


def _expect_active(df: pd.DataFrame, _demo: SimpleNamespace) -> None:
    assert df["sensors"].tolist() == [len(SENSORS)]


def _expect_current(df: pd.DataFrame, _demo: SimpleNamespace) -> None:
    newest = [temperature(s, MINUTES - 1) for s in range(len(SENSORS))]
    assert df["temperature"].tolist() == [round(sum(newest) / len(newest), 2)]


def _expect_spread(df: pd.DataFrame, _demo: SimpleNamespace) -> None:
    # Over the hour each sensor goes from its first minute - 1 to its last minute + 1.
    assert set(df["sensor_id"]) == set(SENSORS)
    assert set(df["spread"]) == {round((MINUTES - 1) / 2 + 2, 2)}


def _expect_history(df: pd.DataFrame, _demo: SimpleNamespace) -> None:
    # The defaults: temp-0001's temperature, oldest first.
    assert df["avg_value"].tolist() == [temperature(0, m) for m in range(MINUTES)]


def _expect_quality(df: pd.DataFrame, _demo: SimpleNamespace) -> None:
    [row] = df.to_dict("records")
    assert row["ingestion_id"] == DEMO_ID and row["readings"] == MINUTES * len(SENSORS) * 2
    assert float(row["flagged_share"]) == round(MINUTES / (MINUTES * len(SENSORS) * 2), 4)
    assert float(row["untimed_share"]) == 0.0


def _expect_alerts(df: pd.DataFrame, _demo: SimpleNamespace) -> None:
    assert len(df) == ALERTS and set(df["sensor_id"]) == {"temp-0003"}
    assert df["window_start"].is_monotonic_decreasing


def _expect_by_device(df: pd.DataFrame, _demo: SimpleNamespace) -> None:
    [row] = df.to_dict("records")
    assert row["device"] == "demo temperature sensors" and row["sensitivity"] == "public"
    assert row["readings"] == MINUTES * len(SENSORS) * 2


def _expect_averages(df: pd.DataFrame, _demo: SimpleNamespace) -> None:
    assert len(df) == MINUTES * len(SENSORS) and set(df["field"]) == {"temperature"}


EXPECTED = {
    "latest_readings": _expect_latest,
    "readings_per_minute": _expect_per_minute,
    "active_sensors": _expect_active,
    "current_temperature": _expect_current,
    "temperature_spread": _expect_spread,
    "sensor_history": _expect_history,
    "data_quality": _expect_quality,
    "recent_alerts": _expect_alerts,
    "readings_by_device": _expect_by_device,
    "sensor_averages": _expect_averages,
}


def test_every_built_in_computation_has_an_expectation() -> None:
    assert sorted(EXPECTED) == BUILT_IN


@pytest.mark.parametrize("name", BUILT_IN)
def test_each_example_runs_and_draws_its_tile(demo: SimpleNamespace, name: str) -> None:
    computation = demo.catalog.get_computation(name)
    result = demo.computations.run(name, ANALYST)
    df = frame(result)
    assert result.rows, f"{name} answered no rows on the demo data"
    assert not result.truncated
    missing = named_columns(computation) - set(df.columns)
    assert not missing, f"{name}: tile config names {missing}, result has {list(df.columns)}"
    EXPECTED[name](df, demo)
    figure = build_tile_figure(df, computation)
    texts = [a.text for a in figure.layout.annotations]
    assert EMPTY_MESSAGE not in texts and figure.data, name
    # Everything but the devices view is the public dataset's data.
    expected = "internal" if "devices" in computation.sql else "public"
    assert result.sensitivity == expected, (name, result.derivation)


def test_sensor_history_binds_its_parameters_as_typed_values(demo: SimpleNamespace) -> None:
    stored = demo.catalog.get_computation("sensor_history")
    assert stored.parameters == (
        Parameter("sensor", "string", "temp-0001", "sensor id"),
        Parameter("field", "string", "temperature", "canonical field"),
    )
    other = demo.computations.run(
        "sensor_history", VIEWER, parameters={"sensor": "temp-0002", "field": "humidity"}
    )
    assert [r[1] for r in other.rows] == [humidity(1)] * MINUTES
    # The markers stay in the text Spark parses; the values are bound, never spliced in.
    prepared = demo.computations.prepare("sensor_history", {"sensor": "x' OR '1'='1"})
    assert ":sensor" in prepared.sql and "OR '1'='1" not in prepared.sql
    injected = demo.computations.run(
        "sensor_history", VIEWER, parameters={"sensor": "temp-0001' OR '1'='1"}
    )
    assert injected.rows == []
    with pytest.raises(ComputationError, match="no parameter 'limit'"):
        demo.computations.run("sensor_history", VIEWER, parameters={"limit": 5})


def test_the_demo_dashboard_tiles_run_and_name_existing_columns(demo: SimpleNamespace) -> None:
    board = demo.catalog.get_dashboard(DEMO_DASHBOARD["name"])
    assert [t.title for t in sorted(board.tiles, key=lambda t: (t.y, t.x))] == [
        t[0] for t in DEMO_DASHBOARD["tiles"]
    ]
    for tile in board.tiles:
        computation = demo.catalog.get_computation(tile.computation)  # exists
        assert tile.viz in VIZ_TYPES and tile.viz == computation.tile_type, tile.title
        check_tile(demo.computations, tile)
        result = demo.computations.run(tile.computation, ANALYST, parameters=tile.parameters)
        columns = {n for n, _ in result.columns}
        named = {str(v) for k, v in tile.config.items() if k in ("x", "y", "color", "value")}
        assert named <= columns and result.rows, tile.title


def test_a_tile_naming_a_missing_column_is_refused(demo: SimpleNamespace) -> None:
    tile = Tile("sensors", "wrong", "active_sensors", viz="stat", config={"value": "nope"})
    with pytest.raises(ComputationError, match=r"value='nope' not among the columns") as bad:
        check_tile(demo.computations, tile)
    assert "sensors" in bad.value.message  # the columns that exist are named
