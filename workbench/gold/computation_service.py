"""Keeps one managed query per enabled stream computation in step with the catalog.

The engine registers ``computation:<name>`` with its :class:`StreamManager` for every enabled
computation at start-up; afterwards every change goes through :class:`StreamComputations`, which
checks it on the engine's Spark (:func:`~workbench.gold.computation_query.check_streamable`)
before saving, and then starts, restarts or stops its query without restarting the engine:

- a new enabled computation starts; a disabled one is saved and does not run;
- new SQL (a new version) restarts it from scratch (new checkpoint, ``gold.<name>`` emptied);
- disabling stops it (its table and checkpoint stay; enabling resumes where it stopped);
- deleting stops it and drops ``gold.<name>``, its data and its checkpoints.

A change of the description alone touches nothing that runs.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pyspark.sql import SparkSession

from workbench.catalog.records import StreamComputation
from workbench.catalog.store import Catalog
from workbench.core.errors import (
    CatalogError,
    ComputationError,
    EngineError,
    NotFoundError,
    error_code,
    is_terminal,
)
from workbench.core.settings import Settings
from workbench.gold.computation_query import (
    check_streamable,
    checkpoint_of,
    drop_computation,
    start_computation,
)
from workbench.gold.gold_stream import register_gold_table
from workbench.gold.stream_computation import check_name, query_name
from workbench.metrics.engine import EngineMetrics
from workbench.spark.files import LakeFiles
from workbench.streams.queries import DeltaSourceLag
from workbench.streams.supervisor import StreamManager

log = logging.getLogger(__name__)


@dataclass
class _Written:
    """What a computation's current version wrote (rows across engine restarts; the last
    batch since this engine started it)."""

    rows_written: int = 0
    last_batch_id: int | None = None
    last_batch_at: datetime | None = None


class StreamComputations:
    """The stream computations of one engine: catalog records plus their managed queries.

    Args:
        spark: the engine's session (each query gets a session of its own from it).
        settings: the workbench settings.
        catalog: where the computations are stored.
        manager: the engine's stream manager.
        metrics: the engine's metrics (rows written per gold table).
    """

    def __init__(
        self,
        spark: SparkSession,
        settings: Settings,
        catalog: Catalog,
        manager: StreamManager,
        *,
        metrics: EngineMetrics | None = None,
    ) -> None:
        self.spark = spark
        self.settings = settings
        self.catalog = catalog
        self.manager = manager
        self.metrics = metrics
        self._lock = threading.Lock()
        self._written: dict[str, _Written] = {}

    def register_all(self) -> None:
        """Register a query for every enabled computation (they start with the manager's
        ``start_all``) and name the tables of disabled ones that have data."""
        from delta.tables import DeltaTable

        for computation in self.catalog.list_stream_computations():
            if computation.enabled:
                self._register(computation)
                continue
            path = self.settings.lake.gold(computation.name)
            if DeltaTable.isDeltaTable(self.spark, path):
                register_gold_table(self.spark, computation.name, path)

    # -- reading -----------------------------------------------------------------------------

    def list(self) -> list[dict[str, Any]]:
        """Every computation with its query's status, by name."""
        return [self._view(c) for c in self.catalog.list_stream_computations()]

    def get(self, name: str) -> dict[str, Any]:
        """One computation with its query's status.

        Raises:
            NotFoundError: if there is none of that name.
        """
        return self._view(self.catalog.get_stream_computation(name))

    # -- changing ----------------------------------------------------------------------------

    def create(
        self, name: str, sql: str, *, description: str = "", enabled: bool = True
    ) -> dict[str, Any]:
        """Check, save and (if enabled) start a new computation.

        Raises:
            CatalogError: a computation of that name exists.
            ComputationError: the name or SQL is refused, or Spark cannot stream it.
            ConfigError: the catalog refused the record.
        """
        with self._lock:
            # Spark's table names ignore case: ``Hot`` and ``hot`` would share ``gold.hot``.
            same = [c.name for c in self.catalog.list_stream_computations()]
            taken = next((n for n in same if n.lower() == name.lower()), None)
            if taken is not None:
                raise CatalogError(
                    f"a stream computation named {taken!r} exists; change it with "
                    f"PUT /api/stream-computations/{taken} or delete it first",
                    name=name,
                )
            return self._save(StreamComputation(name, sql, description, enabled), None)

    def update(
        self,
        name: str,
        *,
        sql: str | None = None,
        description: str | None = None,
        enabled: bool | None = None,
    ) -> dict[str, Any]:
        """Change what is given; new SQL restarts the computation from scratch.

        Raises:
            NotFoundError: if there is none of that name.
            ComputationError: the SQL is refused, or Spark cannot stream it.
        """
        with self._lock:
            current = self.catalog.get_stream_computation(name)
            wanted = dataclasses.replace(
                current,
                sql=current.sql if sql is None else sql,
                description=current.description if description is None else description,
                enabled=current.enabled if enabled is None else enabled,
            )
            return self._save(wanted, current)

    def delete(self, name: str) -> None:
        """Stop the computation, forget it and drop its table, data and checkpoints.

        Raises:
            NotFoundError: if there is none of that name.
        """
        with self._lock:
            self.catalog.get_stream_computation(name)
            self._unregister(name)
            self.catalog.delete_stream_computation(name)
            self._written.pop(name, None)
            drop_computation(self.spark, self.settings, name)

    def _save(self, wanted: StreamComputation, current: StreamComputation | None) -> dict[str, Any]:
        check_name(wanted.name, self.catalog.list_value_rules(include_disabled=True))
        if current is None or wanted.sql != current.sql:
            check_streamable(self.spark, self.settings, wanted)
        stored = self.catalog.save_stream_computation(wanted)
        changed = (
            current is None
            or stored.version != current.version
            or stored.enabled != current.enabled
        )
        if changed:
            self._unregister(stored.name)
            if stored.enabled:
                self._register(stored)
                self._start(stored)
        log.info(
            "stream computation saved name=%s version=%s enabled=%s restarted=%s",
            stored.name,
            stored.version,
            stored.enabled,
            changed,
        )
        return self._view(stored)

    # -- the managed queries -----------------------------------------------------------------

    def _register(self, computation: StreamComputation) -> None:
        self._written[computation.name] = _Written(rows_written=self._rows_of(computation))
        self.manager.register(
            query_name(computation.name),
            lambda: start_computation(
                self.spark,
                self.settings,
                computation,
                metrics=self.metrics,
                on_batch=self._on_batch,
                failures=self.manager.failures,
            ),
            lag=DeltaSourceLag(
                self.settings.lake.silver_readings,
                checkpoint_of(self.settings, computation),
                self.spark,
            ),
        )

    def _rows_of(self, computation: StreamComputation) -> int:
        """Rows this version has in its table already (0 if it has not run: its table is
        emptied when it starts). The table is append-only, so that is what it wrote; Delta
        counts it from file statistics."""
        if not LakeFiles(self.spark).names(checkpoint_of(self.settings, computation)):
            return 0
        path = self.settings.lake.gold(computation.name)
        try:
            return int(self.spark.read.format("delta").load(path).count())
        except Exception as err:  # noqa: BLE001 - a count must not stop the engine starting
            log.warning("stream computation rows unknown name=%s error=%s", computation.name, err)
            return 0

    def _start(self, computation: StreamComputation) -> None:
        try:
            self.manager.start(query_name(computation.name))
        except Exception as err:
            saved = (
                f"stream computation {computation.name!r} was saved (version "
                f"{computation.version}) but its query did not start: {err}"
            )
            if is_terminal(err):
                # Retrying cannot help: the manager tries once more, then stops it for good.
                raise ComputationError(
                    f"{saved}; fix it and update the computation",
                    computation=computation.name,
                    cause=error_code(err),
                ) from err
            # Saved and wanted running: the manager's monitor retries the start with backoff.
            raise EngineError(
                f"{saved}; the engine keeps retrying, see "
                f"GET /api/stream-computations/{computation.name}",
                computation=computation.name,
                cause=error_code(err),
            ) from err

    def _unregister(self, name: str) -> None:
        if query_name(name) in self.manager.names():
            self.manager.unregister(query_name(name))

    def _on_batch(self, name: str, batch_id: int, rows: int) -> None:
        written = self._written.setdefault(name, _Written())
        written.rows_written += rows
        written.last_batch_id = batch_id
        written.last_batch_at = datetime.now(UTC)

    def _view(self, computation: StreamComputation) -> dict[str, Any]:
        try:
            query: dict[str, Any] | None = self.manager.status_of(
                query_name(computation.name)
            ).to_dict()
        except NotFoundError:
            query = None  # disabled, or being replaced right now
        return {
            **dataclasses.asdict(computation),
            "table": f"gold.{computation.name}",
            "query": query,
            **dataclasses.asdict(self._written.get(computation.name, _Written())),
        }
