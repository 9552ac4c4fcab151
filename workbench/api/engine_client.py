"""Python twin of the engine's HTTP API: streams and stream computations.

Stream statuses come back as :class:`~workbench.streams.status.StreamStatus` values, errors as
the class the engine raised (:func:`workbench.api.http_errors.answer_error`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from workbench.api.http_errors import answer_error
from workbench.core.errors import ServiceUnavailableError
from workbench.core.settings import Settings
from workbench.streams.status import StreamStatus

#: A stop waits for the running batch up to 30 s, then Spark may take up to 30 s more.
_TIMEOUT_SECONDS = 75.0


class EngineClient:
    """Talks to a running engine service (``settings.engine.host:port``)."""

    def __init__(self, settings: Settings, *, timeout: float = _TIMEOUT_SECONDS) -> None:
        self.url = f"http://{settings.engine.host}:{settings.engine.port}"
        self._http = httpx.Client(base_url=self.url, timeout=timeout)

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

    def _call(self, method: str, path: str, *, json: Any = None) -> Any:
        try:
            response = self._http.request(method, path, json=json)
        except httpx.TransportError as err:
            raise ServiceUnavailableError(
                f"the engine at {self.url} is not answering ({err}); "
                "start it with `workbench engine` or `workbench up`"
            ) from err
        if response.status_code in (200, 201):
            return response.json()
        raise answer_error(response)
