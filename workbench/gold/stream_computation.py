"""User-defined streaming computations: one SQL query over the silver stream, in gold.

A :class:`~workbench.catalog.records.StreamComputation` is one ``SELECT``/``WITH`` query over
the view ``silver``: the silver stream's rows that have an event time, with a watermark on
``event_time`` (``settings.engine.watermark``). It runs in **append** mode, so every output row
is final: a stateless query (filter, projection) emits each row in the batch that reads it; an
aggregation must group by an event-time window, and emits each window once, when the watermark
passes the window's end. The output must carry ``sensitivity`` so access checks can filter
``gold.<name>`` like every other gold table.

This module builds and checks the query (no I/O); :mod:`workbench.gold.computation_query`
runs it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from pyspark.errors import PySparkException
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from workbench.analytics.sql_checker import SqlChecker
from workbench.catalog.records import STREAM_COMPUTATION_NAME, StreamComputation, ValueRule
from workbench.core.errors import ComputationError
from workbench.gold import aggregates, alerts, averages

__all__ = [
    "FIXED_TABLES",
    "SILVER_VIEW",
    "build_computation",
    "check_name",
    "query_name",
    "silver_view",
]

#: The view a computation's SQL reads.
SILVER_VIEW = "silver"
#: How the messages call a stream computation.
WHAT = "stream computation"
#: Characters Delta refuses in column names (without column mapping).
_BAD_COLUMN = re.compile(r"[ ,;{}()\n\t=]")


#: The gold tables the gold stream itself writes, and what they hold.
FIXED_TABLES = {averages.TABLE: "the gold averages", alerts.TABLE: "the gold alerts"}


def query_name(name: str) -> str:
    """The managed query of computation ``name``: ``computation:<name>``."""
    return f"computation:{name}"


def check_name(name: str, value_rules: Iterable[ValueRule] = ()) -> None:
    """Check that ``name`` can name the table ``gold.<name>`` and that no other table has it.

    Args:
        name: the computation's name.
        value_rules: the catalog's value rules; an ``aggregate`` rule owns its gold table.

    Raises:
        ComputationError: for a name that is not a table name or is taken by a gold table.
    """
    if not re.fullmatch(STREAM_COMPUTATION_NAME, name):
        raise ComputationError(
            f"{WHAT} name {name!r} cannot name the table gold.<name>: use a letter or '_' "
            "then up to 63 letters, digits or '_'",
            computation=name,
        )
    taken = dict(FIXED_TABLES)
    for rule in value_rules:
        if rule.kind == "aggregate":
            taken.setdefault(aggregates.table_of(rule), f"aggregate value rule {rule.name!r}")
    owner = next((o for table, o in taken.items() if table.lower() == name.lower()), None)
    if owner is not None:
        raise ComputationError(
            f"{WHAT} name {name!r} is taken: gold.{name} holds {owner}; choose another name",
            computation=name,
        )


def silver_view(silver: DataFrame, *, watermark: str) -> DataFrame:
    """What the view ``silver`` holds: silver rows with an event time, watermarked on it.

    Rows without an event time are left out: they belong to no window and would sit in an
    aggregation's state for ever.
    """
    return silver.where(F.col("event_time").isNotNull()).withWatermark("event_time", watermark)


def build_computation(
    silver: DataFrame, computation: StreamComputation, *, watermark: str
) -> DataFrame:
    """The computation's output stream: ``spark.sql(sql)`` over the view ``silver``.

    The view is registered on ``silver``'s own session (give each query a session of its own:
    the name ``silver`` is the same for all of them).

    Args:
        silver: the silver stream (``readStream`` of ``silver/readings``).
        computation: the computation to build.
        watermark: how late an event may be, e.g. ``"2 minutes"``.

    Returns:
        A streaming DataFrame; whether Spark can run it in append mode is only known when it
        starts (see :func:`workbench.gold.computation_query.check_streamable`).

    Raises:
        ComputationError: the name or SQL is not allowed, Spark cannot analyse the SQL, the
            query does not read ``silver``, its columns cannot be Delta columns, or it lacks
            ``sensitivity``.
    """
    name = computation.name
    check_name(name)
    sql = computation.sql.strip().rstrip(";").strip()
    session = silver.sparkSession
    # Checked on Spark's parsed plan before the session resolves anything: one read-only query
    # over the view alone (no command runs in the engine's session, no file or table is read).
    try:
        SqlChecker(session).check(sql, frozenset({(SILVER_VIEW,)}), what=f"{WHAT} {name!r}")
    except ComputationError as err:
        err.fields.setdefault("computation", name)
        raise
    silver_view(silver, watermark=watermark).createOrReplaceTempView(SILVER_VIEW)
    try:
        out = session.sql(sql)
    except PySparkException as err:
        raise ComputationError(
            f"{WHAT} {name!r}: Spark cannot analyse the SQL: {_first_line(err)}. The query "
            f"reads the view `{SILVER_VIEW}` (columns: {', '.join(silver.columns)})",
            computation=name,
            spark_error=_condition(err),
        ) from err
    if not out.isStreaming:
        raise ComputationError(
            f"{WHAT} {name!r} does not read the silver stream: select FROM {SILVER_VIEW}",
            computation=name,
        )
    _check_columns(name, out.columns)
    return out


def _check_columns(name: str, columns: list[str]) -> None:
    bad = [c for c in columns if _BAD_COLUMN.search(c)]
    if bad:
        raise ComputationError(
            f"{WHAT} {name!r}: column names {bad} cannot be stored in a Delta table; "
            "name each expression with AS (letters, digits, '_')",
            computation=name,
        )
    lower = [c.lower() for c in columns]
    twice = sorted({c for c in columns if lower.count(c.lower()) > 1})
    if twice:
        raise ComputationError(
            f"{WHAT} {name!r}: columns {twice} appear more than once; rename them with AS",
            computation=name,
        )
    if "sensitivity" not in lower:
        raise ComputationError(
            f"{WHAT} {name!r} has no `sensitivity` column: add `sensitivity` to the SELECT and "
            "GROUP BY so access checks can filter this table",
            computation=name,
        )


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _condition(err: PySparkException) -> str | None:
    return err.getCondition() if hasattr(err, "getCondition") else None
