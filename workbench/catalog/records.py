"""Plain records the catalog hands out; every layer above reads these, never DB rows."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal


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


class Unchanged(enum.Enum):
    """The type of :data:`UNCHANGED` (an enum, so type checkers know it has one value)."""

    UNCHANGED = "UNCHANGED"

    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED: Final = Unchanged.UNCHANGED
"""Default of every option of the catalog's ``update_*`` methods: keep what is stored. A
sentinel, not None, because None is a value some options take (a global rule's scope)."""


@dataclass(frozen=True)
class RuleUsage:
    """A normalization rule with its usage counters."""

    rule: NormalizationRule
    rows_affected: int = 0
    """Rows the rule renamed a key in, over every batch so far."""
    last_applied: datetime | None = None
    """When a batch last had a row the rule applied to (None: never)."""

    @property
    def id(self) -> int:
        """The rule's id."""
        return self.rule.id


#: The types a computation parameter may have (bound as Spark SQL parameters).
PARAMETER_TYPES = ("string", "int", "double", "boolean", "date", "timestamp")


@dataclass(frozen=True)
class Parameter:
    """A typed parameter of a computation, written ``:name`` in its SQL."""

    name: str
    type: str = "string"
    """One of :data:`PARAMETER_TYPES`."""
    default: Any = None
    """Used when a run gives no value; ``None``: the run must give one."""
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        """As stored and answered."""
        return {
            "name": self.name,
            "type": self.type,
            "default": self.default,
            "description": self.description,
        }


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
    parameters: tuple[Parameter, ...] = ()
    sensitivity: str | None = None
    """The computation's own label (``None``: derived at every run). It raises the derived
    label; it replaces it only when ``declassified``."""
    declassified: bool = False
    """An admin saved ``sensitivity`` below the derived label (say, an aggregate over every
    device made public): runs use it as it is."""
    owner: str | None = None


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
    count: int = 0
    """Records that carried the path. Exact while the extractor infers every record (the
    first 500 per dataset per metadata batch); beyond that it samples, and the sampled count
    is scaled by the sampling ratio, so on busy datasets it is an estimate."""
    stale: bool = False
    """A ``not_seen`` event was logged and the field has not been seen since."""


@dataclass(frozen=True)
class SchemaEvent:
    """One entry of a dataset's schema evolution log."""

    ingestion_id: str
    path: str
    kind: str
    """``added``, ``widened`` or ``not_seen``."""
    old_type: str | None
    new_type: str | None
    sample: Any
    """A value showing the change (the widening value; the last sample for ``not_seen``)."""
    schema_version: int
    """The dataset's schema version after the change."""
    at: datetime


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
    distinct_sensors: int = 0
    """Distinct sensor ids among the records (see ``workbench.catalog.sensor_ids``): exact up
    to 512, then a HyperLogLog estimate (standard error about 0.8 %). Counted since the
    catalog's migration 7; records without a sensor id do not count."""


@dataclass(frozen=True)
class TopicSummary:
    """One line of the catalog's topic summary: a dataset and the source that feeds it."""

    ingestion_id: str
    source: str | None
    """The source's name; None for a dataset whose source was deleted."""
    source_type: str
    topic: str | None
    """The source's topic, for sources that have one (MQTT)."""
    records: int
    bytes: int
    fields: int
    """How many field paths the dataset has."""
    schema_version: int
    distinct_sensors: int
    first_seen: datetime | None
    last_seen: datetime | None


@dataclass(frozen=True)
class CatalogTotals:
    """Catalog-wide totals."""

    datasets: int
    records: int
    bytes: int
    field_paths: int
    """Distinct field paths across datasets."""
    sources: int
    schema_events: int
    distinct_sensors: int
    """Sensor ids distinct across all datasets (an id in two datasets counts once)."""
    first_seen: datetime | None
    last_seen: datetime | None


#: Value-rule kinds, applied in this order of meaning but sorted by priority, id.
VALUE_RULE_KINDS = ("filter", "convert", "validate", "aggregate")

#: Device sensitivity levels, from least to most restricted.
SENSITIVITIES = ("public", "internal", "confidential", "restricted")


@dataclass(frozen=True)
class ValueRule:
    """A value transformation on one canonical field, global or for one dataset.

    ``config`` by kind (validated by :func:`workbench.enrichment.value_rules.check_rule`):

    - ``filter``: ``{"op": "gt|ge|lt|le|eq|ne|contains|regex|in", "value": v}``; rows that
      lack the field (other sensor types) are kept.
    - ``convert``: ``{"to": "string|int|float|bool|timestamp", "default": v}`` or arithmetic
      ``{"op": "add|sub|mul|div", "value": c}`` / ``{"op": ..., "other": field}``; optional
      ``"target"`` writes the result to another canonical field.
    - ``validate``: ``{"check": "range", "min": a, "max": b}``, ``{"check": "regex",
      "pattern": p}``, ``{"check": "enum", "values": [...]}`` or ``{"check": "not_null"}``,
      with ``"on_fail": "drop|flag|default"`` (and ``"default": v``).
    - ``aggregate``: ``{"function": "avg|sum|min|max|count|stddev", "window": "5 minutes",
      "group_by": ["sensor_id"], "table": name}``; materialized in gold, not applied to silver.
    """

    id: int
    name: str
    kind: str
    field: str
    # ``dataclasses.field``: the name ``field`` is this class's attribute just above.
    config: dict[str, Any] = dataclasses.field(default_factory=dict)
    ingestion_id: str | None = None
    priority: int = 100
    enabled: bool = True


@dataclass(frozen=True)
class RuleOutcome:
    """One value rule's outcome in one batch, as the engine reports it to the catalog."""

    status: Literal["ok", "failed"]
    rows_affected: int = 0
    last_error: str | None = None
    """Why the rule failed; None for a rule that ran (it clears an earlier error)."""

    @classmethod
    def ok(cls, rows_affected: int) -> RuleOutcome:
        """The rule ran and changed, dropped or flagged ``rows_affected`` rows."""
        return cls("ok", rows_affected)

    @classmethod
    def failed(cls, reason: str) -> RuleOutcome:
        """The rule could not run (no rows affected)."""
        return cls("failed", 0, reason)


@dataclass(frozen=True)
class ValueRuleStatus:
    """A value rule with what its last batches did (for the rule editor and status pages)."""

    rule: ValueRule
    status: str | None = None
    """``ok`` or ``failed`` after the last batch that ran the rule; None before any."""
    last_error: str | None = None
    rows_affected: int = 0
    """Rows the rule affected, over every batch so far."""
    last_applied_at: datetime | None = None

    @property
    def id(self) -> int:
        """The rule's id."""
        return self.rule.id


@dataclass(frozen=True)
class Device:
    """A registered source. ``ingestion_id`` may be an ``fnmatch`` wildcard."""

    ingestion_id: str
    name: str = ""
    sensitivity: str = "internal"
    retention_days: int | None = None
    """Bronze, silver and gold data older than this is deleted by maintenance (None: the
    layer default)."""
    enabled: bool = True


@dataclass(frozen=True)
class AlertRule:
    """A threshold on a canonical field, evaluated per sensor per gold window."""

    id: int
    name: str
    field: str
    op: str
    """``gt``, ``ge``, ``lt`` or ``le``: compared with the window's max (gt/ge) or min (lt/le)."""
    threshold: float
    ingestion_id: str | None = None
    enabled: bool = True


@dataclass(frozen=True)
class AlertObservation:
    """What one gold batch saw of an alert rule on one sensor in one window."""

    rule_id: int
    ingestion_id: str
    sensor_id: str
    window_start: datetime
    crossed: bool
    """Whether the window's readings in the batch crossed the threshold."""
    value: float | None
    """The batch's most extreme value of the window on the rule's side (max for gt/ge)."""
    sensitivity: str
    worse_is_higher: bool = True
    """True for ``gt``/``ge`` rules: a higher value is the worse one."""


#: An alert's states: crossing its threshold, or back within it.
ALERT_STATUSES = ("firing", "resolved")


@dataclass(frozen=True)
class AlertState:
    """One alert rule on one sensor: firing or resolved, with who acknowledged it.

    One row per ``(rule, ingestion_id, sensor_id)``, however many windows cross: an *episode*
    starts when a window crosses while the alert is resolved (or new), and ends at the first
    later window that does not. Acknowledging marks the current episode; the next one starts
    unacknowledged.
    """

    rule_id: int
    ingestion_id: str
    sensor_id: str
    status: str
    value: float | None
    """The episode's most extreme value so far."""
    window_start: datetime
    """The newest window seen for this sensor."""
    fired_at: datetime
    """When the current (or last) episode started."""
    sensitivity: str
    updated_at: datetime
    resolved_at: datetime | None = None
    episodes: int = 1
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None
    id: int | None = None
    rule_name: str = ""

    @property
    def key(self) -> tuple[int, str, str]:
        """Rule, ingestion id and sensor: what makes an alert one alert."""
        return (self.rule_id, self.ingestion_id, self.sensor_id)

    def to_dict(self) -> dict[str, Any]:
        """As answered (times in ISO 8601)."""

        def iso(value: datetime | None) -> str | None:
            return None if value is None else value.isoformat()

        return {
            "id": self.id,
            "rule_id": self.rule_id,
            "rule": self.rule_name,
            "ingestion_id": self.ingestion_id,
            "sensor_id": self.sensor_id,
            "status": self.status,
            "value": self.value,
            "window_start": iso(self.window_start),
            "fired_at": iso(self.fired_at),
            "resolved_at": iso(self.resolved_at),
            "episodes": self.episodes,
            "acknowledged_by": self.acknowledged_by,
            "acknowledged_at": iso(self.acknowledged_at),
            "sensitivity": self.sensitivity,
            "updated_at": iso(self.updated_at),
        }


@dataclass(frozen=True)
class LossRow:
    """One dataset's loss accounting: the counters ingest keeps (see ``workbench.ingest.loss``).

    What ``Catalog.loss_accounting`` stores and ``GET /api/loss`` serves (with the counts not
    yet written added).
    """

    ingestion_id: str
    received: int = 0
    written: int = 0
    flagged: int = 0
    duplicates: int = 0
    gaps: int = 0
    updated_at: datetime | None = None
    """When the catalog last added counts (None: none written yet)."""

    def adding(self, counts: Mapping[str, int]) -> LossRow:
        """These counters plus ``counts`` (``{"received": n, ...}``; other counters unchanged)."""
        return dataclasses.replace(self, **{k: getattr(self, k) + v for k, v in counts.items()})

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``updated_at`` as ISO 8601)."""
        out = dataclasses.asdict(self)
        out["updated_at"] = self.updated_at.isoformat() if self.updated_at else None
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LossRow:
        """Rebuild one from :meth:`to_dict`'s form (unknown keys are ignored)."""
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if isinstance(values.get("updated_at"), str):
            values["updated_at"] = datetime.fromisoformat(values["updated_at"])
        return cls(**values)


#: What a stream computation's name must look like: it names the table ``gold.<name>``.
STREAM_COMPUTATION_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"


@dataclass(frozen=True)
class StreamComputation:
    """A user-defined streaming computation over silver, materialized in ``gold.<name>``.

    ``sql`` is one ``SELECT``/``WITH`` query over the view ``silver`` (the silver stream with a
    watermark on ``event_time``), run in append mode; its output must carry ``sensitivity``.
    The catalog assigns ``id``, ``version`` and the timestamps: a record built to be saved
    leaves them at their defaults.
    """

    name: str
    sql: str
    description: str = ""
    enabled: bool = True
    id: int = 0
    """Stable for the computation's life; a deleted and re-created name gets a new one."""
    version: int = 1
    """Starts at 1 and rises by one each time ``sql`` changes (the results start over)."""
    created_at: datetime | None = None
    updated_at: datetime | None = None


#: How a tile draws its computation's result.
VIZ_TYPES = ("table", "stat", "timeseries", "bar", "gauge")
#: Columns of the dashboard grid.
GRID_COLUMNS = 12


@dataclass(frozen=True)
class Tile:
    """A computation drawn on a dashboard: how (``viz``, ``config``), with which parameter
    values, and where (``x``, ``y``, ``w``, ``h`` on a :data:`GRID_COLUMNS`-column grid)."""

    dashboard: str
    title: str
    computation: str
    viz: str = "table"
    config: dict[str, Any] = field(default_factory=dict)
    """Viz options: ``x``, ``y``, ``color`` columns; ``value``, ``min``, ``max`` for a gauge."""
    parameters: dict[str, Any] = field(default_factory=dict)
    x: int = 0
    y: int = 0
    w: int = 6
    h: int = 4
    id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """As stored and answered."""
        return {
            "id": self.id,
            "dashboard": self.dashboard,
            "title": self.title,
            "computation": self.computation,
            "viz": self.viz,
            "config": dict(self.config),
            "parameters": dict(self.parameters),
            "x": self.x,
            "y": self.y,
            "w": self.w,
            "h": self.h,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Tile:
        """Rebuild one from :meth:`to_dict`'s form (unknown keys are ignored)."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class Dashboard:
    """A named grid of tiles."""

    name: str
    title: str
    description: str = ""
    owner: str | None = None
    tiles: tuple[Tile, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """As answered, tiles in reading order (row, then column)."""
        ordered = sorted(self.tiles, key=lambda t: (t.y, t.x))
        return {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "owner": self.owner,
            "tiles": [t.to_dict() for t in ordered],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Dashboard:
        """Rebuild one from :meth:`to_dict`'s form."""
        return cls(
            name=data["name"],
            title=data.get("title") or data["name"],
            description=data.get("description") or "",
            owner=data.get("owner"),
            tiles=tuple(Tile.from_dict(t) for t in data.get("tiles") or ()),
        )
