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
        self._last_seq: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def received(self, ingestion_id: str, messages: int = 1) -> None:
        """Messages handed over by a connector."""
        with self._lock:
            self._counts(ingestion_id).received += messages

    def written(self, rows: list[Envelope]) -> None:
        """Rows that just became durable in bronze."""
        half = RECENT_IDS // 2
        # Once per row at full ingest rate: the dataset's counters are looked up again only when
        # the dataset changes (a flush holds one dataset), and the labelled metrics are
        # incremented once per dataset and call.
        touched: dict[str, tuple[LossCounts, int, int]] = {}
        with self._lock:
            counts: LossCounts | None = None
            counts_of = ""
            for env in rows:
                iid = env.ingestion_id
                if counts is None or iid != counts_of:
                    counts, counts_of = self._counts(iid), iid
                    if iid not in touched:
                        touched[iid] = (counts, counts.duplicates, counts.gaps)
                counts.written += 1
                if env.payload_kind != OBJECT:
                    counts.flagged += 1
                key = hash(env.message_id)
                if key in self._recent or key in self._older:
                    counts.duplicates += 1
                    continue
                if len(self._recent) >= half:
                    self._older, self._recent = self._recent, set()
                self._recent.add(key)
                counts.gaps += self._gap(env)
        m = self._metrics
        for iid, (counts, duplicates, gaps) in touched.items():
            if counts.duplicates > duplicates:
                m.duplicates.labels(m.pod, iid).inc(counts.duplicates - duplicates)
            if counts.gaps > gaps:
                m.sequence_gaps.labels(m.pod, iid).inc(counts.gaps - gaps)

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

    def _gap(self, env: Envelope) -> int:
        record: dict[str, Any] | None = env.record
        if not record:
            return 0
        seq = record.get("seq")
        if type(seq) is not int:  # parsed JSON: exactly int, and never a bool
            return 0
        sensor = ""
        for name in SENSOR_KEYS:
            if name in record:
                sensor = str(record[name])
                break
        key = (env.ingestion_id, sensor)
        last = self._last_seq.get(key)
        if last is None or seq > last:
            self._last_seq[key] = seq
        if last is None or seq <= last + 1:
            return 0  # first seen, next in line, or a late/reordered one
        return seq - last - 1
