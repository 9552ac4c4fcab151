"""HTTP routes for the engine's streams, served by the engine process.

``GET /api/streams`` (every query's status), ``GET /api/streams/{name}``,
``POST /api/streams/{name}/start|stop|restart`` (each answers with the query's status after the
action; stop and restart wait for the running batch, up to the 30 s stop timeout). An unknown
name answers 404 with ``{code, message}``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool

from workbench.streams.supervisor import StreamManager


def build_stream_router(manager: StreamManager) -> APIRouter:
    """The routes, bound to this engine's stream manager."""
    router = APIRouter(prefix="/api/streams")

    @router.get("")
    async def streams() -> list[dict[str, Any]]:
        return await run_in_threadpool(manager.status)

    @router.get("/{name}")
    async def stream(name: str) -> dict[str, Any]:
        return await run_in_threadpool(manager.status_of, name)

    @router.post("/{name}/start")
    async def start(name: str) -> dict[str, Any]:
        return await run_in_threadpool(manager.start, name)

    @router.post("/{name}/stop")
    async def stop(name: str) -> dict[str, Any]:
        return await run_in_threadpool(manager.stop, name)

    @router.post("/{name}/restart")
    async def restart(name: str) -> dict[str, Any]:
        return await run_in_threadpool(manager.restart, name)

    return router
