"""Runs lake maintenance over every table: from the CLI and on the engine's schedule.

:func:`run_maintenance` walks bronze (retention only: plain Parquet) and every Delta table under
``silver/`` and ``gold/``, running retention, then compaction, then VACUUM with the settings in
``settings.maintenance`` and the devices' retention. :class:`MaintenanceScheduler` repeats that
every ``maintenance.interval_seconds`` in a thread of the engine: a step that fails with a
terminal error (:func:`~workbench.core.errors.is_terminal`, e.g. a VACUUM retention Delta
refuses) is logged with its code and not scheduled again for that table; any other failure is
retried at the next round.

Run from the CLI (``workbench maintain``) while the engine is up, every step is a Delta
transaction: compaction and silver retention commit alongside the enrichment stream's appends.
A step that loses a commit race (gold is MERGEd by its stream) runs again, up to
:data:`CONFLICT_ATTEMPTS` times (see :mod:`workbench.maintenance.steps`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Sequence
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from workbench.catalog.records import Device
from workbench.core.errors import EngineError, error_code, is_terminal
from workbench.core.settings import Settings
from workbench.maintenance.bronze_retention import apply_bronze_retention
from workbench.maintenance.steps import (
    LAYERS,
    STEPS,
    MaintenanceLayer,
    MaintenanceResult,
    Step,
    apply_table_retention,
    compact,
    table_name,
    vacuum,
)

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = [
    "MaintenanceScheduler",
    "catalog_devices",
    "is_commit_conflict",
    "run_maintenance",
    "run_maintenance_job",
]

log = logging.getLogger(__name__)

#: Tries of a step that conflicts with a concurrent Delta commit before it counts as failed.
CONFLICT_ATTEMPTS = 5


def _delta_tables(spark: SparkSession, directory: str) -> list[str]:
    """The Delta tables directly under ``directory`` (local or ``s3a://``), sorted."""
    from delta.tables import DeltaTable

    context: Any = spark.sparkContext
    hadoop_path = context._jvm.org.apache.hadoop.fs.Path(directory)
    fs = hadoop_path.getFileSystem(context._jsc.hadoopConfiguration())
    if not fs.exists(hadoop_path):
        return []
    found = []
    for status in fs.listStatus(hadoop_path):
        name = str(status.getPath().getName())
        table = f"{directory.rstrip('/')}/{name}"
        if (
            status.isDirectory()
            and not name.startswith(".")
            and DeltaTable.isDeltaTable(spark, table)
        ):
            found.append(table)
    return sorted(found)


def _layer_days(settings: Settings, layer: MaintenanceLayer) -> int | None:
    m = settings.maintenance
    return {
        "bronze": m.bronze_retention_days,
        "silver": m.silver_retention_days,
        "gold": m.gold_retention_days,
    }[layer]


def run_maintenance(
    spark: SparkSession,
    settings: Settings,
    devices: Sequence[Device],
    *,
    steps: Sequence[Step] = STEPS,
    layers: Sequence[MaintenanceLayer] = LAYERS,
    dry_run: bool = False,
    now: datetime | None = None,
    on_start: Callable[[str, Step], None] | None = None,
    on_result: Callable[[MaintenanceResult], None] | None = None,
    on_error: Callable[[str, Step, BaseException], None] | None = None,
    skip: Collection[tuple[str, Step]] = (),
) -> list[MaintenanceResult]:
    """Run retention, compaction and VACUUM over the lake's layers, table by table.

    A failing step is recorded in its result (``error``) and the run goes on with the next
    step and table, so one broken table never blocks the maintenance of the others.

    Args:
        spark: a driver session with Delta (the engine's, or the CLI's own).
        settings: ``maintenance`` and ``lake`` settings.
        devices: registered devices; their ``retention_days`` override the silver, gold and
            bronze defaults for their ``ingestion_id`` pattern.
        steps: which of ``retention``, ``compact``, ``vacuum`` to run (always in that order).
        layers: which of ``bronze``, ``silver``, ``gold``; bronze has retention only.
        dry_run: change nothing, report what would be done.
        now: the current time (UTC), for tests; default the clock.
        on_start: called with ``(table, step)`` before each step (progress display).
        on_result: called with each step's result as soon as it is known.
        on_error: called with ``(table, step, error)`` for each step that failed.
        skip: ``(table, step)`` pairs not to run (steps stopped by a terminal error).

    Returns:
        One result per table and step, in the order they ran.

    Raises:
        EngineError: if a layer's directory cannot be listed (the lake is unreachable).
    """
    m = settings.maintenance
    # Every device, with or without retention: the most specific one decides, and one without
    # retention of its own means the layer default (as the catalog's device_for matches).
    per_device = {d.ingestion_id: d.retention_days for d in devices}
    results: list[MaintenanceResult] = []

    def run(table: str, step: Step, action: Callable[[], MaintenanceResult]) -> None:
        if (table, step) in skip:
            return
        if on_start is not None:
            on_start(table, step)
        started = time.monotonic()
        try:
            result = _with_conflict_retries(action, table, step)
        except Exception as err:  # noqa: BLE001 - one table's failure must not stop the others
            message = _reason(err)
            log.warning(
                "maintenance step failed table=%s step=%s code=%s reason=%s",
                table,
                step,
                error_code(err),
                message,
            )
            if on_error is not None:
                on_error(table, step, err)
            result = MaintenanceResult(
                step,
                table,
                dry_run=dry_run,
                error=message,
                seconds=time.monotonic() - started,
            )
        results.append(result)
        if on_result is not None:
            on_result(result)

    def action(step: Step, path: str, days: int | None) -> Callable[[], MaintenanceResult]:
        if step == "retention":
            return partial(apply_table_retention, spark, path, days, per_device, now, dry_run)
        if step == "compact":
            return partial(compact, spark, path, min_files=m.compaction_min_files, dry_run=dry_run)
        return partial(
            vacuum,
            spark,
            path,
            retain_hours=m.vacuum_retain_hours,
            allow_short_retention=m.allow_short_vacuum_retention,
            dry_run=dry_run,
        )

    for layer in (layer for layer in LAYERS if layer in layers):
        days = _layer_days(settings, layer)
        if layer == "bronze":
            # Plain Parquet: nothing to compact or vacuum, retention removes whole days.
            if "retention" in steps:
                bronze = partial(
                    apply_bronze_retention,
                    settings,
                    default_days=days,
                    per_device=per_device,
                    now=now,
                    dry_run=dry_run,
                )
                run("bronze", "retention", bronze)
            continue
        directory = f"{settings.lake.root}/{layer}"
        try:
            tables = _delta_tables(spark, directory)
        except Exception as err:
            raise EngineError(
                f"cannot list the {layer} tables under {directory}: {_reason(err)}",
                layer=layer,
                path=directory,
            ) from err
        for path in tables:
            for step in (s for s in STEPS if s in steps):
                run(table_name(path), step, action(step, path, days))
    return results


def _with_conflict_retries(
    action: Callable[[], MaintenanceResult], table: str, step: Step
) -> MaintenanceResult:
    """Run a step again when a concurrent commit won the race (a gold MERGE, say)."""
    for attempt in range(1, CONFLICT_ATTEMPTS + 1):
        try:
            return action()
        except Exception as err:
            if attempt == CONFLICT_ATTEMPTS or not is_commit_conflict(err):
                raise
            log.info(
                "maintenance step lost a commit race; running it again table=%s step=%s "
                "attempt=%d reason=%s",
                table,
                step,
                attempt,
                _reason(err),
            )
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


def _reason(err: BaseException) -> str:
    """One line saying what failed: the Java exception's own message for a JVM error."""
    text = getattr(err, "message", None) or f"{type(err).__name__}: {err}"
    java: Any = getattr(err, "java_exception", None)
    if java is not None:
        try:
            text = str(java.toString())
        except Exception as gone:  # noqa: BLE001 - the Python message is still worth showing
            log.debug("java exception unreadable reason=%s", gone)
    lines = str(text).strip().splitlines()
    return lines[0][:500] if lines else type(err).__name__


def is_commit_conflict(err: BaseException) -> bool:
    """True for a Delta commit conflict (``java.util.ConcurrentModificationException``).

    ``DeltaTable`` methods call the JVM directly, so their conflicts arrive as a plain
    ``Py4JJavaError`` rather than as ``delta.exceptions``; the Java class tells.
    """
    from delta.exceptions import DeltaConcurrentModificationException

    if isinstance(err, DeltaConcurrentModificationException):
        return True
    java: Any = getattr(err, "java_exception", None)
    try:
        cls = java.getClass() if java is not None else None
        while cls is not None:
            if cls.getName() == "java.util.ConcurrentModificationException":
                return True
            cls = cls.getSuperclass()
    except Exception:  # noqa: BLE001 - a gateway that is gone means "not a conflict we can retry"
        return False
    return False


def catalog_devices(settings: Settings) -> list[Device]:
    """The devices registered in the catalog, with their ``retention_days``."""
    from workbench.catalog.store import Catalog

    catalog = Catalog(settings.catalog.url)
    try:
        return catalog.list_devices()
    finally:
        catalog.close()


def run_maintenance_job(
    settings: Settings,
    *,
    steps: Sequence[Step] = STEPS,
    layers: Sequence[MaintenanceLayer] = LAYERS,
    dry_run: bool = False,
    on_start: Callable[[str, Step], None] | None = None,
    on_result: Callable[[MaintenanceResult], None] | None = None,
) -> list[MaintenanceResult]:
    """One maintenance run in a Spark driver of its own (``workbench maintain``).

    The engine may keep running: every step is a Delta transaction (see the module docstring
    for what a concurrent gold stream sees). Arguments are those of :func:`run_maintenance`.

    Raises:
        ConfigError: if the jar cache is missing.
    """
    from workbench.spark.session import build_session

    devices = catalog_devices(settings)
    spark = build_session(settings, app_name="workbench-maintain")
    try:
        return run_maintenance(
            spark,
            settings,
            devices,
            steps=steps,
            layers=layers,
            dry_run=dry_run,
            on_start=on_start,
            on_result=on_result,
        )
    finally:
        spark.stop()


class MaintenanceScheduler:
    """Runs :func:`run_maintenance` every ``maintenance.interval_seconds`` in a daemon thread.

    A failed round (the catalog away, a Spark error) is logged with its reason and code and
    the next round runs as usual. A terminal error stops what it failed: a step's (table, step)
    is not run again (:attr:`stopped`), and a round that fails terminally as a whole (a broken
    configuration) ends the schedule (:attr:`failed`). The first round runs one interval after
    :meth:`start`, so an engine start is not slowed by maintenance.

    Args:
        spark: the engine's driver session.
        settings: ``maintenance`` (interval, retention, VACUUM, compaction) and ``lake``.
        devices: called at each round for the registered devices (``Catalog.list_devices``),
            so retention changes apply without a restart.
        on_terminal: called with ``(component, code)`` when a terminal error stops a step
            (``maintenance:<step>:<table>``) or the schedule (``maintenance``); metrics.
    """

    def __init__(
        self,
        spark: SparkSession,
        settings: Settings,
        devices: Callable[[], Sequence[Device]],
        *,
        on_terminal: Callable[[str, str], None] | None = None,
    ) -> None:
        self._spark = spark
        self._settings = settings
        self._devices = devices
        self._on_terminal = on_terminal
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.rounds = 0
        """Rounds completed (with or without failed steps)."""
        self.last_results: list[MaintenanceResult] = []
        """The results of the last completed round."""
        self.last_error: str | None = None
        """Why the last round failed as a whole, None if it completed."""
        self.stopped: dict[tuple[str, Step], str] = {}
        """Steps a terminal error stopped, ``(table, step)``: the error's code."""
        self.failed: str | None = None
        """The code of the terminal error that ended the schedule, None while it runs."""

    @property
    def interval(self) -> float:
        """Seconds between rounds (0: the schedule is off)."""
        return self._settings.maintenance.interval_seconds

    def start(self) -> bool:
        """Start the thread; False (and nothing started) when the interval is 0."""
        if self.interval <= 0:
            log.info("maintenance schedule off (maintenance.interval_seconds=0)")
            return False
        if self._thread is not None and self._thread.is_alive():
            return True
        self._stop.clear()
        self._thread = threading.Thread(target=self._run_loop, name="lake-maintenance", daemon=True)
        self._thread.start()
        log.info("maintenance scheduled interval_s=%s", self.interval)
        return True

    def stop(self, timeout: float = 60.0) -> None:
        """Stop after the step in progress (waits up to ``timeout`` seconds for it)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("maintenance still running after stop timeout_s=%s", timeout)

    def run_once(self) -> list[MaintenanceResult]:
        """One round now, in the calling thread; results are logged and kept."""
        results = run_maintenance(
            self._spark,
            self._settings,
            list(self._devices()),
            on_result=_log_result,
            on_error=self._step_failed,
            skip=set(self.stopped),
        )
        self.last_results = results
        self.rounds += 1
        return results

    def _step_failed(self, table: str, step: Step, err: BaseException) -> None:
        if not is_terminal(err):
            return  # retried at the next round
        code = error_code(err)
        self.stopped[(table, step)] = code
        log.error(
            "maintenance step failed terminally, not scheduled again table=%s step=%s code=%s "
            "reason=%s; fix the cause and restart the engine",
            table,
            step,
            code,
            _reason(err),
        )
        if self._on_terminal is not None:
            self._on_terminal(f"maintenance:{step}:{table}", code)

    def _run_loop(self) -> None:
        while not self._stop.wait(self.interval):
            started = time.monotonic()
            try:
                results = self.run_once()
                self.last_error = None
            except Exception as err:  # noqa: BLE001 - the schedule must outlive one bad round
                self.last_error = f"{type(err).__name__}: {err}"
                code = error_code(err)
                if is_terminal(err):
                    self.failed = code
                    log.error(
                        "maintenance round failed terminally; schedule stopped code=%s reason=%s",
                        code,
                        self.last_error,
                    )
                    if self._on_terminal is not None:
                        self._on_terminal("maintenance", code)
                    return
                log.warning(
                    "maintenance round failed; retrying in %ss code=%s reason=%s",
                    self.interval,
                    code,
                    self.last_error,
                )
                continue
            failed = sum(1 for r in results if r.error)
            log.info(
                "maintenance round done steps=%d failed=%d stopped=%d seconds=%.1f",
                len(results),
                failed,
                len(self.stopped),
                time.monotonic() - started,
            )


def _log_result(result: MaintenanceResult) -> None:
    level = logging.WARNING if result.error else logging.INFO
    log.log(level, "maintenance %s", result.summary())
