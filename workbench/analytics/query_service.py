"""The one path from SQL text to rows: parse, check, derive sensitivity, run bounded.

Runs on the engine, in a Spark session of its own (the streams' session is never touched).
:meth:`QueryService.prepare` parses the text with Spark's parser and checks the parsed plan
before Spark resolves a single name (:func:`~workbench.analytics.query_rules.check_parsed`);
then lets Spark analyze it with the parameters bound as Spark SQL parameters (never spliced
into the text), checks the analyzed plan, and derives the label from the optimized plan
(:mod:`workbench.analytics.sensitivity`). :meth:`QueryService.run` then checks the caller's
clearance, runs the query under a row limit and a timeout that cancels its Spark jobs (a job
tag per query), and writes reads of confidential or restricted results to the audit log.

Every consumer (HTTP API, ``wb.sql``, ``%%sql``, tiles, Voila, the CLI, stream computations)
goes through here.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from workbench.analytics.plan_tree import plan_tree
from workbench.analytics.query_rules import QueryRefused, QueryScope, check_analyzed, tables_read
from workbench.analytics.sensitivity import (
    AUDITED,
    Derivation,
    SensitivityDenied,
    check_clearance,
    derive,
    rank,
)
from workbench.analytics.sql_checker import SqlChecker, spark_error
from workbench.catalog.users import Identity
from workbench.core.errors import ComputationError, QueryTimeoutError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from workbench.catalog.store import Catalog

__all__ = [
    "DEFAULT_LIMIT",
    "DEFAULT_TIMEOUT_SECONDS",
    "PreparedQuery",
    "QueryResult",
    "QueryService",
    "QueryTimeoutError",
]

log = logging.getLogger(__name__)

#: Rows a query returns unless asked otherwise.
DEFAULT_LIMIT = 1000
#: Seconds a query may run unless asked otherwise.
DEFAULT_TIMEOUT_SECONDS = 60.0
#: Queries running at once; more wait (their wait counts against their timeout).
MAX_CONCURRENT = 4
#: The databases whose tables queries may read, besides the ``devices`` view.
DATABASES = ("silver", "gold")
DEVICES_VIEW = "devices"


@dataclass(frozen=True)
class PreparedQuery:
    """A checked query, ready to run: its frame, label and what it reads."""

    sql: str
    frame: DataFrame
    derivation: Derivation
    columns: tuple[tuple[str, str], ...]
    """``(name, Spark type)`` of each result column."""


@dataclass(frozen=True)
class QueryResult:
    """The rows of a query and what they are."""

    columns: tuple[tuple[str, str], ...]
    rows: list[tuple[Any, ...]]
    truncated: bool
    """More rows than ``limit`` exist; only ``limit`` came back."""
    derivation: Derivation
    seconds: float
    limit: int
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def sensitivity(self) -> str:
        """The result's label."""
        return self.derivation.label

    def to_dict(self) -> dict[str, Any]:
        """The answer's JSON body (rows as lists, in column order)."""
        return {
            "columns": [{"name": n, "type": t} for n, t in self.columns],
            "rows": [list(r) for r in self.rows],
            "row_count": len(self.rows),
            "truncated": self.truncated,
            "limit": self.limit,
            "sensitivity": self.derivation.to_dict(),
            "seconds": round(self.seconds, 4),
            **self.extras,
        }


class QueryService:
    """Checks and runs user SQL on the engine.

    Args:
        spark: the engine's session; queries run in a new session of it.
        catalog: devices, datasets and the audit log.
        max_limit: the most rows any query returns.
        observer: told ``(computation or "adhoc", seconds, "success" | "failed" |
            "refused" | "denied")`` after every run (the engine's metrics).
        clock: monotonic seconds (tests).
    """

    def __init__(
        self,
        spark: SparkSession,
        catalog: Catalog,
        *,
        max_limit: int = 100_000,
        observer: Callable[[str, float, str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._spark = spark.newSession()
        # pyspark logs every refused query at ERROR with its Java stack; a user's wrong SQL is
        # an answer to them, not an engine error.
        logging.getLogger("SQLQueryContextLogger").setLevel(logging.CRITICAL)
        self._catalog = catalog
        self.max_limit = max_limit
        self._clock = clock
        self._observer = observer
        self._slots = threading.BoundedSemaphore(MAX_CONCURRENT)
        self._devices_lock = threading.Lock()
        self._devices_key: tuple[Any, ...] | None = None
        self.checker = SqlChecker(self._spark)

    @property
    def session(self) -> SparkSession:
        """The session queries run in (for the engine's own checked callers)."""
        return self._spark

    # -- checking ---------------------------------------------------------------------

    def scope(self) -> QueryScope:
        """The tables queries may read now (gold grows with stream computations)."""
        self._refresh_devices_view()
        tables: set[tuple[str, ...]] = {(DEVICES_VIEW,)}
        for database in DATABASES:
            if self._spark.catalog.databaseExists(database):
                for table in self._spark.catalog.listTables(database):
                    if not table.isTemporary:  # temporary views are listed in every database
                        tables.add((database, table.name.lower()))
        return QueryScope(frozenset(tables), self.checker.functions)

    def table_versions(self, tables: Sequence[str]) -> dict[str, int]:
        """The current Delta version of each of ``tables`` (``database.table``; the
        ``devices`` view has none: :meth:`devices_key` stands for it)."""
        versions = {}
        for name in tables:
            if "." not in name:
                continue
            rows = self._spark.sql(f"DESCRIBE HISTORY {name} LIMIT 1").collect()
            versions[name] = int(rows[0]["version"]) if rows else -1
        return versions

    def devices_key(self) -> tuple[tuple[str, str, bool], ...]:
        """What the devices say now: a label change makes every derivation stale."""
        return tuple(
            sorted((d.ingestion_id, d.sensitivity, d.enabled) for d in self._catalog.list_devices())
        )

    def tables(self) -> list[dict[str, Any]]:
        """The tables queries may read, each with its columns and their types."""
        listed = []
        for name in sorted(self.scope().tables):
            schema = self._spark.table(".".join(name)).schema
            listed.append(
                {
                    "table": ".".join(name),
                    "columns": [
                        {"name": f.name, "type": f.dataType.simpleString()} for f in schema.fields
                    ],
                }
            )
        return listed

    def prepare(
        self,
        sql: str,
        parameters: Mapping[str, Any] | None = None,
        *,
        what: str = "this query",
    ) -> PreparedQuery:
        """Check ``sql`` and build its frame, without running it.

        Raises:
            QueryRefused: the text is not one read-only query over the workbench's tables, or
                uses a function or relation that is not allowed.
            ComputationError: Spark's parser or analyzer refused it (with line and column).
        """
        sql = sql.strip().rstrip(";").strip()
        if not sql:
            raise QueryRefused(f"the {what} has no SQL: write one SELECT query")
        scope = self.scope()
        self.checker.check(sql, scope.tables, what=what)
        frame = self._analyze(sql, dict(parameters or {}), what)
        execution = frame._jdf.queryExecution()
        analyzed = plan_tree(execution.analyzed().toJSON())
        check_analyzed(analyzed, scope, is_plan=self.checker.is_plan)
        reads = tables_read(analyzed, plan_tree(execution.optimizedPlan().toJSON()))
        devices = self._catalog.list_devices()
        ids = [d.ingestion_id for d in self._catalog.list_datasets()]
        derivation = derive(reads, devices, ids)
        columns = tuple((f.name, f.dataType.simpleString()) for f in frame.schema.fields)
        return PreparedQuery(sql, frame, derivation, columns)

    # -- running ----------------------------------------------------------------------

    def run(
        self,
        sql: str,
        identity: Identity,
        *,
        parameters: Mapping[str, Any] | None = None,
        limit: int | None = None,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
        computation: str | None = None,
        label: Callable[[str], str] | None = None,
    ) -> QueryResult:
        """Run ``sql`` for ``identity`` and return at most ``limit`` rows (default 1,000, or
        the maximum when that is lower).

        Args:
            label: turns the derived label into the one the result carries (a saved
                computation's own label, :func:`~workbench.analytics.computation_runner.
                effective_label`).

        Raises:
            SensitivityDenied: the result is above the caller's clearance.
            QueryTimeoutError: it ran past ``timeout_seconds`` (its jobs are cancelled).
            QueryRefused, ComputationError: see :meth:`prepare`.
        """
        if limit is None:
            limit = min(DEFAULT_LIMIT, self.max_limit)
        if not 1 <= limit <= self.max_limit:
            raise ComputationError(
                f"limit must be between 1 and {self.max_limit}, not {limit}", limit=limit
            )
        started = self._clock()
        what = f"computation {computation!r}" if computation else "this query"
        outcome = "failed"
        try:
            result = self._run(
                sql, identity, parameters, limit, timeout_seconds, what, label, started
            )
            outcome = "success"
        except SensitivityDenied:
            outcome = "denied"
            raise
        except QueryRefused:
            outcome = "refused"
            raise
        finally:
            if self._observer is not None:
                self._observer(computation or "adhoc", self._clock() - started, outcome)
        self.audit(identity, result, sql, computation=computation)
        return result

    def audit(
        self, identity: Identity, result: QueryResult, sql: str, *, computation: str | None
    ) -> None:
        """Write a read of ``result`` by ``identity`` to the audit log when its label calls for
        it (confidential and up): every run does, and so does every answer from a cache."""
        if rank(result.sensitivity) < rank(AUDITED):
            return
        derivation = result.derivation
        self._catalog.audit_read(
            user=identity.user,
            role=identity.role,
            sensitivity=derivation.label,
            sql=sql,
            computation=computation,
            tables=list(derivation.tables),
            devices=sorted(derivation.devices),
            rows=len(result.rows),
        )

    def _run(
        self,
        sql: str,
        identity: Identity,
        parameters: Mapping[str, Any] | None,
        limit: int,
        timeout_seconds: float,
        what: str,
        label: Callable[[str], str] | None,
        started: float,
    ) -> QueryResult:
        if not self._slots.acquire(timeout=timeout_seconds):
            raise QueryTimeoutError(
                f"{what} waited {timeout_seconds:.0f} s for one of the engine's "
                f"{MAX_CONCURRENT} query slots; try again later",
                timeout_seconds=timeout_seconds,
            )
        try:
            prepared = self.prepare(sql, parameters, what=what)
            derivation = prepared.derivation
            if label is not None:
                derivation = Derivation(
                    label(derivation.label), derivation.devices, derivation.tables
                )
            check_clearance(derivation, identity.role, what=what)
            left = timeout_seconds - (self._clock() - started)
            rows, truncated = self._collect(prepared.frame, limit, left, what)
        finally:
            self._slots.release()
        return QueryResult(
            prepared.columns, rows, truncated, derivation, self._clock() - started, limit
        )

    def _collect(
        self, frame: DataFrame, limit: int, timeout: float, what: str
    ) -> tuple[list[tuple[Any, ...]], bool]:
        tag = f"wbq-{uuid.uuid4().hex[:12]}"
        context = self._spark.sparkContext
        timer = threading.Timer(max(timeout, 0.0), context.cancelJobsWithTag, args=(tag,))
        context.addJobTag(tag)
        timer.start()
        try:
            rows = [tuple(_plain(v) for v in row) for row in frame.limit(limit + 1).collect()]
        except Exception as err:
            if not timer.is_alive():
                raise QueryTimeoutError(
                    f"{what} ran past its timeout of {timeout:.1f} s and was cancelled; "
                    "narrow it (a time range, a filter on ingestion_id) or raise the timeout",
                    timeout_seconds=round(timeout, 1),
                ) from err
            raise spark_error(err, what) from err
        finally:
            timer.cancel()
            context.removeJobTag(tag)
        return rows[:limit], len(rows) > limit

    # -- Spark ------------------------------------------------------------------------

    def _analyze(self, sql: str, parameters: dict[str, Any], what: str) -> DataFrame:
        try:
            # Checked above to be a query: spark.sql only analyzes it, nothing runs yet.
            return self._spark.sql(sql, args=parameters or None)
        except Exception as err:
            raise spark_error(err, what) from err

    def _refresh_devices_view(self) -> None:
        """The ``devices`` view: the registry as literal rows, rebuilt when it changes."""
        devices = self._catalog.list_devices()
        key = tuple((d.ingestion_id, d.name, d.sensitivity, d.enabled) for d in devices)
        with self._devices_lock:
            if key == self._devices_key:
                return
            values = ", ".join(
                f"({_literal(d.ingestion_id)}, {_literal(d.name)}, {_literal(d.sensitivity)}, "
                f"{'true' if d.enabled else 'false'})"
                for d in devices
            )
            body = (
                f"SELECT * FROM VALUES {values} AS d(ingestion_id, name, sensitivity, enabled)"
                if devices
                else "SELECT CAST(NULL AS STRING) AS ingestion_id, CAST(NULL AS STRING) AS name,"
                " CAST(NULL AS STRING) AS sensitivity, CAST(NULL AS BOOLEAN) AS enabled"
                " WHERE false"
            )
            self._spark.sql(f"CREATE OR REPLACE TEMP VIEW {DEVICES_VIEW} AS {body}")
            self._devices_key = key


def _literal(text: str) -> str:
    """A SQL string literal of a catalog value (escapes quotes and backslashes)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _plain(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if hasattr(value, "asDict"):
        return value.asDict(recursive=True)
    if isinstance(value, (int, float, str, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return str(value)
