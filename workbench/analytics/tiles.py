"""Turn a computation's result into a plotly figure, and tell how fresh the data is.

Pure functions on small pandas frames: no Spark, no widgets, no I/O. The widgets and the
dashboard call these on the rows the query service answered.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from workbench.catalog.records import Computation
from workbench.core.errors import ComputationError

__all__ = [
    "EMPTY_MESSAGE",
    "TILE_TYPES",
    "build_tile_figure",
    "data_age",
    "format_age",
    "newest_time",
]

EMPTY_MESSAGE = "no data yet — is the engine running?"
"""Shown instead of an empty chart."""

_FIGURE_HEIGHT = 360
_MARGIN = {"l": 48, "r": 16, "t": 40, "b": 40}


def build_tile_figure(df: pd.DataFrame, computation: Computation) -> go.Figure:
    """Build the figure of one tile.

    Args:
        df: the computation's result.
        computation: gives ``tile_type`` (``timeseries``, ``bar``, ``table``, ``stat``,
            ``gauge``) and ``tile_config`` (column names: ``x``, ``y``, ``color`` for charts,
            ``value`` for stat and gauge, plus ``min``/``max`` for a gauge, ``columns`` for a
            table).

    Returns:
        A plotly figure; an empty result gives an empty figure that says so.

    Raises:
        ComputationError: unknown tile type, or the config names a column the result lacks.
    """
    builder = _BUILDERS.get(computation.tile_type)
    if builder is None:
        raise ComputationError(
            f"computation {computation.name!r} has tile type {computation.tile_type!r}:"
            f" use one of {', '.join(TILE_TYPES)}",
            computation=computation.name,
            tile_type=computation.tile_type,
        )
    if df.empty:
        return _empty_figure(computation)
    figure = builder(df, computation)
    figure.update_layout(
        title={"text": computation.name, "x": 0.01},
        height=_FIGURE_HEIGHT,
        margin=_MARGIN,
        template="plotly_white",
    )
    return figure


def newest_time(
    df: pd.DataFrame, computation: Computation, *, timezone: str = "UTC"
) -> pd.Timestamp | None:
    """The newest timestamp of a result, as a UTC-aware timestamp.

    The time column is ``tile_config["time"]`` if set, else ``tile_config["x"]`` if it holds
    datetimes, else the first datetime column.

    Args:
        df: the computation's result.
        computation: the computation (for its tile config).
        timezone: the zone naive datetimes are in: Spark returns timestamps as naive values in
            the session time zone (``spark.sql.session.timeZone``).

    Returns:
        The newest timestamp, or None when the result has no rows or no time column.
    """
    column = _time_column(df, computation)
    if column is None or df.empty:
        return None
    newest = df[column].max()
    if pd.isna(newest):
        return None
    stamp = pd.Timestamp(newest)
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize(timezone)
    return stamp.tz_convert(UTC)


def data_age(
    df: pd.DataFrame,
    computation: Computation,
    *,
    now: datetime | None = None,
    timezone: str = "UTC",
) -> timedelta | None:
    """How old the newest data point is (never negative).

    Args:
        df: the computation's result.
        computation: the computation (for its tile config).
        now: the reference time (UTC-aware); defaults to the current time.
        timezone: the zone of naive datetimes (see :func:`newest_time`).

    Returns:
        The age, or None when there is no time column or no row.
    """
    newest = newest_time(df, computation, timezone=timezone)
    if newest is None:
        return None
    reference = now if now is not None else datetime.now(UTC)
    return max(reference - newest.to_pydatetime(), timedelta(0))


def format_age(age: timedelta | None) -> str:
    """A short human age: ``"12 s"``, ``"4 min"``, ``"3 h"``, ``"2 d"``, or ``"unknown"``."""
    if age is None:
        return "unknown"
    seconds = int(age.total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 2 * 3600:
        return f"{seconds // 60} min"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} d"


def _time_column(df: pd.DataFrame, computation: Computation) -> str | None:
    config = computation.tile_config
    for candidate in (config.get("time"), config.get("x")):
        if candidate in df.columns and pd.api.types.is_datetime64_any_dtype(df[candidate]):
            return str(candidate)
    for column in df.columns:
        if pd.api.types.is_datetime64_any_dtype(df[column]):
            return str(column)
    return None


def _column(df: pd.DataFrame, computation: Computation, key: str, default: str | None) -> str:
    """The column a tile config key names, checked against the result."""
    column = computation.tile_config.get(key, default)
    if column is None or column not in df.columns:
        raise ComputationError(
            f"tile of computation {computation.name!r}: tile_config[{key!r}] is {column!r},"
            f" which is not a result column; columns are {', '.join(map(str, df.columns))}",
            computation=computation.name,
            key=key,
            column=column,
        )
    return str(column)


def _first_numeric(df: pd.DataFrame) -> str | None:
    numeric = [c for c in df.columns if pd.api.types.is_numeric_dtype(df[c])]
    return str(numeric[-1]) if numeric else None


def _xy_traces(df: pd.DataFrame, computation: Computation, make: Callable[..., Any]) -> go.Figure:
    x = _column(df, computation, "x", str(df.columns[0]))
    y = _column(df, computation, "y", _first_numeric(df))
    color = computation.tile_config.get("color")
    figure = go.Figure()
    if color is None:
        figure.add_trace(make(x=df[x], y=df[y], name=y))
    else:
        color = _column(df, computation, "color", None)
        for key, group in df.groupby(color, sort=True, dropna=False):
            figure.add_trace(make(x=group[x], y=group[y], name=str(key)))
    figure.update_layout(xaxis_title=x, yaxis_title=y, legend_title_text=color or "")
    return figure


def _timeseries(df: pd.DataFrame, computation: Computation) -> go.Figure:
    x = _column(df, computation, "x", str(df.columns[0]))
    ordered = df.sort_values(x, kind="stable")
    figure = _xy_traces(ordered, computation, lambda **kw: go.Scatter(mode="lines+markers", **kw))
    if pd.api.types.is_datetime64_any_dtype(ordered[x]):
        first, last = ordered[x].min(), ordered[x].max()
        if last - first < pd.Timedelta(minutes=5):
            # A young stream has one or two windows; plotly would zoom to milliseconds.
            figure.update_xaxes(
                range=[last - pd.Timedelta(minutes=5), last + pd.Timedelta(minutes=1)]
            )
    return figure


def _bar(df: pd.DataFrame, computation: Computation) -> go.Figure:
    return _xy_traces(df, computation, go.Bar)


def _table(df: pd.DataFrame, computation: Computation) -> go.Figure:
    columns = computation.tile_config.get("columns") or list(df.columns)
    for key in columns:
        if key not in df.columns:
            _column(df, computation, "columns", key)  # raises with the known names
    return go.Figure(
        go.Table(
            header={"values": [str(c) for c in columns], "align": "left"},
            cells={"values": [_cell_values(df[c]) for c in columns], "align": "left"},
        )
    )


def _cell_values(series: pd.Series) -> list[Any]:
    if pd.api.types.is_float_dtype(series):
        return [f"{v:.4g}" if pd.notna(v) else "" for v in series]
    return ["" if pd.isna(v) else str(v) for v in series]


def _stat_value(df: pd.DataFrame, computation: Computation) -> float | None:
    """The newest value, or None while it is null (an aggregate over no readings yet)."""
    # The last row is the newest one for time-ordered queries, the only one for aggregates.
    column = _column(df, computation, "value", _first_numeric(df))
    value = df[column].iloc[-1]
    return None if pd.isna(value) else float(value)


def _stat(df: pd.DataFrame, computation: Computation) -> go.Figure:
    value = _stat_value(df, computation)
    if value is None:
        return _empty_figure(computation)
    return go.Figure(go.Indicator(mode="number", value=value))


def _gauge(df: pd.DataFrame, computation: Computation) -> go.Figure:
    value = _stat_value(df, computation)
    if value is None:
        return _empty_figure(computation)
    config = computation.tile_config
    gauge = {"axis": {"range": [config.get("min", 0), config.get("max", 100)]}}
    return go.Figure(go.Indicator(mode="gauge+number", value=value, gauge=gauge))


def _empty_figure(computation: Computation) -> go.Figure:
    figure = go.Figure()
    figure.update_layout(
        title={"text": computation.name, "x": 0.01},
        height=_FIGURE_HEIGHT,
        margin=_MARGIN,
        template="plotly_white",
        xaxis={"visible": False},
        yaxis={"visible": False},
        annotations=[
            {
                "text": EMPTY_MESSAGE,
                "showarrow": False,
                "font": {"size": 16},
                "x": 0.5,
                "y": 0.5,
                "xref": "paper",
                "yref": "paper",
            }
        ],
    )
    return figure


_BUILDERS: dict[str, Callable[[pd.DataFrame, Computation], go.Figure]] = {
    "timeseries": _timeseries,
    "bar": _bar,
    "table": _table,
    "stat": _stat,
    "gauge": _gauge,
}
TILE_TYPES: tuple[str, ...] = tuple(_BUILDERS)
"""The tile types :func:`build_tile_figure` draws."""
