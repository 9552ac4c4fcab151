"""HTTP routes for the engine's streams, served by the engine process.

``GET /api/streams`` (every query's status), ``GET /api/streams/{name}``,
``POST /api/streams/{name}/start|stop|restart`` (each answers with the query's status after the
action; stop and restart wait for the running batch, up to the 30 s stop timeout). Each status
is :meth:`workbench.streams.status.StreamStatus.to_dict`. An unknown name answers 404 with
``{code, message, fields}``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool

from workbench.api.auth import Gate
from workbench.streams.supervisor import StreamManager


def build_stream_router(manager: StreamManager, gate: Gate) -> APIRouter:
    """The routes, bound to this engine's stream manager."""
    router = APIRouter(prefix="/api/streams")
    # Users watch the streams; only admins control them.
    read, admin = gate.role("user"), gate.role("admin")

    @router.get("", dependencies=[read])
    async def streams() -> list[dict[str, Any]]:
        return [s.to_dict() for s in await run_in_threadpool(manager.status)]

    @router.get("/{name}", dependencies=[read])
    async def stream(name: str) -> dict[str, Any]:
        return (await run_in_threadpool(manager.status_of, name)).to_dict()

    @router.post("/{name}/start", dependencies=[admin])
    async def start(name: str) -> dict[str, Any]:
        return (await run_in_threadpool(manager.start, name)).to_dict()

    @router.post("/{name}/stop", dependencies=[admin])
    async def stop(name: str) -> dict[str, Any]:
        return (await run_in_threadpool(manager.stop, name)).to_dict()

    @router.post("/{name}/restart", dependencies=[admin])
    async def restart(name: str) -> dict[str, Any]:
        return (await run_in_threadpool(manager.restart, name)).to_dict()

    return router
