"""Python twin of the ingest HTTP API: sources and their lifecycle, and the metadata API, from a
notebook or the CLI."""

from __future__ import annotations

from datetime import datetime
from typing import Any, overload
from urllib.parse import quote

import httpx

from workbench.catalog.records import (
    CatalogTotals,
    DatasetInfo,
    FieldInfo,
    LossRow,
    SchemaEvent,
    TopicSummary,
)
from workbench.client.answers import answer_error
from workbench.client.credentials import auth_headers
from workbench.connectors.base import SourceHealth
from workbench.core.errors import (
    ServiceUnavailableError,
)
from workbench.core.settings import Settings


class IngestClient:
    """Talks to a running ingest service (``settings.ingest.host:port``)."""

    def __init__(self, settings: Settings, *, timeout: float = 30.0) -> None:
        self.url = f"http://{settings.ingest.host}:{settings.ingest.port}"
        self._http = httpx.Client(
            base_url=self.url, timeout=timeout, headers=auth_headers(settings)
        )

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._http.close()

    def connector_types(self) -> list[dict[str, Any]]:
        """Connector type names, descriptions and config JSON schemas."""
        return self._call("GET", "/api/connector-types")

    def sources(self) -> list[dict[str, Any]]:
        """Every source with its config (secrets masked) and health."""
        return self._call("GET", "/api/sources")

    def create(self, name: str, source_type: str, config: dict[str, Any]) -> dict[str, Any]:
        """Validate, store and start a source."""
        return self._call(
            "POST", "/api/sources", json={"name": name, "type": source_type, "config": config}
        )

    def update(self, name: str, config: dict[str, Any]) -> dict[str, Any]:
        """Replace a source's config (a running source restarts)."""
        return self._call("PUT", f"/api/sources/{name}", json={"config": config})

    def delete(self, name: str) -> None:
        """Stop and remove a source."""
        self._call("DELETE", f"/api/sources/{name}")

    def start(self, name: str) -> SourceHealth:
        """Start a source; returns its health."""
        return SourceHealth.from_dict(self._call("POST", f"/api/sources/{name}/start"))

    def stop(self, name: str) -> SourceHealth:
        """Stop a source; returns its health."""
        return SourceHealth.from_dict(self._call("POST", f"/api/sources/{name}/stop"))

    def restart(self, name: str) -> SourceHealth:
        """Restart a source; returns its health."""
        return SourceHealth.from_dict(self._call("POST", f"/api/sources/{name}/restart"))

    @overload
    def health(self, name: str) -> SourceHealth: ...

    @overload
    def health(self, name: None = None) -> dict[str, Any]: ...

    def health(self, name: str | None = None) -> SourceHealth | dict[str, Any]:
        """Health of one source, or the whole service's report (the JSON of ``/api/health``:
        ``status``, ``sources``, ``buffer``, ``last_error`` and ``spill``)."""
        if name:
            return SourceHealth.from_dict(self._call("GET", f"/api/sources/{name}/health"))
        return dict(self._call("GET", "/api/health", ok=(200, 503)))

    def loss(self) -> list[LossRow]:
        """Loss accounting per dataset: received, written, flagged, duplicates, gaps."""
        return [LossRow.from_dict(row) for row in self._call("GET", "/api/loss")]

    # -- metadata: the same names and records as the Catalog's methods -----------

    def list_datasets(self) -> list[DatasetInfo]:
        """Every dataset seen, with its inferred fields."""
        return [_dataset(d) for d in self._call("GET", "/api/metadata/datasets")]

    def get_dataset(self, ingestion_id: str) -> DatasetInfo:
        """One dataset with its fields (``NotFoundError`` if never ingested)."""
        return _dataset(self._call("GET", f"/api/metadata/datasets/{quote(ingestion_id)}"))

    def dataset_schema(self, ingestion_id: str) -> list[FieldInfo]:
        """A dataset's inferred fields, by path."""
        path = f"/api/metadata/datasets/{quote(ingestion_id)}/schema"
        return [_field(f) for f in self._call("GET", path)]

    def schema_evolution(self, ingestion_id: str, *, limit: int = 1000) -> list[SchemaEvent]:
        """A dataset's schema evolution log, oldest first (the latest ``limit`` events)."""
        path = f"/api/metadata/datasets/{quote(ingestion_id)}/evolution"
        events = self._call("GET", path, params={"limit": limit})
        return [SchemaEvent(**{**e, "at": _time(e["at"])}) for e in events]

    def topics_summary(self) -> list[TopicSummary]:
        """One line per dataset: source, topic, records, bytes, fields, schema version."""
        return [TopicSummary(**_times(t)) for t in self._call("GET", "/api/metadata/topics")]

    def totals(self) -> CatalogTotals:
        """Catalog-wide totals (datasets, records, bytes, field paths, sources, events)."""
        return CatalogTotals(**_times(self._call("GET", "/api/metadata/totals")))

    def enrichment_schema(self) -> dict[str, Any]:
        """The merged flexible schema: ``{"fields": [...], "ddl": "..."}``."""
        return dict(self._call("GET", "/api/metadata/enrichment-schema"))

    def _call(
        self, method: str, path: str, *, ok: tuple[int, ...] = (200, 201), **kwargs: Any
    ) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as err:
            raise ServiceUnavailableError(
                f"the ingest service at {self.url} is not answering ({err}); "
                "start it with `workbench ingest` or `workbench up`"
            ) from err
        if response.status_code in ok:
            return response.json()
        raise answer_error(response)


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _times(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "first_seen": _time(row["first_seen"]), "last_seen": _time(row["last_seen"])}


def _field(row: dict[str, Any]) -> FieldInfo:
    return FieldInfo(**_times(row))


def _dataset(row: dict[str, Any]) -> DatasetInfo:
    return DatasetInfo(**{**_times(row), "fields": [_field(f) for f in row["fields"]]})
