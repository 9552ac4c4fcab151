"""Dashboards and their tiles: which computation each tile draws, how and where.

A mixin of :class:`workbench.catalog.store.Catalog`; it needs only ``self.engine``. Tiles are
checked here for what the catalog can know (names, viz, grid bounds); whether the computation
runs and its columns fit the viz is checked by the engine before it saves one.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.engine import RowMapping

from workbench.catalog import tables as t
from workbench.catalog.dialect import upsert
from workbench.catalog.records import GRID_COLUMNS, VIZ_TYPES, Dashboard, Tile
from workbench.core.clock import utcnow
from workbench.core.errors import ConfigError, NotFoundError

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


class DashboardTables:
    """Dashboards and tiles over the catalog database."""

    engine: Engine

    def save_dashboard(
        self, name: str, title: str, *, description: str = "", owner: str | None = None
    ) -> Dashboard:
        """Create a dashboard or change its title and description (its tiles stay)."""
        if not _NAME.fullmatch(name):
            raise ConfigError(
                f"dashboard name {name!r}: use 1-64 letters, digits, '_' or '-'", dashboard=name
            )
        now = utcnow()
        values = {"title": title or name, "description": description, "updated_at": now}
        with self.engine.begin() as conn:
            stmt = upsert(conn, t.dashboards).values(
                name=name, owner=owner, created_at=now, **values
            )
            conn.execute(stmt.on_conflict_do_update(index_elements=["name"], set_=values))
        return self.get_dashboard(name)

    def list_dashboards(self) -> list[Dashboard]:
        """Every dashboard with its tiles, by name."""
        with self.engine.begin() as conn:
            boards = conn.execute(select(t.dashboards).order_by(t.dashboards.c.name)).mappings()
            rows = conn.execute(select(t.tiles)).mappings().all()
            return [_dashboard(b, [r for r in rows if r["dashboard"] == b["name"]]) for b in boards]

    def get_dashboard(self, name: str) -> Dashboard:
        """One dashboard with its tiles.

        Raises:
            NotFoundError: there is none of that name.
        """
        with self.engine.begin() as conn:
            board = (
                conn.execute(select(t.dashboards).where(t.dashboards.c.name == name))
                .mappings()
                .first()
            )
            if board is None:
                raise NotFoundError(f"no dashboard named {name!r}", dashboard=name)
            rows = conn.execute(select(t.tiles).where(t.tiles.c.dashboard == name)).mappings()
            return _dashboard(board, list(rows))

    def delete_dashboard(self, name: str) -> None:
        """Delete a dashboard and its tiles."""
        self.get_dashboard(name)
        with self.engine.begin() as conn:
            conn.execute(delete(t.tiles).where(t.tiles.c.dashboard == name))
            conn.execute(delete(t.dashboards).where(t.dashboards.c.name == name))

    def save_tile(self, tile: Tile) -> Tile:
        """Add a tile (``id`` None) or replace one; returns it as stored.

        Raises:
            NotFoundError: the dashboard or the tile does not exist.
            ConfigError: an unknown viz or a position off the grid.
        """
        _check_tile(tile)
        self.get_dashboard(tile.dashboard)
        now = utcnow()
        values: dict[str, Any] = {k: v for k, v in tile.to_dict().items() if k not in ("id",)} | {
            "updated_at": now
        }
        with self.engine.begin() as conn:
            if tile.id is None:
                new_id = conn.execute(
                    insert(t.tiles).values(created_at=now, **values).returning(t.tiles.c.id)
                ).scalar_one()
            else:
                done = conn.execute(update(t.tiles).where(t.tiles.c.id == tile.id).values(**values))
                if done.rowcount == 0:
                    raise NotFoundError(f"no tile {tile.id}", tile=tile.id)
                new_id = tile.id
        return self.get_tile(new_id)

    def get_tile(self, tile_id: int) -> Tile:
        """One tile.

        Raises:
            NotFoundError: there is none with that id.
        """
        with self.engine.begin() as conn:
            row = conn.execute(select(t.tiles).where(t.tiles.c.id == tile_id)).mappings().first()
        if row is None:
            raise NotFoundError(f"no tile {tile_id}", tile=tile_id)
        return _tile(row)

    def delete_tile(self, tile_id: int) -> None:
        """Delete one tile."""
        with self.engine.begin() as conn:
            done = conn.execute(delete(t.tiles).where(t.tiles.c.id == tile_id))
        if done.rowcount == 0:
            raise NotFoundError(f"no tile {tile_id}", tile=tile_id)


def _check_tile(tile: Tile) -> None:
    if tile.viz not in VIZ_TYPES:
        raise ConfigError(f"viz {tile.viz!r} is not one of {', '.join(VIZ_TYPES)}", viz=tile.viz)
    if not (0 <= tile.x < GRID_COLUMNS and 1 <= tile.w <= GRID_COLUMNS - tile.x):
        raise ConfigError(
            f"tile at column {tile.x} with width {tile.w} leaves the {GRID_COLUMNS}-column grid",
            x=tile.x,
            w=tile.w,
        )
    if tile.y < 0 or not 1 <= tile.h <= 24:
        raise ConfigError(f"tile row {tile.y} / height {tile.h} out of range", y=tile.y, h=tile.h)


def _tile(row: RowMapping) -> Tile:
    return Tile(
        id=row["id"],
        dashboard=row["dashboard"],
        title=row["title"],
        computation=row["computation"],
        viz=row["viz"],
        config=dict(row["config"] or {}),
        parameters=dict(row["parameters"] or {}),
        x=row["x"],
        y=row["y"],
        w=row["w"],
        h=row["h"],
    )


def _dashboard(board: RowMapping, rows: list[RowMapping]) -> Dashboard:
    return Dashboard(
        name=board["name"],
        title=board["title"],
        description=board["description"],
        owner=board["owner"],
        tiles=tuple(_tile(r) for r in rows),
    )
