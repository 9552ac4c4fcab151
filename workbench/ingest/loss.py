"""Loss accounting: per dataset, what came in, what was written, and what looks lost.

``received`` counts messages handed over by connectors; ``written`` the rows made durable in
bronze; ``flagged`` the written rows kept raw with a reason (non-JSON, scalars...);
``duplicates`` rows whose message id was already written recently (redeliveries after a crash
or reconnect, which silver can drop); ``gaps`` sequence numbers skipped by a publisher that
sends a ``seq`` per sensor. Counters are kept here and flushed as deltas to the catalog.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, fields
from typing import Any

from workbench.connectors.envelope import OBJECT, Envelope
from workbench.connectors.envelope_batch import EnvelopeBatch
from workbench.metrics.ingestor import IngestMetrics

SENSOR_KEYS = ("sensor_id", "sensorId", "sensorid", "device_id", "deviceId", "id")
RECENT_IDS = 200_000
"""Message ids remembered per process for duplicate detection (oldest half forgotten first)."""


@dataclass
class LossCounts:
    """Counters of one dataset."""

    received: int = 0
    written: int = 0
    flagged: int = 0
    duplicates: int = 0
    gaps: int = 0

    def add(self, other: LossCounts) -> None:
        """Add another set of counters to these."""
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


class LossLedger:
    """Thread-safe loss counters, fed by the ingest service, drained by the catalog writer."""

    def __init__(self, metrics: IngestMetrics) -> None:
        self._metrics = metrics
        self._pending: dict[str, LossCounts] = {}
        # Two generations of id hashes (the older dropped when the newer is full) instead of
        # an ordered dict of id strings: 200,000 remembered ids cost ~15 MB instead of ~34 MB
        # . A 64-bit hash collision among them is vanishingly rare and would only
        # miscount one duplicate.
        self._recent: set[int] = set()
        self._older: set[int] = set()
        self._last_seq: dict[str, dict[str, int]] = {}
        """Per dataset, the last sequence number seen per sensor."""
        self._lock = threading.Lock()

    def received(self, ingestion_id: str, messages: int = 1) -> None:
        """Messages handed over by a connector."""
        with self._lock:
            self._counts(ingestion_id).received += messages

    def written(self, rows: list[Envelope]) -> None:
        """Rows that just became durable in bronze (see :meth:`written_batch`)."""
        for batch in EnvelopeBatch.of_datasets(rows):
            self.written_batch(batch)

    def written_batch(self, batch: EnvelopeBatch) -> None:
        """A flush's rows (one dataset) that just became durable in bronze.

        Counted per batch, not per row: ``written`` and ``flagged`` are the batch's counts, the
        message ids are hashed in one pass and checked against the remembered ones as sets, and
        only the sequence numbers are followed record by record (a gap depends on the order).
        A batch the set shortcut cannot take (a repeated id, or the remembered ids about to roll
        over) is counted row by row, in order.
        """
        if not len(batch):
            return
        keys = list(map(hash, batch.message_ids))
        iid = batch.ingestion_id
        with self._lock:
            counts = self._counts(iid)
            distinct = set(keys)
            if not (
                len(distinct) == len(keys)
                and len(self._recent) + len(distinct) <= RECENT_IDS // 2
                and distinct.isdisjoint(self._recent)
                and distinct.isdisjoint(self._older)
            ):
                duplicates, gaps = self._written_rows(batch, keys, counts)
            else:
                self._recent |= distinct
                counts.written += len(keys)
                counts.flagged += batch.flagged
                duplicates, gaps = 0, self._gaps(iid, batch.records)
                counts.gaps += gaps
        m = self._metrics
        if duplicates:
            m.duplicates.labels(m.pod, iid).inc(duplicates)
        if gaps:
            m.sequence_gaps.labels(m.pod, iid).inc(gaps)

    def _written_rows(
        self, batch: EnvelopeBatch, keys: list[int], counts: LossCounts
    ) -> tuple[int, int]:
        """Count a batch row by row (under the lock); ``(duplicates, gaps)`` it added."""
        half = RECENT_IDS // 2
        duplicates = gaps = 0
        iid = batch.ingestion_id
        for key, kind, record in zip(keys, batch.kinds, batch.records, strict=True):
            counts.written += 1
            if kind != OBJECT:
                counts.flagged += 1
            if key in self._recent or key in self._older:
                duplicates += 1
                continue
            if len(self._recent) >= half:
                self._older, self._recent = self._recent, set()
            self._recent.add(key)
            gaps += self._gaps(iid, [record])
        counts.duplicates += duplicates
        counts.gaps += gaps
        return duplicates, gaps

    def take(self) -> dict[str, LossCounts]:
        """The counters accumulated since the last call (for the catalog), and reset them."""
        with self._lock:
            pending, self._pending = self._pending, {}
        return pending

    def give_back(self, pending: dict[str, LossCounts]) -> None:
        """Return counters whose write to the catalog failed, to be written next time."""
        with self._lock:
            for iid, counts in pending.items():
                self._counts(iid).add(counts)

    def peek(self) -> dict[str, LossCounts]:
        """A copy of the counters not yet written to the catalog."""
        with self._lock:
            return {iid: LossCounts(**c.to_dict()) for iid, c in self._pending.items()}

    def _counts(self, ingestion_id: str) -> LossCounts:
        counts = self._pending.get(ingestion_id)
        if counts is None:
            counts = self._pending[ingestion_id] = LossCounts()
        return counts

    def _gaps(self, ingestion_id: str, records: list[dict[str, Any] | None]) -> int:
        """Sequence numbers skipped by ``records`` (in order), remembering the last per sensor.

        A record counts when its ``seq`` is exactly an int (parsed JSON, never a bool); its
        sensor is the first of :data:`SENSOR_KEYS` it holds. The ``(sensor, seq)`` pairs are
        read out with comprehensions, then followed in order through the dataset's own
        sensor → last seq map.
        """
        with_seq = [r for r in records if r and type(r.get("seq")) is int]
        if not with_seq:
            return 0
        usual = SENSOR_KEYS[0]
        if all(usual in r for r in with_seq):
            sensors = [r[usual] for r in with_seq]
            if not all(type(v) is str for v in sensors):
                sensors = [str(v) for v in sensors]
        else:
            sensors = [_sensor_of(r) for r in with_seq]
        last_of = self._last_seq.get(ingestion_id)
        if last_of is None:
            last_of = self._last_seq[ingestion_id] = {}
        total = 0
        for sensor, record in zip(sensors, with_seq, strict=True):
            seq = record["seq"]
            last = last_of.get(sensor)
            if last is None:
                last_of[sensor] = seq
            elif seq > last:  # next in line adds 0; a late/reordered one nothing
                total += seq - last - 1
                last_of[sensor] = seq
        return total


def _sensor_of(record: dict[str, Any]) -> str:
    """The record's sensor: the first of :data:`SENSOR_KEYS` it holds, as text ("" if none)."""
    for name in SENSOR_KEYS:
        if name in record:
            return str(record[name])
    return ""
