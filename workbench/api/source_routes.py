"""HTTP routes for source lifecycle, served by the ingest process.

``GET /api/sources`` (with health), ``POST /api/sources`` ``{name, type, config}``,
``GET|PUT|DELETE /api/sources/{name}``, ``POST /api/sources/{name}/start|stop|restart``,
``GET /api/sources/{name}/health``, ``GET /api/connector-types`` (names and config schemas).
Errors come back as ``{code, message, fields}`` with every config problem listed in
``fields["problems"]``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from workbench.api.auth import Gate
from workbench.ingest.sources import SourceManager


class SourceIn(BaseModel):
    """A new source."""

    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.-]+$")
    type: str
    config: dict[str, Any] = Field(default_factory=dict)


class ConfigIn(BaseModel):
    """A source's new config."""

    config: dict[str, Any]


def build_source_router(sources: SourceManager, gate: Gate) -> APIRouter:
    """The routes, bound to this process's source manager.

    Every answer carrying a config masks its secrets (fields the type's schema marks secret,
    secret-looking headers and parameters, URL credentials); a config sent back with those
    masks unchanged keeps the stored secrets.
    """
    router = APIRouter(prefix="/api")
    # Users read sources and their health (configs masked); only admins change them.
    read, admin = gate.role("user"), gate.role("admin")

    def _public(record: dict[str, Any]) -> dict[str, Any]:
        config = record.get("config") or {}
        return {**record, "config": sources.registry.public_config(record["type"], config)}

    @router.get("/connector-types", dependencies=[read])
    async def connector_types() -> list[dict[str, Any]]:
        return [
            {
                "name": n,
                "description": sources.registry.get(n).description,
                "config_schema": sources.registry.get(n).config_schema,
            }
            for n in sources.registry.names()
        ]

    @router.get("/sources", dependencies=[read])
    async def list_sources() -> list[dict[str, Any]]:
        health = {h.name: h.to_dict() for h in await run_in_threadpool(sources.health)}
        return [
            {**_public(r), "health": health.get(n)}
            for n, r in (await run_in_threadpool(sources.records)).items()
        ]

    @router.post("/sources", status_code=201, dependencies=[admin])
    async def create_source(body: SourceIn) -> dict[str, Any]:
        return _public(await run_in_threadpool(sources.create, body.name, body.type, body.config))

    @router.get("/sources/{name}", dependencies=[read])
    async def get_source(name: str) -> dict[str, Any]:
        return _public(await run_in_threadpool(sources.record, name))

    @router.put("/sources/{name}", dependencies=[admin])
    async def update_source(name: str, body: ConfigIn) -> dict[str, Any]:
        return _public(await run_in_threadpool(sources.update, name, body.config))

    @router.delete("/sources/{name}", dependencies=[admin])
    async def delete_source(name: str) -> dict[str, str]:
        await run_in_threadpool(sources.delete, name)
        return {"deleted": name}

    @router.post("/sources/{name}/{action}", dependencies=[admin])
    async def act(name: str, action: str) -> dict[str, Any]:
        handlers = {"start": sources.start, "stop": sources.stop, "restart": sources.restart}
        if action not in handlers:
            from workbench.core.errors import ConfigError

            raise ConfigError(f"unknown action {action!r}; use start, stop or restart")
        await run_in_threadpool(handlers[action], name)
        [health] = await run_in_threadpool(sources.health, name)
        return health.to_dict()

    @router.get("/sources/{name}/health", dependencies=[read])
    async def source_health(name: str) -> dict[str, Any]:
        [health] = await run_in_threadpool(sources.health, name)
        return health.to_dict()

    return router
