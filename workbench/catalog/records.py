"""Plain records the catalog hands out; every layer above reads these, never DB rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class NormalizationRule:
    """``raw_key`` → ``canonical_key``, global (``ingestion_id`` None) or for one dataset.

    Matching is case-insensitive. Several raw keys mapping to one canonical key coalesce in
    order: per-source rules first, then global ones, each by ``priority`` then ``id``.
    """

    id: int
    raw_key: str
    canonical_key: str
    ingestion_id: str | None = None
    priority: int = 100
    enabled: bool = True


@dataclass(frozen=True)
class Computation:
    """A saved Spark SQL query over the catalog tables, with how to show it."""

    name: str
    sql: str
    description: str = ""
    tile_type: str = "table"
    """Recommended viz: ``table``, ``stat``, ``timeseries``, ``bar`` or ``gauge``."""
    tile_config: dict[str, Any] = field(default_factory=dict)
    """Viz options, for a timeseries: ``{"x": col, "y": col, "color": col}``."""


@dataclass(frozen=True)
class FieldInfo:
    """One inferred field of a dataset (nested objects as dot paths)."""

    path: str
    type: str
    nullable: bool
    samples: list[Any]
    min: float | None
    max: float | None
    first_seen: datetime | None
    last_seen: datetime | None


@dataclass(frozen=True)
class DatasetInfo:
    """What the catalog knows about one ``ingestion_id``."""

    ingestion_id: str
    source_type: str
    record_count: int
    bytes: int
    first_seen: datetime | None
    last_seen: datetime | None
    schema_version: int
    fields: list[FieldInfo] = field(default_factory=list)
