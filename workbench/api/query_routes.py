"""HTTP routes of the query service and saved computations, served by the engine.

Role user: ``POST /api/query`` ``{sql, parameters?, limit?, timeout_seconds?}`` runs one
read-only query; ``POST /api/query/check`` ``{sql, parameters?}`` checks it without running
(columns and derived label, or the refusal with line and column); ``GET /api/tables`` (what
queries may read, with columns); ``GET /api/computations``,
``GET|PUT /api/computations/{name}``, ``POST /api/computations/{name}/run``
``{parameters?, limit?}``. Admins only: ``DELETE /api/computations/{name}``, ``GET /api/audit``.

A result answers ``{columns, rows, row_count, truncated, limit, sensitivity: {label, devices,
tables}, seconds}``. A refused query is a 422 ``query_refused`` (or ``computation_error`` for
Spark's own refusal, with ``line`` and ``column``); a result above the caller's clearance a 403
``sensitivity_denied`` naming the device, its label and the clearance needed; a timeout a 504.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from workbench.analytics.computation_runner import Computations, describe
from workbench.analytics.query_service import DEFAULT_LIMIT, QueryService
from workbench.api.auth import Gate
from workbench.catalog.records import Computation, Parameter
from workbench.catalog.users import Identity

MAX_SQL_CHARS = 100_000


class QueryIn(BaseModel):
    """One query to run."""

    sql: str = Field(max_length=MAX_SQL_CHARS)
    parameters: dict[str, Any] = Field(default_factory=dict)
    limit: int = Field(default=DEFAULT_LIMIT, ge=1)
    timeout_seconds: float | None = Field(default=None, gt=0)


class CheckIn(BaseModel):
    """A query to check without running it."""

    sql: str = Field(max_length=MAX_SQL_CHARS)
    parameters: dict[str, Any] = Field(default_factory=dict)


class ParameterIn(BaseModel):
    """A computation parameter."""

    name: str = Field(min_length=1, max_length=64)
    type: str = "string"
    default: Any = None
    description: str = Field(default="", max_length=1000)


class ComputationIn(BaseModel):
    """A computation to save."""

    sql: str = Field(max_length=MAX_SQL_CHARS)
    description: str = Field(default="", max_length=2000)
    tile_type: str = "table"
    tile_config: dict[str, Any] = Field(default_factory=dict)
    parameters: list[ParameterIn] = Field(default_factory=list)
    sensitivity: str | None = None


class RunIn(BaseModel):
    """How to run a saved computation."""

    parameters: dict[str, Any] = Field(default_factory=dict)
    limit: int = Field(default=DEFAULT_LIMIT, ge=1)
    timeout_seconds: float | None = Field(default=None, gt=0)


def build_query_router(
    service: QueryService,
    computations: Computations,
    gate: Gate,
    *,
    timeout_seconds: float,
) -> APIRouter:
    """The routes over this engine's query service (``timeout_seconds``: the default and the
    most a query may ask for)."""
    router = APIRouter(prefix="/api")
    # Depends as defaults, not Annotated aliases: with postponed annotations FastAPI resolves
    # names in the module's globals, where a local alias does not exist.
    a_user = gate.role("user")
    admin = gate.role("admin")

    def bounded(asked: float | None) -> float:
        return min(asked or timeout_seconds, timeout_seconds)

    # Sync routes: FastAPI runs them in its thread pool, Spark calls block only that thread.
    @router.post("/query")
    def query(body: QueryIn, identity: Identity = a_user) -> dict[str, Any]:
        result = service.run(
            body.sql,
            identity,
            parameters=body.parameters,
            limit=body.limit,
            timeout_seconds=bounded(body.timeout_seconds),
        )
        return result.to_dict()

    @router.post("/query/check")
    def check(body: CheckIn, _identity: Identity = a_user) -> dict[str, Any]:
        prepared = service.prepare(body.sql, body.parameters)
        return {
            "columns": [{"name": n, "type": t} for n, t in prepared.columns],
            "sensitivity": prepared.derivation.to_dict(),
        }

    @router.get("/tables")
    def tables(_identity: Identity = a_user) -> list[dict[str, Any]]:
        return service.tables()

    @router.get("/computations")
    def list_computations(_identity: Identity = a_user) -> list[dict[str, Any]]:
        return [describe(c) for c in computations.catalog.list_computations()]

    @router.get("/computations/{name}")
    def get_computation(name: str, _identity: Identity = a_user) -> dict[str, Any]:
        return describe(computations.catalog.get_computation(name))

    @router.put("/computations/{name}")
    def save_computation(
        name: str, body: ComputationIn, identity: Identity = a_user
    ) -> dict[str, Any]:
        computation = Computation(
            name=name,
            sql=body.sql,
            description=body.description,
            tile_type=body.tile_type,
            tile_config=body.tile_config,
            parameters=tuple(Parameter(**p.model_dump()) for p in body.parameters),
            sensitivity=body.sensitivity,
        )
        return computations.save(computation, identity)

    @router.delete("/computations/{name}", dependencies=[admin])
    def delete_computation(name: str) -> dict[str, str]:
        computations.catalog.delete_computation(name)
        return {"deleted": name}

    @router.post("/computations/{name}/run")
    def run_computation(name: str, body: RunIn, identity: Identity = a_user) -> dict[str, Any]:
        result = computations.run(
            name,
            identity,
            parameters=body.parameters,
            limit=body.limit,
            timeout_seconds=bounded(body.timeout_seconds),
        )
        return result.to_dict()

    @router.get("/audit", dependencies=[admin])
    def audit(
        user: str | None = None,
        since: datetime | None = None,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    ) -> list[dict[str, Any]]:
        entries = computations.catalog.audit_entries(user=user, since=since, limit=limit)
        return [asdict(e) for e in entries]

    return router
