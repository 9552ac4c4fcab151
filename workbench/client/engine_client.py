"""Python twin of the engine's HTTP API: streams and stream computations.

Stream statuses come back as :class:`~workbench.streams.status.StreamStatus` values, errors as
the class the engine raised (:func:`workbench.client.answers.answer_error`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from workbench.catalog.records import Computation, Dashboard, Parameter, Tile
from workbench.client.answers import answer_error
from workbench.client.credentials import auth_headers
from workbench.client.results import QueryAnswer
from workbench.core.errors import ServiceUnavailableError
from workbench.core.settings import Settings
from workbench.streams.status import StreamStatus

#: Rows a query returns unless asked otherwise (the service's own default).
DEFAULT_LIMIT = 1000

#: A stop waits for the running batch up to 30 s, then Spark may take up to 30 s more.
_TIMEOUT_SECONDS = 75.0


class EngineClient:
    """Talks to a running engine service (``settings.engine.host:port``)."""

    def __init__(self, settings: Settings, *, timeout: float = _TIMEOUT_SECONDS) -> None:
        self.url = f"http://{settings.engine.host}:{settings.engine.port}"
        self._http = httpx.Client(
            base_url=self.url, timeout=timeout, headers=auth_headers(settings)
        )

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._http.close()

    def streams(self) -> list[StreamStatus]:
        """Every query's status: state, rows/s, last batch, restarts, error, lag."""
        return [StreamStatus.from_dict(s) for s in self._call("GET", "/api/streams")]

    def stream(self, name: str) -> StreamStatus:
        """One query's status.

        Raises:
            NotFoundError: if no query has that name.
        """
        return StreamStatus.from_dict(self._call("GET", f"/api/streams/{quote(name)}"))

    def start(self, name: str) -> StreamStatus:
        """Start a query; returns its status."""
        return StreamStatus.from_dict(self._call("POST", f"/api/streams/{quote(name)}/start"))

    def stop(self, name: str) -> StreamStatus:
        """Stop a query after its running batch; it stays stopped until started."""
        return StreamStatus.from_dict(self._call("POST", f"/api/streams/{quote(name)}/stop"))

    def restart(self, name: str) -> StreamStatus:
        """Restart a query from its checkpoint; returns its status."""
        return StreamStatus.from_dict(self._call("POST", f"/api/streams/{quote(name)}/restart"))

    # -- stream computations ------------------------------------------------------------

    def stream_computations(self) -> list[dict[str, Any]]:
        """Every stream computation with its query's status and rows written."""
        return self._call("GET", "/api/stream-computations")

    def stream_computation(self, name: str) -> dict[str, Any]:
        """One stream computation.

        Raises:
            NotFoundError: if there is none of that name.
        """
        return self._call("GET", f"/api/stream-computations/{quote(name)}")

    def create_stream_computation(
        self, name: str, sql: str, *, description: str = "", enabled: bool = True
    ) -> dict[str, Any]:
        """Add a stream computation over ``silver``; it runs at once into ``gold.<name>``.

        Raises:
            ComputationError: the name or SQL is refused (the engine's reason in the message).
            CatalogError: one of that name exists.
        """
        body = {"name": name, "sql": sql, "description": description, "enabled": enabled}
        return self._call("POST", "/api/stream-computations", json=body)

    def update_stream_computation(
        self,
        name: str,
        *,
        sql: str | None = None,
        description: str | None = None,
        enabled: bool | None = None,
    ) -> dict[str, Any]:
        """Change any of ``sql`` (restarts from scratch), ``description``, ``enabled``.

        Raises:
            ComputationError: the SQL is refused.
            NotFoundError: if there is none of that name.
        """
        changes = {"sql": sql, "description": description, "enabled": enabled}
        body = {k: v for k, v in changes.items() if v is not None}
        return self._call("PUT", f"/api/stream-computations/{quote(name)}", json=body)

    def delete_stream_computation(self, name: str) -> None:
        """Stop a stream computation and drop ``gold.<name>``.

        Raises:
            NotFoundError: if there is none of that name.
        """
        self._call("DELETE", f"/api/stream-computations/{quote(name)}")

    # -- the query service ------------------------------------------------------------

    def query(
        self,
        sql: str,
        *,
        parameters: dict[str, Any] | None = None,
        limit: int = DEFAULT_LIMIT,
        timeout_seconds: float | None = None,
    ) -> QueryAnswer:
        """Run one read-only query on the engine's query service.

        Raises:
            QueryRefused, ComputationError: the query is not allowed, or Spark refused it
                (``fields`` carry ``line`` and ``column``).
            SensitivityDenied: the result is above the caller's clearance.
            QueryTimeoutError: it ran past its timeout.
        """
        body = {"sql": sql, "parameters": parameters or {}, "limit": limit}
        if timeout_seconds is not None:
            body["timeout_seconds"] = timeout_seconds
        return QueryAnswer.from_dict(self._call("POST", "/api/query", json=body))

    def check(self, sql: str, *, parameters: dict[str, Any] | None = None) -> dict[str, Any]:
        """Check a query without running it: its columns and derived label."""
        body = {"sql": sql, "parameters": parameters or {}}
        return dict(self._call("POST", "/api/query/check", json=body))

    def computations(self) -> list[Computation]:
        """Every saved computation."""
        return [_computation(c) for c in self._call("GET", "/api/computations")]

    def computation(self, name: str) -> Computation:
        """One saved computation (``NotFoundError`` if unknown)."""
        return _computation(self._call("GET", f"/api/computations/{quote(name)}"))

    def save_computation(self, computation: Computation) -> dict[str, Any]:
        """Check and save a computation; answers it with its derived label."""
        body = {
            "sql": computation.sql,
            "description": computation.description,
            "tile_type": computation.tile_type,
            "tile_config": computation.tile_config,
            "parameters": [p.to_dict() for p in computation.parameters],
            "sensitivity": computation.sensitivity,
        }
        return dict(self._call("PUT", f"/api/computations/{quote(computation.name)}", json=body))

    def delete_computation(self, name: str) -> None:
        """Delete a saved computation (admins)."""
        self._call("DELETE", f"/api/computations/{quote(name)}")

    def run_computation(
        self,
        name: str,
        *,
        parameters: dict[str, Any] | None = None,
        limit: int = DEFAULT_LIMIT,
    ) -> QueryAnswer:
        """Run a saved computation with its parameters."""
        body = {"parameters": parameters or {}, "limit": limit}
        path = f"/api/computations/{quote(name)}/run"
        return QueryAnswer.from_dict(self._call("POST", path, json=body))

    def tables(self) -> list[dict[str, Any]]:
        """The tables queries may read, with their columns."""
        return list(self._call("GET", "/api/tables"))

    def audit(self, *, user: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        """Audited reads of confidential and restricted results, newest first (admins)."""
        params: dict[str, Any] = {"limit": limit}
        if user:
            params["user"] = user
        return list(self._call("GET", "/api/audit", params=params))

    # -- dashboards and tiles -----------------------------------------------------------

    def dashboards(self) -> list[Dashboard]:
        """Every dashboard with its tiles (layout only, no data)."""
        return [Dashboard.from_dict(d) for d in self._call("GET", "/api/dashboards")]

    def dashboard(self, name: str) -> Dashboard:
        """One dashboard (``NotFoundError`` if unknown)."""
        return Dashboard.from_dict(self._call("GET", f"/api/dashboards/{quote(name)}"))

    def save_dashboard(self, name: str, *, title: str = "", description: str = "") -> Dashboard:
        """Create or retitle a dashboard (role user)."""
        body = {"title": title or name, "description": description}
        return Dashboard.from_dict(self._call("PUT", f"/api/dashboards/{quote(name)}", json=body))

    def save_tile(self, tile: Tile) -> Tile:
        """Add ``tile`` to its dashboard (no ``id``) or change it; the engine checks that its
        computation runs with its parameters and that the viz's columns exist."""
        body = {k: v for k, v in tile.to_dict().items() if k not in ("id", "dashboard")}
        if tile.id is None:
            path = f"/api/dashboards/{quote(tile.dashboard)}/tiles"
            return Tile.from_dict(self._call("POST", path, json=body))
        return Tile.from_dict(self._call("PUT", f"/api/tiles/{tile.id}", json=body))

    def tile_data(self, tile_id: int) -> QueryAnswer:
        """A tile's result from the engine's shared cache; ``extras`` carry ``cached_at``,
        ``age_seconds`` and ``from_cache``.

        Raises:
            SensitivityDenied: the result is above the caller's clearance.
        """
        return QueryAnswer.from_dict(self._call("GET", f"/api/tiles/{tile_id}/data"))

    # -- alerts --------------------------------------------------------------------------------

    def alerts(self, *, status: str | None = None) -> dict[str, Any]:
        """The alerts this token may see (``firing`` or ``resolved`` only, with ``status``):
        ``{"alerts": [...], "hidden": n, "clearance": label}``."""
        params = {"status": status} if status else None
        return dict(self._call("GET", "/api/alerts", params=params))

    def acknowledge_alert(self, alert_id: int) -> dict[str, Any]:
        """Acknowledge an alert's current episode as this token's user (role user)."""
        return dict(self._call("POST", f"/api/alerts/{int(alert_id)}/ack"))

    def alert_rules(self) -> list[dict[str, Any]]:
        """Every alert rule (role user)."""
        return list(self._call("GET", "/api/alert-rules"))

    def add_alert_rule(
        self,
        name: str,
        field: str,
        op: str,
        threshold: float,
        *,
        ingestion_id: str | None = None,
    ) -> dict[str, Any]:
        """Add a threshold rule: ``op`` ``gt``/``ge`` against a window's max, ``lt``/``le``
        against its min (role user)."""
        body = {
            "name": name,
            "field": field,
            "op": op,
            "threshold": threshold,
            "ingestion_id": ingestion_id,
        }
        return dict(self._call("POST", "/api/alert-rules", json=body))

    def delete_alert_rule(self, rule_id: int) -> None:
        """Delete an alert rule and its alerts (role admin)."""
        self._call("DELETE", f"/api/alert-rules/{int(rule_id)}")

    def me(self) -> dict[str, Any]:
        """Who this client's token speaks for: ``{user, role, token_id}``."""
        return dict(self._call("GET", "/api/me"))

    def _call(self, method: str, path: str, *, json: Any = None, params: Any = None) -> Any:
        try:
            response = self._http.request(method, path, json=json, params=params)
        except httpx.TransportError as err:
            raise ServiceUnavailableError(
                f"the engine at {self.url} is not answering ({err}); "
                "start it with `workbench engine` or `workbench up`"
            ) from err
        if response.status_code in (200, 201):
            return response.json()
        raise answer_error(response)


def _computation(body: dict[str, Any]) -> Computation:
    return Computation(
        name=body["name"],
        sql=body["sql"],
        description=body.get("description", ""),
        tile_type=body.get("tile_type", "table"),
        tile_config=dict(body.get("tile_config") or {}),
        parameters=tuple(Parameter(**p) for p in body.get("parameters") or []),
        sensitivity=body.get("sensitivity"),
        declassified=bool(body.get("declassified")),
        owner=body.get("owner"),
    )
