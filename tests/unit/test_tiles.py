"""Tile figures on small frames, and a tile facing an absent engine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from tests.fixtures.services import make_settings
from workbench.analytics.tiles import (
    EMPTY_MESSAGE,
    build_tile_figure,
    data_age,
    format_age,
    newest_time,
)
from workbench.catalog.records import Computation
from workbench.core.errors import ComputationError
from workbench.kernel.handle import Workbench
from workbench.widgets.tile import build_tile

TIMESERIES = Computation(
    name="sensor_averages",
    sql="SELECT window_start, sensor_id, avg_value FROM gold.sensor_averages",
    tile_type="timeseries",
    tile_config={"x": "window_start", "y": "avg_value", "color": "sensor_id"},
)


def _frame() -> pd.DataFrame:
    start = datetime(2025, 1, 1, 12, 0)
    return pd.DataFrame(
        {
            "window_start": [start + timedelta(minutes=m) for m in (1, 0, 0, 1, 2)],
            "sensor_id": ["a", "a", "b", "b", "b"],
            "avg_value": [2.0, 1.0, 10.0, 11.0, 12.0],
        }
    )


def test_timeseries_draws_one_time_ordered_line_per_color() -> None:
    figure = build_tile_figure(_frame(), TIMESERIES)
    traces = {trace.name: trace for trace in figure.data}
    assert sorted(traces) == ["a", "b"]
    assert list(traces["a"].y) == [1.0, 2.0]  # sorted by x, not in row order
    assert list(traces["b"].y) == [10.0, 11.0, 12.0]
    assert traces["a"].mode == "lines+markers"
    assert figure.layout.xaxis.title.text == "window_start"


def test_a_young_stream_shows_minutes_not_milliseconds() -> None:
    one_window = _frame().head(1)
    x_range = build_tile_figure(one_window, TIMESERIES).layout.xaxis.range
    assert x_range is not None
    assert pd.Timestamp(x_range[1]) - pd.Timestamp(x_range[0]) == pd.Timedelta(minutes=6)
    long = _frame()
    long.loc[0, "window_start"] = datetime(2025, 1, 1, 18, 0)
    assert build_tile_figure(long, TIMESERIES).layout.xaxis.range is None  # plotly autoscales


def test_timeseries_without_color_is_a_single_line() -> None:
    plain = Computation(
        name="one",
        sql="SELECT 1",
        tile_type="timeseries",
        tile_config={"x": "window_start", "y": "avg_value"},
    )
    figure = build_tile_figure(_frame(), plain)
    assert len(figure.data) == 1 and len(figure.data[0].x) == 5


def test_table_and_stat_tiles() -> None:
    table = build_tile_figure(_frame(), Computation(name="t", sql="SELECT 1", tile_type="table"))
    header = table.data[0].header.values
    assert list(header) == ["window_start", "sensor_id", "avg_value"]
    assert list(table.data[0].cells.values[2]) == ["2", "1", "10", "11", "12"]

    stat = Computation(
        name="s", sql="SELECT 1", tile_type="stat", tile_config={"value": "avg_value"}
    )
    assert build_tile_figure(_frame(), stat).data[0].value == 12.0


def test_a_stat_or_gauge_whose_newest_value_is_null_says_there_is_no_data_yet() -> None:
    # An average over no readings yet: the row exists, its value is null.
    frame = pd.DataFrame({"sensor_id": ["a"], "avg_value": [None]})
    for tile_type in ("stat", "gauge"):
        tile = Computation(
            name="s", sql="SELECT 1", tile_type=tile_type, tile_config={"value": "avg_value"}
        )
        figure = build_tile_figure(frame, tile)
        assert figure.data == ()
        assert figure.layout.annotations[0].text == EMPTY_MESSAGE


def test_empty_result_says_so() -> None:
    figure = build_tile_figure(_frame().iloc[0:0], TIMESERIES)
    assert figure.data == ()
    assert figure.layout.annotations[0].text == EMPTY_MESSAGE


def test_config_naming_a_missing_column_is_explained() -> None:
    wrong = Computation(
        name="wrong", sql="SELECT 1", tile_type="timeseries", tile_config={"x": "ts", "y": "v"}
    )
    with pytest.raises(ComputationError, match=r"tile_config\['x'\] is 'ts'.*window_start"):
        build_tile_figure(_frame(), wrong)


def test_unknown_tile_type_lists_the_known_ones() -> None:
    with pytest.raises(ComputationError, match="use one of timeseries, bar, table, stat, gauge"):
        build_tile_figure(_frame(), Computation(name="p", sql="SELECT 1", tile_type="pie"))


def test_freshness_is_the_age_of_the_newest_x() -> None:
    now = datetime(2025, 1, 1, 12, 5, tzinfo=UTC)
    assert newest_time(_frame(), TIMESERIES) == pd.Timestamp("2025-01-01 12:02", tz="UTC")
    assert data_age(_frame(), TIMESERIES, now=now) == timedelta(minutes=3)
    # Naive values are in the Spark session's zone: 12:02 in Paris is 11:02 UTC.
    paris = data_age(_frame(), TIMESERIES, now=now, timezone="Europe/Paris")
    assert paris == timedelta(hours=1, minutes=3)
    assert data_age(_frame().iloc[0:0], TIMESERIES, now=now) is None
    assert [format_age(timedelta(seconds=s)) for s in (5, 600, 7200 * 2, 86400 * 3)] == [
        "5 s",
        "10 min",
        "4 h",
        "3 d",
    ]
    assert format_age(None) == "unknown"


def test_tile_says_when_the_engine_is_unreachable(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)  # nothing listens on its free Connect port
    wb = Workbench(settings)
    tile = build_tile(
        lambda: wb.engine.run_computation(TIMESERIES.name),
        TIMESERIES,
        refresh_seconds=15,
        auto_refresh=False,
    )
    assert tile.state == "error"
    assert f"http://127.0.0.1:{settings.engine.port}" in tile.message
    assert "is not answering" in tile.message
    assert "workbench up" in tile.message
    assert tile.freshness == "no data"
    tile.close()
