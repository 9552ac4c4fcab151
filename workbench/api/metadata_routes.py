"""The metadata API, served by the ingest process; ``Catalog`` is its Python twin.

``GET /api/metadata/datasets``, ``/datasets/{id}``, ``/datasets/{id}/schema``,
``/datasets/{id}/evolution?limit=``, ``/topics``, ``/totals`` and ``/enrichment-schema`` answer
with exactly what the :class:`~workbench.catalog.store.Catalog` methods of the same names
return, as JSON (datetimes as ISO 8601). An unknown dataset is a 404 ``not_found``.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool

from workbench.api.auth import Gate
from workbench.catalog.store import Catalog


def build_metadata_router(catalog: Catalog, gate: Gate) -> APIRouter:
    """The routes, reading ``catalog`` (each call on a worker thread: the DB is blocking)."""
    router = APIRouter(prefix="/api/metadata", dependencies=[gate.role("user")])

    @router.get("/datasets")
    async def datasets() -> list[dict[str, Any]]:
        return [asdict(d) for d in await run_in_threadpool(catalog.list_datasets)]

    @router.get("/datasets/{ingestion_id}")
    async def dataset(ingestion_id: str) -> dict[str, Any]:
        return asdict(await run_in_threadpool(catalog.get_dataset, ingestion_id))

    @router.get("/datasets/{ingestion_id}/schema")
    async def schema(ingestion_id: str) -> list[dict[str, Any]]:
        return [asdict(f) for f in await run_in_threadpool(catalog.dataset_schema, ingestion_id)]

    @router.get("/datasets/{ingestion_id}/evolution")
    async def evolution(
        ingestion_id: str, limit: Annotated[int, Query(ge=1, le=100_000)] = 1000
    ) -> list[dict[str, Any]]:
        events = await run_in_threadpool(catalog.schema_evolution, ingestion_id, limit=limit)
        return [asdict(e) for e in events]

    @router.get("/topics")
    async def topics() -> list[dict[str, Any]]:
        return [asdict(s) for s in await run_in_threadpool(catalog.topics_summary)]

    @router.get("/totals")
    async def totals() -> dict[str, Any]:
        return asdict(await run_in_threadpool(catalog.totals))

    @router.get("/enrichment-schema")
    async def enrichment_schema() -> dict[str, Any]:
        return await run_in_threadpool(catalog.enrichment_schema)

    return router
