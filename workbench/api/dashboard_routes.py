"""HTTP routes of dashboards and tiles, served by the engine.

Role viewer: ``GET /api/dashboards``, ``GET /api/dashboards/{name}`` (layout and tiles, no
data), ``GET /api/tiles/{id}/data`` (the tile's result from the shared cache, with
``cached_at``, ``age_seconds``, ``from_cache``; 403 ``sensitivity_denied`` naming the
clearance needed when the result is above the caller's). Role user: ``PUT
/api/dashboards/{name}`` ``{title, description}``, ``POST /api/dashboards/{name}/tiles`` and
``PUT /api/tiles/{id}`` ``{title, computation, viz, config, parameters, x, y, w, h}`` (checked:
the computation runs with those parameters and the viz's columns exist). Admins only: the
deletes.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from workbench.analytics.computation_runner import Computations, check_tile
from workbench.analytics.tile_cache import TileCache
from workbench.api.auth import Gate
from workbench.catalog.records import GRID_COLUMNS, Tile
from workbench.catalog.users import Identity


class DashboardIn(BaseModel):
    """A dashboard's title and description."""

    title: str = Field(default="", max_length=200)
    description: str = Field(default="", max_length=2000)


class TileIn(BaseModel):
    """A tile: what it draws, how, where."""

    title: str = Field(min_length=1, max_length=200)
    computation: str = Field(min_length=1, max_length=200)
    viz: str = "table"
    config: dict[str, Any] = Field(default_factory=dict)
    parameters: dict[str, Any] = Field(default_factory=dict)
    x: int = Field(default=0, ge=0, lt=GRID_COLUMNS)
    y: int = Field(default=0, ge=0)
    w: int = Field(default=6, ge=1, le=GRID_COLUMNS)
    h: int = Field(default=4, ge=1, le=24)


def build_dashboard_router(computations: Computations, cache: TileCache, gate: Gate) -> APIRouter:
    """The routes over this engine's catalog and tile cache."""
    router = APIRouter(prefix="/api")
    catalog = computations.catalog
    viewer, user, admin = gate.role("viewer"), gate.role("user"), gate.role("admin")

    @router.get("/dashboards", dependencies=[viewer])
    def dashboards() -> list[dict[str, Any]]:
        return [d.to_dict() for d in catalog.list_dashboards()]

    @router.get("/dashboards/{name}", dependencies=[viewer])
    def dashboard(name: str) -> dict[str, Any]:
        return catalog.get_dashboard(name).to_dict()

    @router.put("/dashboards/{name}")
    def save_dashboard(name: str, body: DashboardIn, identity: Identity = user) -> dict[str, Any]:
        saved = catalog.save_dashboard(
            name, body.title, description=body.description, owner=identity.user
        )
        return saved.to_dict()

    @router.delete("/dashboards/{name}", dependencies=[admin])
    def delete_dashboard(name: str) -> dict[str, str]:
        catalog.delete_dashboard(name)
        return {"deleted": name}

    @router.post("/dashboards/{name}/tiles", status_code=201, dependencies=[user])
    def add_tile(name: str, body: TileIn) -> dict[str, Any]:
        tile = Tile(dashboard=name, **body.model_dump())
        catalog.get_dashboard(name)
        check_tile(computations, tile)
        return catalog.save_tile(tile).to_dict()

    @router.put("/tiles/{tile_id}", dependencies=[user])
    def change_tile(tile_id: int, body: TileIn) -> dict[str, Any]:
        current = catalog.get_tile(tile_id)
        tile = Tile(dashboard=current.dashboard, id=tile_id, **body.model_dump())
        check_tile(computations, tile)
        return catalog.save_tile(tile).to_dict()

    @router.delete("/tiles/{tile_id}", dependencies=[admin])
    def delete_tile(tile_id: int) -> dict[str, int]:
        catalog.delete_tile(tile_id)
        return {"deleted": tile_id}

    @router.get("/tiles/{tile_id}/data")
    def tile_data(tile_id: int, identity: Identity = viewer) -> dict[str, Any]:
        return cache.answer(catalog.get_tile(tile_id), identity)

    return router
