"""Run a saved computation (one read-only Spark SQL query) and bring back a small pandas frame.

The guard is deliberately minimal: exactly one statement, starting with ``SELECT`` or ``WITH``
(:func:`workbench.analytics.sql_guard.check_query`, shared with gold's streaming computations).
:func:`check_sql` is the seam where a real SQL parser (catalog tables only, no DDL/DML,
no ``SET``, no UDF loading) plugs in later; callers only ever go through :func:`run_computation`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from workbench.analytics.sql_guard import check_query
from workbench.catalog.records import Computation
from workbench.core.errors import ComputationError, ServiceUnavailableError

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import SparkSession

__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "ExecutionObserver", "check_sql", "run_computation"]

ExecutionObserver = Callable[[str, float, str], None]
"""Told ``(computation name, seconds, "success" | "failed")`` after every run, e.g. an
:class:`workbench.analytics.reporting.EngineReporter` feeding the engine's metrics."""

logger = logging.getLogger(__name__)

DEFAULT_LIMIT = 1000
"""Rows a computation returns unless asked otherwise."""
MAX_LIMIT = 100_000
"""No caller gets more rows than this into a kernel or a dashboard."""


def check_sql(computation: Computation) -> str:
    """Check that a computation is exactly one ``SELECT``/``WITH`` query.

    Args:
        computation: the saved computation.

    Returns:
        The query without trailing semicolons and whitespace, ready for ``spark.sql``.

    Raises:
        ComputationError: the query is empty, holds several statements, or is not a query.
    """
    return check_query(computation.sql, name=computation.name)


def run_computation(
    spark: SparkSession,
    computation: Computation,
    *,
    limit: int = DEFAULT_LIMIT,
    observer: ExecutionObserver | None = None,
) -> pd.DataFrame:
    """Run a computation on a Spark (Connect) session and return at most ``limit`` rows.

    Args:
        spark: a Spark session, normally the thin Spark Connect client of a kernel.
        computation: the saved computation to run.
        limit: the most rows to return (1 to :data:`MAX_LIMIT`).
        observer: told the run's wall time and outcome (never raises into the run).

    Returns:
        The result as a pandas frame, in the query's column order.

    Raises:
        ComputationError: the query is not allowed, the limit is out of range, or Spark
            refused the query (unknown table or column, syntax error...).
        ServiceUnavailableError: the engine is gone or restarted, so this session is no longer
            valid; a new session is needed.
    """
    started, status = time.perf_counter(), "failed"
    try:
        frame = _run(spark, computation, limit)
        status = "success"
        return frame
    finally:
        if observer is not None:
            try:
                observer(computation.name, time.perf_counter() - started, status)
            except Exception:  # noqa: BLE001 - reporting must never fail the computation
                logger.debug("computation observer failed", exc_info=True)


def _run(spark: SparkSession, computation: Computation, limit: int) -> pd.DataFrame:
    if not 1 <= limit <= MAX_LIMIT:
        raise ComputationError(
            f"limit {limit} for computation {computation.name!r} is out of range:"
            f" use 1 to {MAX_LIMIT}",
            computation=computation.name,
            limit=limit,
        )
    sql = check_sql(computation)
    # Imported here so the module (and the guard) load without pyspark.
    from pyspark.errors import PySparkException

    try:
        # DataFrame.limit wraps the whole query, so an inner ORDER BY keeps its meaning and a
        # query's own, larger LIMIT cannot escape the cap.
        frame = spark.sql(sql).limit(limit).toPandas()
    except PySparkException as err:
        if _session_lost(err):
            raise ServiceUnavailableError(
                f"computation {computation.name!r}: the engine lost this session (it restarted"
                f" or went away): {_first_line(err)}; run it again to reconnect",
                computation=computation.name,
            ) from err
        raise ComputationError(
            f"computation {computation.name!r} failed in Spark: {_first_line(err)}",
            computation=computation.name,
            spark_error=err.getCondition() if hasattr(err, "getCondition") else None,
        ) from err
    logger.debug("computation=%s rows=%d limit=%d", computation.name, len(frame), limit)
    return frame


def _session_lost(err: Exception) -> bool:
    condition = getattr(err, "getCondition", lambda: None)() or ""
    # After an engine restart the server no longer knows our session id (INVALID_HANDLE), and
    # the client then closes itself (NO_ACTIVE_SESSION); a vanished server surfaces as gRPC
    # UNAVAILABLE once the client's own retries are exhausted.
    return (
        condition.startswith("INVALID_HANDLE.SESSION")
        or condition == "NO_ACTIVE_SESSION"
        or "StatusCode.UNAVAILABLE" in str(err)
    )


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
