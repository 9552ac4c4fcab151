"""HTTP routes for stream computations, served by the engine process.

``GET /api/stream-computations`` (every computation with its query's status),
``POST /api/stream-computations`` ``{name, sql, description, enabled}`` (201),
``GET|PUT|DELETE /api/stream-computations/{name}`` (PUT changes any of ``sql``,
``description``, ``enabled``). Each answer is the computation as stored (``id``, ``version``,
timestamps), its table ``gold.<name>``, ``query`` (the stream manager's status of
``computation:<name>``, null while disabled), ``rows_written`` (by its current version, across
engine restarts), ``last_batch_id`` and ``last_batch_at`` (since the engine started it). A
refused name or SQL is a 422 with Spark's reason in ``message``; an unknown name a 404;
creating an existing name a 409. DELETE answers ``{"deleted": name}``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from workbench.api.auth import Gate
from workbench.gold.computation_service import StreamComputations


class StreamComputationIn(BaseModel):
    """A new stream computation (the name is checked by the engine, for a clear message)."""

    name: str = Field(max_length=200)
    sql: str
    description: str = ""
    enabled: bool = True


class StreamComputationChange(BaseModel):
    """What to change in a stream computation; what is left out stays."""

    sql: str | None = None
    description: str | None = None
    enabled: bool | None = None


def build_stream_computation_router(computations: StreamComputations, gate: Gate) -> APIRouter:
    """The routes, bound to this engine's stream computations."""
    router = APIRouter(prefix="/api/stream-computations")
    # Users read and write computations; deleting one drops its table: admins only.
    user, admin = gate.role("user"), gate.role("admin")

    @router.get("", dependencies=[user])
    async def list_computations() -> list[dict[str, Any]]:
        return await run_in_threadpool(computations.list)

    @router.post("", status_code=201, dependencies=[user])
    async def create_computation(body: StreamComputationIn) -> dict[str, Any]:
        return await run_in_threadpool(
            computations.create,
            body.name,
            body.sql,
            description=body.description,
            enabled=body.enabled,
        )

    @router.get("/{name}", dependencies=[user])
    async def get_computation(name: str) -> dict[str, Any]:
        return await run_in_threadpool(computations.get, name)

    @router.put("/{name}", dependencies=[user])
    async def update_computation(name: str, body: StreamComputationChange) -> dict[str, Any]:
        return await run_in_threadpool(
            computations.update,
            name,
            sql=body.sql,
            description=body.description,
            enabled=body.enabled,
        )

    @router.delete("/{name}", dependencies=[admin])
    async def delete_computation(name: str) -> dict[str, str]:
        await run_in_threadpool(computations.delete, name)
        return {"deleted": name}

    return router
