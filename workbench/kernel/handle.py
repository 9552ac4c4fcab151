"""The ``wb`` handle: one object per kernel giving the settings, the engine and the catalog.

Nothing connects at construction: the Spark Connect session and the catalog open on first use,
so a kernel starts instantly even when the engine is down, and says so clearly when asked.
"""

from __future__ import annotations

import logging
import socket
import threading
from typing import TYPE_CHECKING, Any

from workbench.analytics.computations import DEFAULT_LIMIT, run_computation
from workbench.analytics.reporting import EngineReporter
from workbench.catalog.records import Computation
from workbench.core.errors import ServiceUnavailableError
from workbench.core.masking import mask_url
from workbench.core.settings import Settings

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import SparkSession

    from workbench.catalog.store import Catalog
    from workbench.widgets.tile import TileWidget

__all__ = ["Workbench"]

logger = logging.getLogger(__name__)

_PROBE_SECONDS = 2.0


class Workbench:
    """The analyst's entry point, pushed into the kernel's namespace as ``wb``.

    Args:
        settings: built once by the caller (the kernel extension or an app).
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._spark: SparkSession | None = None
        self._catalog: Catalog | None = None
        self._lock = threading.Lock()
        # Every computation run is reported to the engine's metrics, in the background.
        self.reporter = EngineReporter(settings)

    def __repr__(self) -> str:
        state = "connected" if self._spark is not None else "not connected"
        return f"<workbench engine={self.settings.engine.connect_url} ({state})>"

    # -- connections ----------------------------------------------------------------------------

    @property
    def spark(self) -> SparkSession:
        """The Spark Connect session to the engine, connected on first use.

        Raises:
            ServiceUnavailableError: the engine's Connect endpoint does not answer.
        """
        return self.spark_factory()

    def spark_factory(self) -> SparkSession:
        """Return the session, checking first that the engine still answers.

        Tiles call this on every refresh. The check is a plain TCP connect with a short timeout:
        the Connect client itself retries an absent server for minutes before failing.

        Raises:
            ServiceUnavailableError: the engine's Connect endpoint does not answer.
        """
        self._probe_engine()
        with self._lock:
            if self._spark is None:
                from workbench.spark.session import connect_session

                self._spark = connect_session(self.settings)
            return self._spark

    @property
    def catalog(self) -> Catalog:
        """The catalog (computations, rules, datasets), opened on first use."""
        with self._lock:
            if self._catalog is None:
                from workbench.catalog.store import Catalog

                self._catalog = Catalog(self.settings.catalog.url)
            return self._catalog

    def engine_reachable(self) -> bool:
        """Whether the engine's Spark Connect port accepts connections right now."""
        try:
            self._probe_engine()
        except ServiceUnavailableError:
            return False
        return True

    def reset_session(self) -> None:
        """Forget the engine session; the next use connects anew (after an engine restart)."""
        with self._lock:
            self._spark = None

    def close(self) -> None:
        """Release the engine session (if the engine still answers) and close the catalog."""
        with self._lock:
            spark, self._spark = self._spark, None
        # Only a live engine can release the session: against a dead one the client would
        # retry for minutes.
        if spark is not None and self.engine_reachable():
            try:
                spark.stop()
            except Exception as err:  # noqa: BLE001 - e.g. the engine restarted and no longer knows it
                logger.debug("closing spark connect session failed: %r", err)
        with self._lock:
            if self._catalog is not None:
                self._catalog.close()
                self._catalog = None

    def _probe_engine(self) -> None:
        host, port = self.settings.engine.host, self.settings.engine.connect_port
        try:
            with socket.create_connection((host, port), timeout=_PROBE_SECONDS):
                return
        except OSError as err:
            self.reset_session()  # the engine went away: its server-side session is gone too
            raise ServiceUnavailableError(
                f"the engine's Spark Connect endpoint {self.settings.engine.connect_url} does not"
                f" answer ({err.strerror or err}); start it with `workbench engine` or"
                " `workbench up`",
                url=self.settings.engine.connect_url,
            ) from err

    # -- queries ------------------------------------------------------------------------------

    def sql(self, query: str, *, limit: int = DEFAULT_LIMIT) -> pd.DataFrame:
        """Run one read-only query (``SELECT``/``WITH``) on the engine.

        Args:
            query: Spark SQL over the catalog tables (``silver.readings``, ``gold.*``).
            limit: the most rows to return.

        Returns:
            The result as a pandas frame.
        """
        return self._run(Computation(name="query", sql=query), limit)

    def computation(self, name: str) -> Computation:
        """A saved computation from the catalog, by name."""
        return self.catalog.get_computation(name)

    def run(self, name: str, *, limit: int = DEFAULT_LIMIT) -> pd.DataFrame:
        """Run a saved computation by name.

        Args:
            name: the computation's name in the catalog (``wb.catalog.list_computations()``).
            limit: the most rows to return.
        """
        return self._run(self.computation(name), limit)

    def _run(self, computation: Computation, limit: int) -> pd.DataFrame:
        try:
            return run_computation(self.spark, computation, limit=limit, observer=self.reporter)
        except ServiceUnavailableError:
            # The engine restarted under a live session: reconnect once, transparently.
            self.reset_session()
            return run_computation(self.spark, computation, limit=limit, observer=self.reporter)

    def tables(self) -> pd.DataFrame:
        """The tables the engine serves, one row per table: database, table, type."""
        import pandas as pd

        spark = self.spark
        rows: list[dict[str, Any]] = []
        for database in spark.catalog.listDatabases():
            for table in spark.catalog.listTables(database.name):
                rows.append(
                    {"database": database.name, "table": table.name, "type": table.tableType}
                )
        return pd.DataFrame(rows, columns=["database", "table", "type"])

    def tile(
        self,
        name: str,
        *,
        refresh_seconds: float | None = None,
        limit: int = DEFAULT_LIMIT,
    ) -> TileWidget:
        """A live tile for a saved computation.

        Args:
            name: the computation's name in the catalog.
            refresh_seconds: auto-refresh interval; defaults to ``settings.voila.refresh_seconds``.
            limit: the most rows per refresh.
        """
        from workbench.widgets.tile import build_tile

        interval = refresh_seconds or self.settings.voila.refresh_seconds
        return build_tile(
            self.spark_factory,
            self.computation(name),
            refresh_seconds=interval,
            limit=limit,
            on_session_lost=self.reset_session,
            observer=self.reporter,
        )

    def status(self) -> dict[str, Any]:
        """Where things are and whether they answer (nothing here raises)."""
        reachable = self.engine_reachable()
        status: dict[str, Any] = {
            "engine": self.settings.engine.connect_url,
            "engine_reachable": reachable,
            "session": "connected" if self._spark is not None else "not connected",
            "catalog": mask_url(self.settings.catalog.url),  # shown in notebooks: no password
            "lake": self.settings.lake.root,
        }
        try:
            status["computations"] = [c.name for c in self.catalog.list_computations()]
        except Exception as err:  # noqa: BLE001 - status reports problems, it does not raise them
            status["computations"] = f"catalog error: {err}"
        return status
