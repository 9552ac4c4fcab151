"""Python twin of the engine's stream API (F21): list, start, stop and restart queries."""

from __future__ import annotations

from typing import Any

import httpx

from workbench.api.http_errors import answer_error
from workbench.core.errors import (
    ServiceUnavailableError,
)
from workbench.core.settings import Settings

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

    def streams(self) -> list[dict[str, Any]]:
        """Every query's status: state, rows/s, last batch, restarts, error, lag."""
        return self._call("GET", "/api/streams")

    def stream(self, name: str) -> dict[str, Any]:
        """One query's status."""
        return self._call("GET", f"/api/streams/{name}")

    def start(self, name: str) -> dict[str, Any]:
        """Start a query; returns its status."""
        return self._call("POST", f"/api/streams/{name}/start")

    def stop(self, name: str) -> dict[str, Any]:
        """Stop a query after its running batch; it stays stopped until started."""
        return self._call("POST", f"/api/streams/{name}/stop")

    def restart(self, name: str) -> dict[str, Any]:
        """Restart a query from its checkpoint; returns its status."""
        return self._call("POST", f"/api/streams/{name}/restart")

    def _call(self, method: str, path: str) -> Any:
        try:
            response = self._http.request(method, path)
        except httpx.TransportError as err:
            raise ServiceUnavailableError(
                f"the engine at {self.url} is not answering ({err}); "
                "start it with `workbench engine` or `workbench up`"
            ) from err
        if response.status_code == 200:
            return response.json()
        raise answer_error(response)
