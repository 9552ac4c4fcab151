"""Schema inference: the type lattice, field observations, and merging them into the catalog.

Lattice: ``null < boolean < integer < double < timestamp | string``. Two different types widen
to their least upper bound; anything that is not on one chain (a number and a timestamp, an
array and a number) widens to ``string``. Widening never fails.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

from workbench.catalog import tables as t
from workbench.catalog.dialect import stored_utc, upsert
from workbench.catalog.sketch import DistinctSketch
from workbench.core.clock import utcnow
from workbench.core.errors import CatalogError

log = logging.getLogger(__name__)

_ORDER = {"null": 0, "boolean": 1, "integer": 2, "double": 3}
_ISO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$")
MAX_SAMPLES = 5


def infer_type(value: Any) -> str:
    """The lattice type of one JSON value."""
    kind = type_kind(type(value))
    if kind is not None:
        return kind
    return "timestamp" if _ISO_TIME.match(value) else "string"


def type_kind(tp: type) -> str | None:
    """The lattice type of every value of Python type ``tp`` (:func:`infer_type` by type), or
    None for strings, whose type depends on the value (timestamp or string)."""
    if tp is type(None):
        return "null"
    if issubclass(tp, bool):
        return "boolean"
    if issubclass(tp, int):
        return "integer"
    if issubclass(tp, float):
        return "double"
    if issubclass(tp, list):
        return "array"
    if issubclass(tp, str):
        return None
    return "string"


_NUMERIC = frozenset(("integer", "double"))


def widen(a: str, b: str) -> str:
    """Least upper bound of two lattice types."""
    if a == b:
        return a
    if a == "null":
        return b
    if b == "null":
        return a
    if a in _ORDER and b in _ORDER:
        return a if _ORDER[a] > _ORDER[b] else b
    return "string"


MAX_PATH_DEPTH = 16
"""The most names in a field path: an object nested deeper is one value. The enrichment reads
paths the same way (``kernels/jvm/src/workbench/spark/PayloadFields.java``)."""


def flatten(record: dict[str, Any], prefix: str = "", depth: int = 1) -> dict[str, Any]:
    """Nested objects as dot paths: ``{"a": {"b": 1}}`` → ``{"a.b": 1}``.

    Arrays, empty objects and objects at :data:`MAX_PATH_DEPTH` names are values.
    """
    out: dict[str, Any] = {}
    for key, value in record.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and depth < MAX_PATH_DEPTH:
            out.update(flatten(value, f"{path}.", depth + 1))
        else:
            out[path] = value
    return out


@dataclass
class FieldObservation:
    """What a batch showed about one field path."""

    type: str = "null"
    seen: int = 0
    nulls: int = 0
    samples: list[Any] = field(default_factory=list)
    min: float | None = None
    max: float | None = None

    def add(self, value: Any) -> None:
        """Fold one value in."""
        self.seen += 1
        kind = infer_type(value)
        self.type = widen(self.type, kind)
        if kind == "null":
            self.nulls += 1
            return
        if len(self.samples) < MAX_SAMPLES and value not in self.samples:
            self.samples.append(value if not isinstance(value, (dict, list)) else str(value))
        if kind in ("integer", "double"):
            number = float(value)
            self.min = number if self.min is None else min(self.min, number)
            self.max = number if self.max is None else max(self.max, number)

    def add_all(self, values: list[Any]) -> None:
        """Fold ``values`` in, in order: the same result as :meth:`add` on each.

        Column-wise: the type from the distinct Python types (and, for strings, the distinct
        strings until one is not a timestamp), nulls counted, samples taken in order, and the
        bounds with one ``min``/``max`` over the numbers, which compares as the one-by-one fold
        does (NaN included).
        """
        self.seen += len(values)
        types = set(map(type, values))
        present = values
        if type(None) in types:
            present = [v for v in values if v is not None]
            self.nulls += len(values) - len(present)
        numeric: set[type] = set()
        for tp in types:
            kind = type_kind(tp)
            if kind is None:  # strings: timestamps while every one of them is
                if self.type == "string":
                    continue  # the top of the lattice: nothing can change it
                texts: set[str] = {v for v in present if type(v) is tp and isinstance(v, str)}
                kind = "timestamp" if all(_ISO_TIME.match(t) for t in texts) else "string"
            elif kind in _NUMERIC:
                numeric.add(tp)
            self.type = widen(self.type, kind)
        samples = self.samples
        if len(samples) < MAX_SAMPLES:
            for value in present:
                if value not in samples:
                    samples.append(value if not isinstance(value, (dict, list)) else str(value))
                    if len(samples) >= MAX_SAMPLES:
                        break
        if numeric:
            numbers = [float(v) for v in present if type(v) in numeric]
            low = numbers if self.min is None else [self.min, *numbers]
            high = numbers if self.max is None else [self.max, *numbers]
            self.min, self.max = min(low), max(high)

    def merge(self, other: FieldObservation) -> None:
        """Fold another observation of the same field in."""
        self.type = widen(self.type, other.type)
        self.seen += other.seen
        self.nulls += other.nulls
        self.samples = (self.samples + [s for s in other.samples if s not in self.samples])[
            :MAX_SAMPLES
        ]
        self.min = _pick(min, self.min, other.min)
        self.max = _pick(max, self.max, other.max)


@dataclass
class DatasetObservation:
    """What a batch showed about one dataset."""

    ingestion_id: str
    source_type: str
    records: int = 0
    bytes: int = 0
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    fields: dict[str, FieldObservation] = field(default_factory=dict)
    skipped: int = 0
    """Objects counted but not inferred (sampling); they say nothing about nullability."""
    objects: int = 0
    """Objects whose fields were inferred: ``(objects + skipped) / objects`` scales a field's
    ``seen`` to an estimated count of records carrying it."""
    sensors: DistinctSketch = field(default_factory=DistinctSketch)
    """Distinct sensor ids (fed by the extractor, which knows the rules: see ``sensor_ids``)."""

    @property
    def inferred(self) -> int:
        """Records whose fields were inferred or which had none (non-objects)."""
        return self.records - self.skipped

    def add(
        self,
        record: dict[str, Any] | None,
        size: int,
        seen_at: datetime,
        *,
        is_object: bool | None = None,
    ) -> None:
        """Fold one record: counted always; its fields inferred when ``record`` is given.

        Args:
            record: the parsed object, or None for a non-object payload or a record skipped by
                sampling.
            size: payload bytes.
            seen_at: when it was received.
            is_object: whether the payload was an object (defaults to ``record is not None``);
                a sampled-out object must not make its fields look nullable.
        """
        self.records += 1
        self.bytes += size
        self.first_seen = seen_at if self.first_seen is None else min(self.first_seen, seen_at)
        self.last_seen = seen_at if self.last_seen is None else max(self.last_seen, seen_at)
        if record is None:
            if is_object:
                self.skipped += 1
            return
        self.objects += 1
        for path, value in flatten(record).items():
            self.fields.setdefault(path, FieldObservation()).add(value)

    def add_batch(
        self,
        inferred: list[dict[str, Any]],
        *,
        records: int,
        size: int,
        first_seen: datetime,
        last_seen: datetime,
        skipped: int,
    ) -> None:
        """Fold a batch of records: the same result as :meth:`add` on each of them in order.

        Args:
            inferred: the objects whose fields are inferred (in order).
            records: every record of the batch (objects or not, inferred or not).
            size: their payload bytes.
            first_seen: the earliest receive time among them.
            last_seen: the latest.
            skipped: objects counted but not inferred (sampling).
        """
        self.records += records
        self.bytes += size
        self.first_seen = _earliest_seen(self.first_seen, first_seen)
        self.last_seen = last_seen if self.last_seen is None else max(self.last_seen, last_seen)
        self.skipped += skipped
        self.objects += len(inferred)
        # Each field's values gathered in record order, fields in the order first seen (the
        # order new fields are logged in), then folded in per field.
        columns = _uniform_columns(inferred)
        if columns is None:
            columns = {}
            for record in inferred:
                for path, value in flatten(record).items():
                    column = columns.get(path)
                    if column is None:
                        columns[path] = [value]
                    else:
                        column.append(value)
        fields = self.fields
        for path, values in columns.items():
            fobs = fields.get(path)
            if fobs is None:
                fobs = fields[path] = FieldObservation()
            fobs.add_all(values)

    def merge(self, other: DatasetObservation) -> None:
        """Fold a later observation of the same dataset in."""
        self.records += other.records
        self.skipped += other.skipped
        self.objects += other.objects
        self.bytes += other.bytes
        self.first_seen = _earliest(self.first_seen, other.first_seen)
        self.sensors.merge(other.sensors)
        if other.last_seen and (self.last_seen is None or other.last_seen > self.last_seen):
            self.last_seen = other.last_seen
        for path, fobs in other.fields.items():
            if path in self.fields:
                self.fields[path].merge(fobs)
            else:
                self.fields[path] = fobs

    def count(self, fobs: FieldObservation) -> int:
        """Records of this observation that carried a field: exact when every object was
        inferred, else ``seen`` scaled by the sampling ratio (rounded)."""
        if not self.skipped or not self.objects:
            return fobs.seen
        return round(fobs.seen * (self.objects + self.skipped) / self.objects)


def merge_observation(conn: Connection, obs: DatasetObservation) -> None:
    """Merge one observation into ``datasets`` and ``fields`` and log schema changes.

    A new path logs an ``added`` event, a wider type a ``widened`` one (old and new type and a
    sample of the new type); either bumps the dataset's ``schema_version`` once per merge. A
    field seen again after a ``not_seen`` event is re-armed (see :func:`sweep_stale_fields`).
    The observation's sensor sketch is merged into the stored one under the same row lock as
    the counts, and ``distinct_sensors`` is its new estimate.
    """
    ds = t.datasets.c
    at = obs.last_seen or utcnow()
    # Insert-if-missing, then lock the row: merges of one dataset from several ingest hosts
    # (PostgreSQL, READ COMMITTED) serialize here instead of losing a widening or a sample.
    # SQLite ignores FOR UPDATE; its IMMEDIATE transactions already serialize writers.
    created = (
        conn.execute(
            upsert(conn, t.datasets)
            .values(
                ingestion_id=obs.ingestion_id,
                source_type=obs.source_type,
                record_count=0,
                bytes=0,
                first_seen=obs.first_seen,
                last_seen=obs.last_seen,
                schema_version=0,
                distinct_sensors=0,
            )
            .on_conflict_do_nothing()
            .returning(ds.ingestion_id)
        ).first()
        is not None
    )
    row = (
        conn.execute(
            select(t.datasets).where(ds.ingestion_id == obs.ingestion_id).with_for_update()
        )
        .mappings()
        .one()
    )
    version = row["schema_version"]
    first_seen = _earliest(row["first_seen"], obs.first_seen)
    fc = t.fields.c
    existing = {
        r["path"]: r
        for r in conn.execute(
            select(t.fields).where(fc.ingestion_id == obs.ingestion_id)
        ).mappings()
    }
    events: list[dict[str, Any]] = []
    for path, fobs in obs.fields.items():
        old = existing.get(path)
        if old is None:
            conn.execute(
                insert(t.fields).values(
                    ingestion_id=obs.ingestion_id,
                    path=path,
                    type=fobs.type,
                    nullable=fobs.nulls > 0 or fobs.seen < obs.inferred or not created,
                    samples=fobs.samples,
                    min_value=fobs.min,
                    max_value=fobs.max,
                    first_seen=obs.first_seen,
                    last_seen=obs.last_seen,
                    records=obs.count(fobs),
                    stale=False,
                )
            )
            events.append(_event(path, "added", None, fobs.type, _sample_of(fobs, fobs.type)))
            continue
        new_type = widen(old["type"], fobs.type)
        if new_type != old["type"]:
            events.append(
                _event(path, "widened", old["type"], new_type, _sample_of(fobs, new_type))
            )
        samples = list(old["samples"] or [])
        samples += [s for s in fobs.samples if s not in samples][
            : max(0, MAX_SAMPLES - len(samples))
        ]
        conn.execute(
            update(t.fields)
            .where(fc.ingestion_id == obs.ingestion_id, fc.path == path)
            .values(
                type=new_type,
                nullable=old["nullable"] or fobs.nulls > 0 or fobs.seen < obs.inferred,
                samples=samples,
                min_value=_pick(min, old["min_value"], fobs.min),
                max_value=_pick(max, old["max_value"], fobs.max),
                last_seen=obs.last_seen,
                records=fc.records + obs.count(fobs),
                stale=False,
            )
        )
    if events:
        version += 1
        conn.execute(
            insert(t.schema_events),
            [
                {**e, "ingestion_id": obs.ingestion_id, "schema_version": version, "at": at}
                for e in events
            ],
        )
    conn.execute(
        update(t.datasets)
        .where(ds.ingestion_id == obs.ingestion_id)
        .values(
            record_count=ds.record_count + obs.records,
            bytes=ds.bytes + obs.bytes,
            first_seen=first_seen,
            last_seen=obs.last_seen,
            schema_version=version,
            **_merged_sensors(row["sensor_sketch"], obs.sensors),
        )
    )


def _merged_sensors(stored: bytes | None, batch: DistinctSketch) -> dict[str, Any]:
    """The ``sensor_sketch`` and ``distinct_sensors`` values after merging ``batch`` into the
    stored sketch; empty when nothing changed (most batches of known sensors), so the 16 KiB
    column is rewritten only when a register moved."""
    if stored is None and batch.estimate() == 0:
        return {}
    merged = DistinctSketch()
    if stored is not None:
        try:
            merged = DistinctSketch.from_bytes(stored)
        except CatalogError as err:  # a damaged sketch must not stop every metadata write
            log.warning("sensor sketch unreadable, counting anew: %s", err.message)
    merged.merge(batch)
    blob = merged.to_bytes()
    if blob == stored:
        return {}
    return {"sensor_sketch": blob, "distinct_sensors": merged.estimate()}


def sweep_stale_fields(conn: Connection, now: datetime, stale_after: timedelta) -> int:
    """Log one ``not_seen`` event per field absent for ``stale_after`` while its dataset kept
    arriving; returns how many were logged.

    A dataset that went silent as a whole is not a schema change, so only fields older than
    their dataset's ``last_seen`` count. The flag is set in the same UPDATE that selects the
    rows, so two sweeping processes (two ingest hosts on one PostgreSQL) never log a field twice.
    """
    fc, ds = t.fields.c, t.datasets.c
    dataset_newer = (
        select(ds.ingestion_id)
        .where(ds.ingestion_id == fc.ingestion_id, ds.last_seen > fc.last_seen)
        .exists()
    )
    stale = conn.execute(
        update(t.fields)
        .where(fc.stale.is_(False), fc.last_seen < now - stale_after, dataset_newer)
        .values(stale=True)
        .returning(fc.ingestion_id, fc.path, fc.type, fc.samples)
    ).all()
    if not stale:
        return 0
    ids = {r.ingestion_id for r in stale}
    versions: dict[str, int] = {
        iid: version
        for iid, version in conn.execute(
            select(ds.ingestion_id, ds.schema_version).where(ds.ingestion_id.in_(ids))
        )
    }
    conn.execute(
        insert(t.schema_events),
        [
            {
                **_event(r.path, "not_seen", r.type, None, (r.samples or [None])[-1]),
                "ingestion_id": r.ingestion_id,
                "schema_version": versions[r.ingestion_id],
                "at": now,
            }
            for r in stale
        ],
    )
    return len(stale)


def _event(
    path: str, kind: str, old_type: str | None, new_type: str | None, sample: Any
) -> dict[str, Any]:
    return {
        "path": path,
        "kind": kind,
        "old_type": old_type,
        "new_type": new_type,
        "sample": sample,
    }


def _sample_of(fobs: FieldObservation, kind: str) -> Any:
    """A sample of type ``kind`` (the value that caused a widening), else the first sample."""
    for sample in fobs.samples:
        if infer_type(sample) == kind:
            return sample
    return fobs.samples[0] if fobs.samples else None


def _pick(fn: Any, a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return float(fn(a, b))


def _uniform_columns(records: list[dict[str, Any]]) -> dict[str, list[Any]] | None:
    """The records' values by field path when they all have the same top-level keys (text)
    and no nested object to flatten: one list comprehension per key instead of flattening
    record by record. None when they do not (the caller flattens them one by one).

    A sender's readings nearly always share one shape; :func:`flatten` on each would build the
    same paths again for every record.
    """
    if not records:
        return {}
    keys = tuple(records[0])
    if not all(type(k) is str for k in keys):
        return None
    if any(tuple(r) != keys for r in records):
        return None
    columns = {k: [r[k] for r in records] for k in keys}
    for values in columns.values():
        if any(isinstance(v, dict) and v for v in values):  # a nested object: paths below it
            return None
    return columns


def _earliest_seen(known: datetime | None, seen: datetime) -> datetime:
    return seen if known is None else min(known, seen)


def _earliest(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None or b is None:
        return a or b
    return min(stored_utc(a), stored_utc(b))
