"""Datasets, their schemas and schema evolution: the Python twin of the
metadata API (``workbench.api.metadata_routes`` serves exactly these methods).

A mixin of :class:`workbench.catalog.store.Catalog`; it needs only ``self.engine``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.engine import Connection, RowMapping

from workbench.catalog import tables as t
from workbench.catalog.dialect import stored_utc
from workbench.catalog.records import (
    CatalogTotals,
    DatasetInfo,
    FieldInfo,
    SchemaEvent,
    TopicSummary,
)
from workbench.catalog.schemas import DatasetObservation, merge_observation, widen
from workbench.catalog.schemas import sweep_stale_fields as _sweep
from workbench.catalog.sketch import DistinctSketch
from workbench.core.errors import NotFoundError

#: Lattice types the flexible enrichment schema keeps typed; everything else is read as a
#: string so one stream reads every source whatever its spelling (``"21.5"`` and ``21.5``).
_TYPED = {"boolean": "BOOLEAN"}


class MetadataTables:
    """What the metadata extractor learned about each dataset, and its change log."""

    engine: Engine

    def record_observations(self, observations: Iterable[DatasetObservation]) -> None:
        """Merge what the metadata extractor saw into datasets and fields (widening types and
        logging ``added`` / ``widened`` events)."""
        with self.engine.begin() as conn:
            for obs in observations:
                merge_observation(conn, obs)

    def sweep_stale_fields(self, now: datetime, stale_after: timedelta) -> int:
        """Log a ``not_seen`` event for each field missing for ``stale_after`` while its
        dataset kept arriving (once; re-armed when it is seen again). Returns how many."""
        with self.engine.begin() as conn:
            return _sweep(conn, now, stale_after)

    def list_datasets(self) -> list[DatasetInfo]:
        """Every dataset seen, with its inferred fields."""
        with self.engine.begin() as conn:
            datasets = (
                conn.execute(select(t.datasets).order_by(t.datasets.c.ingestion_id))
                .mappings()
                .all()
            )
            fields = conn.execute(select(t.fields).order_by(t.fields.c.path)).mappings().all()
        by_id: dict[str, list[FieldInfo]] = {}
        for row in fields:
            by_id.setdefault(row["ingestion_id"], []).append(_field(row))
        return [_dataset(row, by_id.get(row["ingestion_id"], [])) for row in datasets]

    def get_dataset(self, ingestion_id: str) -> DatasetInfo:
        """One dataset with its fields.

        Raises:
            NotFoundError: if nothing has been ingested under ``ingestion_id``.
        """
        with self.engine.begin() as conn:
            row = _dataset_row(conn, ingestion_id)
            fields = _fields(conn, ingestion_id)
        return _dataset(row, fields)

    def dataset_schema(self, ingestion_id: str) -> list[FieldInfo]:
        """A dataset's inferred fields, by path.

        Raises:
            NotFoundError: if nothing has been ingested under ``ingestion_id``.
        """
        with self.engine.begin() as conn:
            _dataset_row(conn, ingestion_id)
            return _fields(conn, ingestion_id)

    def schema_evolution(
        self, ingestion_id: str | None = None, *, limit: int = 1000
    ) -> list[SchemaEvent]:
        """The schema evolution log, oldest first: one dataset's, or every dataset's (None).

        Args:
            ingestion_id: the dataset, or None for all.
            limit: at most this many events, the most recent ones.

        Raises:
            NotFoundError: for an ``ingestion_id`` never ingested.
        """
        ev = t.schema_events.c
        query = select(t.schema_events).order_by(ev.id.desc()).limit(limit)
        with self.engine.begin() as conn:
            if ingestion_id is not None:
                _dataset_row(conn, ingestion_id)
                query = query.where(ev.ingestion_id == ingestion_id)
            rows = conn.execute(query).mappings().all()
        return [_event(row) for row in reversed(rows)]

    def topics_summary(self) -> list[TopicSummary]:
        """One line per dataset: its source (name, type, topic when it has one), records,
        bytes, field count, schema version, distinct sensors, first and last seen."""
        ds, src, fc = t.datasets.c, t.sources.c, t.fields.c
        field_count = (
            select(func.count())
            .where(fc.ingestion_id == ds.ingestion_id)
            .scalar_subquery()
            .label("field_count")
        )
        query = (
            select(t.datasets, field_count, src.name, src.config)
            .select_from(t.datasets.outerjoin(t.sources, src.ingestion_id == ds.ingestion_id))
            .order_by(ds.ingestion_id)
        )
        with self.engine.begin() as conn:
            rows = conn.execute(query).mappings().all()
        return [
            TopicSummary(
                ingestion_id=row["ingestion_id"],
                source=row["name"],
                source_type=row["source_type"],
                topic=(row["config"] or {}).get("topic"),
                records=row["record_count"],
                bytes=row["bytes"],
                fields=row["field_count"],
                schema_version=row["schema_version"],
                distinct_sensors=row["distinct_sensors"],
                first_seen=stored_utc(row["first_seen"]),
                last_seen=stored_utc(row["last_seen"]),
            )
            for row in rows
        ]

    def totals(self) -> CatalogTotals:
        """Catalog-wide totals: datasets, records, bytes, distinct field paths, sources,
        schema events, first and last seen, and ``distinct_sensors``: sensor ids distinct across
        all datasets (the union of their sketches, so an id in two datasets counts once)."""
        ds = t.datasets.c
        with self.engine.begin() as conn:
            datasets, records, size, first, last = conn.execute(
                select(
                    func.count(),
                    func.coalesce(func.sum(ds.record_count), 0),
                    func.coalesce(func.sum(ds.bytes), 0),
                    func.min(ds.first_seen),
                    func.max(ds.last_seen),
                )
            ).one()
            paths = conn.execute(select(func.count(t.fields.c.path.distinct()))).scalar_one()
            sources = conn.execute(select(func.count()).select_from(t.sources)).scalar_one()
            events = conn.execute(select(func.count()).select_from(t.schema_events)).scalar_one()
            sensors = DistinctSketch()
            sketches = select(ds.sensor_sketch).where(ds.sensor_sketch.is_not(None))
            for blob in conn.execute(sketches).scalars():
                sensors.merge(DistinctSketch.from_bytes(blob))
        return CatalogTotals(
            datasets=datasets,
            records=int(records),
            bytes=int(size),
            field_paths=paths,
            sources=sources,
            schema_events=events,
            distinct_sensors=sensors.estimate(),
            first_seen=stored_utc(first),
            last_seen=stored_utc(last),
        )

    def enrichment_schema(self) -> dict[str, Any]:
        """The merged flexible schema one stream reads every source with.

        The union of all datasets' field paths, each widened across datasets, with numbers,
        timestamps and anything conflicting read as strings (only booleans stay typed).

        Returns:
            ``{"fields": [{"path", "type", "spark_type", "datasets"}], "ddl": str}``; ``ddl``
            is a Spark DDL string with nested objects as ``STRUCT`` s. A path that is a value
            in one dataset and an object in another is a ``STRING`` (Spark then hands the
            object over as its JSON text), so no dataset's data is lost.
        """
        with self.engine.begin() as conn:
            rows = conn.execute(select(t.fields.c.ingestion_id, t.fields.c.path, t.fields.c.type))
            merged: dict[str, tuple[str, set[str]]] = {}
            for iid, path, kind in rows:
                old, ids = merged.get(path, ("null", set()))
                merged[path] = (widen(old, kind), ids | {iid})
        spark_types = {path: _TYPED.get(kind, "STRING") for path, (kind, _) in merged.items()}
        fields = [
            {"path": path, "type": kind, "spark_type": spark_types[path], "datasets": len(ids)}
            for path, (kind, ids) in sorted(merged.items())
        ]
        return {"fields": fields, "ddl": spark_ddl(spark_types)}


def spark_ddl(types: dict[str, str]) -> str:
    """A Spark DDL string for dot paths → Spark types, nesting paths into ``STRUCT`` s.

    >>> spark_ddl({"a": "STRING", "loc.x": "STRING"})
    '`a` STRING, `loc` STRUCT<`x`: STRING>'
    """
    tree: dict[str, Any] = {}
    for path, kind in sorted(types.items(), key=lambda item: (item[0].count("."), item[0])):
        node, parts = tree, path.split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                break  # a value elsewhere: the parent stays a STRING holding the JSON text
            node = child
        else:
            leaf = parts[-1]
            # A parent seen as a value in one dataset and an object in another: STRING wins.
            node[leaf] = "STRING" if isinstance(node.get(leaf), dict) else kind

    def render(node: dict[str, Any], sep: str) -> str:
        parts = []
        for name, value in node.items():
            quoted = "`" + name.replace("`", "``") + "`"
            kind = value if isinstance(value, str) else f"STRUCT<{render(value, ': ')}>"
            parts.append(f"{quoted}{sep}{kind}")
        return ", ".join(parts)

    return render(tree, " ")


def _dataset_row(conn: Connection, ingestion_id: str) -> RowMapping:
    row = (
        conn.execute(select(t.datasets).where(t.datasets.c.ingestion_id == ingestion_id))
        .mappings()
        .first()
    )
    if row is None:
        raise NotFoundError(
            f"no dataset {ingestion_id!r} has been ingested", ingestion_id=ingestion_id
        )
    return row


def _fields(conn: Connection, ingestion_id: str) -> list[FieldInfo]:
    fc = t.fields.c
    rows = conn.execute(select(t.fields).where(fc.ingestion_id == ingestion_id).order_by(fc.path))
    return [_field(row) for row in rows.mappings()]


def _dataset(row: RowMapping, fields: list[FieldInfo]) -> DatasetInfo:
    return DatasetInfo(
        ingestion_id=row["ingestion_id"],
        source_type=row["source_type"],
        record_count=row["record_count"],
        bytes=row["bytes"],
        first_seen=stored_utc(row["first_seen"]),
        last_seen=stored_utc(row["last_seen"]),
        schema_version=row["schema_version"],
        fields=fields,
        distinct_sensors=row["distinct_sensors"],
    )


def _field(row: RowMapping) -> FieldInfo:
    return FieldInfo(
        path=row["path"],
        type=row["type"],
        nullable=row["nullable"],
        samples=list(row["samples"] or []),
        min=row["min_value"],
        max=row["max_value"],
        first_seen=stored_utc(row["first_seen"]),
        last_seen=stored_utc(row["last_seen"]),
        count=row["records"],
        stale=row["stale"],
    )


def _event(row: RowMapping) -> SchemaEvent:
    return SchemaEvent(
        ingestion_id=row["ingestion_id"],
        path=row["path"],
        kind=row["kind"],
        old_type=row["old_type"],
        new_type=row["new_type"],
        sample=row["sample"],
        schema_version=row["schema_version"],
        at=stored_utc(row["at"]),  # never NULL in this table
    )
