"""Lake maintenance: retention per layer and per device, compaction and VACUUM.

One function per step over a session and a path, each returning a :class:`MaintenanceResult`;
:mod:`workbench.maintenance.runner` runs them over the lake's tables, from the CLI
(``workbench maintain``) or on the engine's schedule.

Silver and gold are Delta tables, so every change goes through Delta (``DELETE``, ``OPTIMIZE``,
``VACUUM``); object-store lifecycle rules would delete files behind the Delta log's back. Bronze
is plain Parquet; its retention is :mod:`workbench.maintenance.bronze_retention`.

Concurrency with the engine: ``OPTIMIZE`` commits only ``dataChange=false`` rewrites and a
retention ``DELETE`` reads only partitions older than its cutoff, so both commit while the
enrichment stream keeps appending to silver (``tests/spark/test_maintenance.py`` appends during
both); VACUUM deletes only files no version newer than its retention references. Gold is
different: its stream MERGEs into the (unpartitioned) table, so of a MERGE and an ``OPTIMIZE``
or ``DELETE`` running at once, the one committing second fails with a Delta conflict (measured
with a MERGE loop: either side can lose). The gold batch is retried by
:func:`workbench.streams.queries.run_batch_with_retries`, the maintenance step by
:mod:`workbench.maintenance.runner`.

Which rows are past retention is decided by :mod:`workbench.maintenance.policy` (layer default,
overridden per device).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

from workbench.core.errors import ConfigError, EngineError
from workbench.maintenance.policy import retention_condition

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = [
    "DELTA_SAFE_RETAIN_HOURS",
    "LAYERS",
    "STEPS",
    "MaintenanceResult",
    "apply_retention",
    "apply_table_retention",
    "compact",
    "table_name",
    "vacuum",
]

log = logging.getLogger(__name__)

Step = Literal["retention", "compact", "vacuum"]
MaintenanceLayer = Literal["bronze", "silver", "gold"]
#: The order a full run takes: deleting first leaves less to compact, compacting first leaves
#: the replaced small files for VACUUM.
STEPS: tuple[Step, ...] = ("retention", "compact", "vacuum")
LAYERS: tuple[MaintenanceLayer, ...] = ("bronze", "silver", "gold")

#: Delta's default ``delta.deletedFileRetentionDuration``; VACUUM refuses less unless allowed.
DELTA_SAFE_RETAIN_HOURS = 168.0
#: Partitions compacted per ``OPTIMIZE`` commit (each adds one OR branch to its predicate).
_PARTITIONS_PER_OPTIMIZE = 200
_HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"
_LISTING_PARALLELISM = "spark.sql.sources.parallelPartitionDiscovery.parallelism"


@dataclass(frozen=True)
class MaintenanceResult:
    """What one step did to one table (or to the bronze layer)."""

    step: Step
    table: str
    """``layer/name``, e.g. ``silver/readings``; ``bronze`` for the bronze layer."""
    files_before: int = 0
    """Data files the table (bronze: the layer) referenced before the step."""
    files_after: int = 0
    bytes_before: int = 0
    bytes_after: int = 0
    rows_deleted: int | None = None
    """Rows removed by retention (None: not counted, as for bronze)."""
    files_removed: int = 0
    """Files taken out of the table (compaction, retention) or off storage (VACUUM)."""
    bytes_removed: int = 0
    dry_run: bool = False
    """Nothing was changed; the figures say what the step would do."""
    skipped: str | None = None
    """Why the step did nothing (no retention configured, too few files...)."""
    error: str | None = None
    """Why the step failed; the other steps and tables still ran."""
    seconds: float = 0.0

    def summary(self) -> str:
        """One human line for the CLI and the logs."""
        head = f"{self.table:<18} {self.step:<9}"
        if self.error:
            return f"{head} FAILED: {self.error}"
        if self.skipped:
            return f"{head} skipped: {self.skipped}"
        files = f"{self.files_before} -> {self.files_after} files"
        if self.step == "vacuum":
            body = f"removed {self.files_removed} unreferenced file(s), {_size(self.bytes_removed)}"
            if self.dry_run:
                body = f"would remove {self.files_removed} unreferenced file(s)"
        elif self.step == "compact":
            body = (
                f"compacted {self.files_removed} file(s): {files}, "
                f"{_size(self.bytes_before)} -> {_size(self.bytes_after)}"
            )
            if self.dry_run:
                body = f"would compact {self.files_removed} file(s)"
        else:
            removed = f"{self.files_removed} file(s), {_size(self.bytes_removed)}"
            rows = "" if self.rows_deleted is None else f"{self.rows_deleted} row(s), "
            body = f"deleted {rows}{removed}: {files}"
            if self.dry_run:
                body = (
                    f"would delete {rows}{removed}"
                    if self.rows_deleted is None
                    else (f"would delete {self.rows_deleted} row(s)")
                )
        return f"{head} {body} ({self.seconds:.1f} s){' [dry run]' if self.dry_run else ''}"


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"  # pragma: no cover - the loop always returns


# --- Delta steps ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Detail:
    files: int
    bytes: int
    partition_columns: list[str]


def _untouched(step: Step, table: str, before: _Detail, dry_run: bool) -> MaintenanceResult:
    """A step's result before it acts: the table as found, nothing removed yet."""
    return MaintenanceResult(
        step,
        table,
        files_before=before.files,
        files_after=before.files,
        bytes_before=before.bytes,
        bytes_after=before.bytes,
        dry_run=dry_run,
    )


def _detail(spark: SparkSession, path: str) -> _Detail:
    from delta.tables import DeltaTable

    row = (
        DeltaTable.forPath(spark, path)
        .detail()
        .select("numFiles", "sizeInBytes", "partitionColumns")
        .first()
    )
    if row is None:  # pragma: no cover - DESCRIBE DETAIL always answers one row
        raise EngineError(f"no Delta detail for {path}", table=path)
    return _Detail(int(row[0] or 0), int(row[1] or 0), list(row[2] or []))


def _version(spark: SparkSession, path: str) -> int:
    from delta.tables import DeltaTable

    row = DeltaTable.forPath(spark, path).history(1).select("version").first()
    return int(row[0]) if row is not None else -1


def _operation_metrics(
    spark: SparkSession, path: str, operations: Sequence[str], after_version: int
) -> dict[str, dict[str, str]]:
    """Metrics of our own commits: the first of each of ``operations`` after ``after_version``.

    Looked up among the commits since ``after_version`` rather than as "the latest commit":
    the engine's streams may have committed in between. Only those commits are read, never the
    whole history (a stream commits every few seconds, for weeks).
    """
    from delta.tables import DeltaTable

    since = _version(spark, path) - after_version
    if since <= 0:
        return {}
    rows = (
        DeltaTable.forPath(spark, path)
        .history(since)
        .select("version", "operation", "operationMetrics")
        .collect()
    )
    found: dict[str, dict[str, str]] = {}
    for row in sorted(rows, key=lambda r: int(r[0])):
        if row[1] in operations and row[1] not in found:
            found[row[1]] = dict(row[2] or {})
    return found


def table_name(path: str) -> str:
    """``layer/name`` of a table path, e.g. ``silver/readings``."""
    parts = path.rstrip("/").split("/")
    return "/".join(parts[-2:])


def _partition_files(
    spark: SparkSession, path: str, columns: Sequence[str]
) -> dict[tuple[str | None, ...], int]:
    """Files per partition of the current version, read from the Delta log (no data scan)."""
    from urllib.parse import unquote

    counts: dict[tuple[str | None, ...], int] = {}
    for uri in spark.read.format("delta").load(path).inputFiles():
        values = {}
        # Only the directories between the table and the file: the table's own path may
        # contain '=' too.
        for part in uri.split("/")[-len(columns) - 1 : -1]:
            key, _, value = part.partition("=")
            # Spark escapes partition values in paths like Hive (%XX).
            values[unquote(key)] = None if value == _HIVE_NULL else unquote(value)
        key_values = tuple(values.get(c) for c in columns)
        counts[key_values] = counts.get(key_values, 0) + 1
    return counts


def _sql_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _partition_predicate(columns: Sequence[str], values: tuple[str | None, ...]) -> str:
    terms = [
        f"`{c}` IS NULL" if v is None else f"`{c}` = {_sql_string(v)}"
        for c, v in zip(columns, values, strict=True)
    ]
    return "(" + " AND ".join(terms) + ")"


def compact(
    spark: SparkSession, path: str, *, min_files: int = 8, dry_run: bool = False
) -> MaintenanceResult:
    """Bin-pack the small files of a Delta table (``OPTIMIZE``), partition by partition.

    Args:
        spark: a driver session with Delta (:func:`workbench.spark.session.build_session`).
        path: the table location.
        min_files: only partitions (or an unpartitioned table) with at least this many files
            are compacted; compacting two files would rewrite data for little gain.
        dry_run: only count what would be compacted.

    Raises:
        EngineError: if the table is not a Delta table.
    """
    from delta.tables import DeltaTable

    started = time.monotonic()
    name = table_name(path)
    before = _detail(spark, path)
    result = _untouched("compact", name, before, dry_run)
    columns = before.partition_columns
    if columns:
        counts = _partition_files(spark, path, columns)
        due = sorted((v for v, n in counts.items() if n >= min_files), key=str)
        due_files = sum(counts[v] for v in due)
    else:
        due = [()] if before.files >= min_files else []
        due_files = before.files if due else 0
    if not due:
        return replace(
            result,
            skipped=f"no partition has {min_files} or more files",
            seconds=time.monotonic() - started,
        )
    if dry_run:
        return replace(result, files_removed=due_files, seconds=time.monotonic() - started)
    table = DeltaTable.forPath(spark, path)
    removed = removed_bytes = 0
    for first in range(0, len(due), _PARTITIONS_PER_OPTIMIZE):
        chunk = due[first : first + _PARTITIONS_PER_OPTIMIZE]
        builder = table.optimize()
        if columns:
            builder = builder.where(" OR ".join(_partition_predicate(columns, v) for v in chunk))
        row = builder.executeCompaction().select("metrics").first()
        metrics = row[0] if row is not None else None
        if metrics is not None:
            removed += int(metrics["numFilesRemoved"] or 0)
            removed_bytes += int(metrics["filesRemoved"]["totalSize"] or 0)
    after = _detail(spark, path)
    return replace(
        result,
        files_after=after.files,
        bytes_after=after.bytes,
        files_removed=removed,
        bytes_removed=removed_bytes,
        seconds=time.monotonic() - started,
    )


@contextmanager
def _session_conf(spark: SparkSession, conf: Mapping[str, str]) -> Iterator[None]:
    """Set runtime options for one operation and restore them after."""
    saved = {key: spark.conf.get(key, None) for key in conf}
    for key, value in conf.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, value)


def vacuum(
    spark: SparkSession,
    path: str,
    *,
    retain_hours: float,
    allow_short_retention: bool = False,
    dry_run: bool = False,
) -> MaintenanceResult:
    """Delete files the table stopped referencing more than ``retain_hours`` ago (``VACUUM``).

    Args:
        spark: a driver session with Delta.
        path: the table location.
        retain_hours: files removed from the table longer ago than this are deleted; readers
            and streams on an older version than that can no longer read it.
        allow_short_retention: permit ``retain_hours`` below Delta's 168 h safety check
            (``maintenance.allow_short_vacuum_retention``).
        dry_run: only list the files VACUUM would delete (their sizes are not known then).

    Raises:
        ConfigError: if ``retain_hours`` is below 168 without ``allow_short_retention``.
    """
    from delta.tables import DeltaTable

    started = time.monotonic()
    if retain_hours < DELTA_SAFE_RETAIN_HOURS and not allow_short_retention:
        raise ConfigError(
            f"VACUUM retention {retain_hours:g} h is below Delta's safe "
            f"{DELTA_SAFE_RETAIN_HOURS:g} h: readers and streams on older versions could fail. "
            "Use 168 or more, or set WORKBENCH__MAINTENANCE__ALLOW_SHORT_VACUUM_RETENTION=true "
            "if no reader lags that much.",
            setting="maintenance.vacuum_retain_hours",
            table=path,
        )
    before = _detail(spark, path)
    result = _untouched("vacuum", table_name(path), before, dry_run)
    conf = {"spark.databricks.delta.vacuum.logging.enabled": "true"}
    if spark.conf.get(_LISTING_PARALLELISM, None) is None:
        # VACUUM lists the table's directories with this many tasks, 10,000 by default: minutes
        # of task overhead on a small cluster (measured on local[2]: 110 s -> 10 s). An
        # operator's own value (spark.extra_conf) is kept.
        conf[_LISTING_PARALLELISM] = str(2 * max(1, spark.sparkContext.defaultParallelism))
    if retain_hours < DELTA_SAFE_RETAIN_HOURS:
        # Only reachable with allow_short_retention; the check is off for this call only.
        conf["spark.databricks.delta.retentionDurationCheck.enabled"] = "false"
    with _session_conf(spark, conf):
        if dry_run:
            location = path.replace("`", "``")
            listed = spark.sql(
                f"VACUUM delta.`{location}` RETAIN {retain_hours:g} HOURS DRY RUN"
            ).collect()
            return replace(result, files_removed=len(listed), seconds=time.monotonic() - started)
        version = _version(spark, path)
        DeltaTable.forPath(spark, path).vacuum(retain_hours)
    commits = _operation_metrics(spark, path, ("VACUUM START", "VACUUM END"), version)
    planned, done = commits.get("VACUUM START", {}), commits.get("VACUUM END", {})
    return replace(
        result,
        files_removed=int(done.get("numDeletedFiles", planned.get("numFilesToDelete", 0))),
        bytes_removed=int(planned.get("sizeOfDataToDelete", 0)),
        seconds=time.monotonic() - started,
    )


def apply_retention(
    spark: SparkSession,
    path: str,
    *,
    default_days: int | None,
    per_device: Mapping[str, int | None],
    time_column: str | None = None,
    partition_column: str | None = None,
    device_column: str | None = "ingestion_id",
    now: datetime | None = None,
    dry_run: bool = False,
) -> MaintenanceResult:
    """Delete rows older than their retention with one Delta ``DELETE``.

    Args:
        spark: a driver session with Delta.
        path: the table location.
        default_days: the layer's retention (None: keep forever unless a device says otherwise).
        per_device: ``fnmatch`` pattern or exact ``ingestion_id`` → days (None: the layer
            default); an exact id beats a wildcard, a longer wildcard beats a shorter one.
        time_column: the timestamp the age is measured on, when there is no date partition.
        partition_column: a date partition column (silver's ``date``). When given, whole days
            before the cutoff's day are deleted, so Delta drops whole files without rewriting
            any; a row is then kept up to one day past its retention. ``time_column`` is not
            used then.
        device_column: the column holding the dataset id (None: ``per_device`` is ignored).
        now: the current time (UTC), for tests; default the clock.
        dry_run: only count the rows that would be deleted.

    Raises:
        ConfigError: if neither ``time_column`` nor ``partition_column`` is given.
    """
    from delta.tables import DeltaTable

    started = time.monotonic()
    column = partition_column or time_column
    if column is None:
        raise ConfigError(
            "retention needs a partition_column (date) or a time_column (timestamp)", table=path
        )
    condition = retention_condition(
        default_days=default_days,
        per_device=per_device,
        column=column,
        by_day=partition_column is not None,
        now=now or datetime.now(UTC),
        device_column=device_column,
    )
    before = _detail(spark, path)
    result = _untouched("retention", table_name(path), before, dry_run)
    if condition is None:
        return replace(
            result, skipped="no retention configured", seconds=time.monotonic() - started
        )
    if dry_run:
        rows = spark.read.format("delta").load(path).where(condition).count()
        return replace(result, rows_deleted=rows, seconds=time.monotonic() - started)
    version = _version(spark, path)
    DeltaTable.forPath(spark, path).delete(condition)
    metrics = _operation_metrics(spark, path, ("DELETE",), version).get("DELETE", {})
    after = _detail(spark, path)
    return replace(
        result,
        files_after=after.files,
        bytes_after=after.bytes,
        rows_deleted=int(metrics.get("numDeletedRows", 0)),
        files_removed=int(metrics.get("numRemovedFiles", 0)),
        bytes_removed=int(metrics.get("numRemovedBytes", 0)),
        seconds=time.monotonic() - started,
    )


@dataclass(frozen=True)
class _RetentionColumns:
    time_column: str | None
    partition_column: str | None
    device_column: str | None


def _retention_columns(spark: SparkSession, path: str) -> _RetentionColumns | None:
    """Which columns retention measures a table by: a ``date`` partition, else a timestamp."""
    schema = spark.read.format("delta").load(path).schema
    types = {f.name: f.dataType.simpleString() for f in schema.fields}
    device = "ingestion_id" if "ingestion_id" in types else None
    if types.get("date") == "date" and "date" in _detail(spark, path).partition_columns:
        return _RetentionColumns(None, "date", device)
    for name in ("window_start", "event_time", "received_at"):
        if types.get(name) == "timestamp":
            return _RetentionColumns(name, None, device)
    return None


def apply_table_retention(
    spark: SparkSession,
    path: str,
    days: int | None,
    per_device: Mapping[str, int | None],
    now: datetime | None = None,
    dry_run: bool = False,
) -> MaintenanceResult:
    """:func:`apply_retention` with the columns taken from the table itself.

    A ``date`` partition column is used if there is one (silver), else the first timestamp of
    ``window_start``, ``event_time``, ``received_at`` (gold); per-device retention applies when
    the table has an ``ingestion_id`` column.

    Args:
        spark: a driver session with Delta.
        path: the table location.
        days: the layer's retention (None: keep forever unless a device says otherwise).
        per_device: ``fnmatch`` pattern or exact ``ingestion_id`` → days (None: ``days``).
        now: the current time (UTC), for tests; default the clock.
        dry_run: only count the rows that would be deleted.
    """
    columns = _retention_columns(spark, path)
    if columns is None:
        return MaintenanceResult(
            "retention", table_name(path), dry_run=dry_run, skipped="no date or time column"
        )
    return apply_retention(
        spark,
        path,
        default_days=days,
        per_device=per_device,
        time_column=columns.time_column,
        partition_column=columns.partition_column,
        device_column=columns.device_column,
        now=now,
        dry_run=dry_run,
    )
