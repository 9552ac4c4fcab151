"""The ``wb`` handle: one object per kernel giving the settings, the engine and the catalog.

Every read of data goes through the engine's query service over HTTP, with the user's API
token (``WORKBENCH__AUTH__TOKEN`` or the file ``workbench login`` wrote): the service checks
the SQL, derives the result's sensitivity and refuses what the user may not see. Spark
Connect (``wb.spark``) is for admins holding the engine's Connect token. Nothing connects at
construction, so a kernel starts instantly even when the engine is down, and says so clearly
when asked.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from workbench.catalog.records import Computation
from workbench.client.engine_client import DEFAULT_LIMIT, EngineClient
from workbench.client.results import QueryAnswer
from workbench.core.errors import ForbiddenError, WorkbenchError
from workbench.core.masking import mask_url
from workbench.core.settings import Settings

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import SparkSession

    from workbench.catalog.store import Catalog
    from workbench.widgets.tile import TileWidget

__all__ = ["Workbench"]

logger = logging.getLogger(__name__)


class Workbench:
    """The analyst's entry point, pushed into the kernel's namespace as ``wb``.

    Args:
        settings: built once by the caller (the kernel extension or an app).
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._spark: SparkSession | None = None
        self._catalog: Catalog | None = None
        self._engine: EngineClient | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        e = self.settings.engine
        return f"<workbench engine=http://{e.host}:{e.port}>"

    # -- connections ----------------------------------------------------------------------------

    @property
    def engine(self) -> EngineClient:
        """The engine's HTTP client, with this user's token."""
        with self._lock:
            if self._engine is None:
                self._engine = EngineClient(self.settings)
            return self._engine

    @property
    def spark(self) -> SparkSession:
        """A Spark Connect session to the engine: for admins, with the engine's Connect token
        (``WORKBENCH__AUTH__CONNECT_TOKEN``). It bypasses the query service's checks, so
        analysts use :meth:`sql` instead.

        Raises:
            ForbiddenError: this kernel holds no Connect token.
        """
        if self.settings.auth.connect_token is None:
            raise ForbiddenError(
                "Spark Connect is for admins and the services: it needs the engine's Connect "
                "token (WORKBENCH__AUTH__CONNECT_TOKEN). Run queries with wb.sql(...) or %%sql"
            )
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
        """Whether the engine's HTTP API answers right now."""
        import httpx

        e = self.settings.engine
        try:
            return httpx.get(f"http://{e.host}:{e.port}/health", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    def close(self) -> None:
        """Release the HTTP client, the Connect session and the catalog."""
        with self._lock:
            spark, self._spark = self._spark, None
            engine, self._engine = self._engine, None
            catalog, self._catalog = self._catalog, None
        if engine is not None:
            engine.close()
        if spark is not None:
            try:
                spark.stop()
            except Exception as err:  # noqa: BLE001 - e.g. the engine restarted and no longer knows it
                logger.debug("closing spark connect session failed: %r", err)
        if catalog is not None:
            catalog.close()

    # -- queries ------------------------------------------------------------------------------

    def query(
        self, query: str, *, limit: int = DEFAULT_LIMIT, params: dict[str, Any] | None = None
    ) -> QueryAnswer:
        """Run one read-only query and keep everything the service answered (rows, column
        types, sensitivity label, the devices and tables behind it)."""
        return self.engine.query(query, parameters=params, limit=limit)

    def sql(
        self, query: str, *, limit: int = DEFAULT_LIMIT, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        """Run one read-only query on the engine's query service.

        Args:
            query: Spark SQL over the workbench's tables (``silver.readings``, ``gold.*``,
                ``devices``); ``:name`` markers take ``params``.
            limit: the most rows to return.
            params: values of the query's parameters, bound by Spark (never spliced in).

        Returns:
            The result as a pandas frame; ``frame.attrs["sensitivity"]`` is its label.
        """
        return self.query(query, limit=limit, params=params).to_pandas()

    def computation(self, name: str) -> Computation:
        """A saved computation, by name."""
        return self.engine.computation(name)

    def computations(self) -> list[Computation]:
        """Every saved computation."""
        return self.engine.computations()

    def run(self, name: str, *, limit: int = DEFAULT_LIMIT, **params: Any) -> pd.DataFrame:
        """Run a saved computation by name, with its parameters as keywords."""
        return self.engine.run_computation(name, parameters=params, limit=limit).to_pandas()

    def tables(self) -> pd.DataFrame:
        """The tables queries may read, one row per table with its columns."""
        import pandas as pd

        rows = [
            {"table": t["table"], "columns": ", ".join(c["name"] for c in t["columns"])}
            for t in self.engine.tables()
        ]
        return pd.DataFrame(rows, columns=["table", "columns"])

    def alerts(self, status: str | None = None) -> pd.DataFrame:
        """The alerts you may see (``"firing"`` or ``"resolved"`` only, with ``status``), one
        row per rule and sensor, firing first; ``.attrs["hidden"]`` counts the ones above your
        clearance. Acknowledge one with ``wb.engine.acknowledge_alert(id)``."""
        import pandas as pd

        columns = [
            "id", "status", "rule", "ingestion_id", "sensor_id", "value", "fired_at",
            "resolved_at", "episodes", "acknowledged_by", "acknowledged_at", "sensitivity",
        ]  # fmt: skip
        answer = self.engine.alerts(status=status)
        frame = pd.DataFrame(answer["alerts"], columns=columns)
        frame.attrs["hidden"] = answer["hidden"]  # alerts above your clearance, not shown
        return frame

    def tile(
        self,
        name: str,
        *,
        refresh_seconds: float | None = None,
        limit: int = DEFAULT_LIMIT,
    ) -> TileWidget:
        """A live tile for a saved computation.

        Args:
            name: the computation's name.
            refresh_seconds: auto-refresh interval; defaults to ``settings.voila.refresh_seconds``.
            limit: the most rows per refresh.
        """
        from workbench.widgets.tile import build_tile

        interval = refresh_seconds or self.settings.voila.refresh_seconds
        return build_tile(
            lambda: self.engine.run_computation(name, limit=limit),
            self.computation(name),
            refresh_seconds=interval,
        )

    def status(self) -> dict[str, Any]:
        """Where things are and whether they answer (nothing here raises)."""
        e = self.settings.engine
        status: dict[str, Any] = {
            "engine": f"http://{e.host}:{e.port}",
            "engine_reachable": self.engine_reachable(),
            "catalog": mask_url(self.settings.catalog.url),  # shown in notebooks: no password
            "lake": self.settings.lake.root,
        }
        try:
            me = self.engine.me()
            status["user"] = f"{me['user']} ({me['role']})"
            status["computations"] = [c.name for c in self.engine.computations()]
        except WorkbenchError as err:  # status reports problems, it does not raise them
            status["user"] = f"not signed in: {err.message}"
        return status
