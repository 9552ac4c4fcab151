"""Following the engine's Delta tables from outside, with the ``deltalake`` package (no Spark).

:class:`SilverWatch` records, for every reading, the commit time of the silver version that
added it; :class:`GoldWatch` records, for every ``(sensor, window)`` of a gold field, the commit
time of each version that raised its ``count``. :func:`gold_latencies` turns both into
sensor → gold latencies: per ``(sensor, window, field)`` the k-th reading to reach silver is
covered by the first gold version whose ``count`` is at least k (gold reads silver versions in
order, so the readings it has counted are exactly the first ``count`` ones).
"""

from __future__ import annotations

import logging
import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from deltalake import DeltaTable

log = logging.getLogger(__name__)

_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}


def window_seconds(text: str) -> int:
    """``"1 minute"`` → 60 (Spark's window duration syntax, the common units)."""
    match = re.fullmatch(r"\s*(\d+)\s*(second|minute|hour|day)s?\s*", text)
    if not match:
        raise ValueError(f"unsupported window duration {text!r}")
    return int(match.group(1)) * _UNITS[match.group(2)]


def epoch_seconds(column: pa.ChunkedArray | pa.Array) -> list[float | None]:
    """A timestamp column (any unit, with or without zone) as epoch seconds."""
    micros = pc.cast(pc.cast(column, pa.timestamp("us", tz="UTC")), pa.int64())
    return [None if v is None else v / 1e6 for v in micros.to_pylist()]


def percentile(values: list[float], q: float) -> float | None:
    """The ``q``-th percentile (0–100) by linear interpolation; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _commit_times(table: DeltaTable, since: int) -> dict[int, float]:
    latest = table.version()
    return {
        int(h["version"]): float(h["timestamp"]) / 1000
        for h in table.history(latest - since)
        if "version" in h
    }


def _open(path: str) -> DeltaTable | None:
    if not (Path(path) / "_delta_log").exists():
        return None
    try:
        return DeltaTable(path)
    except Exception as err:  # noqa: BLE001 - a log being written; the next poll sees it whole
        log.debug("delta table not readable yet path=%s error=%s", path, err)
        return None


@dataclass
class SilverRecord:
    """One reading as first seen in silver."""

    event_time: float
    sensor_id: str | None
    version: int
    committed: float


@dataclass
class SilverWatch:
    """New silver versions → the readings each added, with its commit time."""

    path: str
    version: int = -1
    records: dict[str, SilverRecord] = field(default_factory=dict)
    _files: set[str] = field(default_factory=set)

    def poll(self) -> int:
        """Read every version committed since the last poll; returns new readings."""
        table = _open(self.path)
        if table is None or table.version() <= self.version:
            return 0
        stamps = _commit_times(table, self.version)
        before = len(self.records)
        for version in range(self.version + 1, table.version() + 1):
            files = set(DeltaTable(self.path, version=version).file_uris())
            for uri in sorted(files - self._files):
                self._read(uri, version, stamps[version])
            # A compaction re-adds old readings in new files: the first sighting stays.
            self._files = files
            self.version = version
        return len(self.records) - before

    def count(self, prefix: str = "") -> int:
        """Readings seen so far from sensors whose id starts with ``prefix``."""
        return sum(1 for r in self.records.values() if (r.sensor_id or "").startswith(prefix))

    def _read(self, uri: str, version: int, committed: float) -> None:
        part = pq.read_table(
            uri.removeprefix("file://"), columns=["message_id", "event_time", "sensor_id"]
        )
        times = epoch_seconds(part["event_time"])
        for mid, when, sensor in zip(
            part["message_id"].to_pylist(), times, part["sensor_id"].to_pylist(), strict=True
        ):
            if mid not in self.records and when is not None:
                self.records[mid] = SilverRecord(when, sensor, version, committed)


@dataclass
class GoldWatch:
    """New gold versions → per ``(sensor, window start)``: ``[(count, commit time), ...]``."""

    path: str
    field_name: str
    version: int = -1
    events: dict[tuple[str | None, float], list[tuple[int, float]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    counts: dict[tuple[str | None, float], int] = field(default_factory=dict)

    def poll(self) -> None:
        """Read every version committed since the last poll."""
        table = _open(self.path)
        if table is None or table.version() <= self.version:
            return
        stamps = _commit_times(table, self.version)
        for version in range(self.version + 1, table.version() + 1):
            rows = DeltaTable(self.path, version=version).to_pyarrow_table(
                columns=["window_start", "sensor_id", "field", "count"]
            )
            rows = rows.filter(pc.equal(rows["field"], self.field_name))
            starts = epoch_seconds(rows["window_start"])
            for sensor, start, count in zip(
                rows["sensor_id"].to_pylist(), starts, rows["count"].to_pylist(), strict=True
            ):
                key = (sensor, float(start or 0))
                if count is not None and count > self.counts.get(key, 0):
                    self.counts[key] = int(count)
                    self.events[key].append((int(count), stamps[version]))
            self.version = version

    def covered(self, prefix: str = "") -> int:
        """Readings the latest gold counts cover, over the sensors whose id starts with
        ``prefix``."""
        return sum(n for (sensor, _), n in self.counts.items() if (sensor or "").startswith(prefix))


def gold_latencies(
    records: dict[str, SilverRecord],
    events: dict[tuple[str | None, float], list[tuple[int, float]]],
    window: int,
) -> tuple[list[float], int]:
    """Sensor → gold latency of every covered reading, and how many were never covered."""
    by_key: dict[tuple[str | None, float], list[tuple[int, float]]] = defaultdict(list)
    for rec in records.values():
        start = float(math.floor(rec.event_time / window) * window)
        by_key[(rec.sensor_id, start)].append((rec.version, rec.event_time))
    latencies: list[float] = []
    uncovered = 0
    for key, readings in by_key.items():
        readings.sort()
        steps = events.get(key, [])
        i = 0
        for k, (_version, event_time) in enumerate(readings, start=1):
            while i < len(steps) and steps[i][0] < k:
                i += 1
            if i == len(steps):
                uncovered += len(readings) - k + 1
                break
            latencies.append(steps[i][1] - event_time)
    return latencies, uncovered
