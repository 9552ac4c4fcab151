"""Loss accounting (SPEC F8): per dataset, what came in, what was written, and what looks lost.

``received`` counts messages handed over by connectors; ``written`` the rows made durable in
bronze; ``flagged`` the written rows kept raw with a reason (non-JSON, scalars...);
``duplicates`` rows whose message id was already written recently (redeliveries after a crash
or reconnect, which silver can drop); ``gaps`` sequence numbers skipped by a publisher that
sends a ``seq`` per sensor. Counters are kept here and flushed as deltas to the catalog.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import asdict, dataclass, fields
from typing import Any

from workbench.connectors.envelope import OBJECT, Envelope
from workbench.ingest.metrics import IngestMetrics

SENSOR_KEYS = ("sensor_id", "sensorId", "sensorid", "device_id", "deviceId", "id")
RECENT_IDS = 200_000
"""Message ids remembered per process for duplicate detection (oldest forgotten first)."""


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
        self._recent: OrderedDict[str, None] = OrderedDict()
        self._last_seq: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def received(self, ingestion_id: str, messages: int = 1) -> None:
        """Messages handed over by a connector."""
        with self._lock:
            self._counts(ingestion_id).received += messages

    def written(self, rows: list[Envelope]) -> None:
        """Rows that just became durable in bronze."""
        m = self._metrics
        with self._lock:
            for env in rows:
                counts = self._counts(env.ingestion_id)
                counts.written += 1
                if env.payload_kind != OBJECT:
                    counts.flagged += 1
                if env.message_id in self._recent:
                    counts.duplicates += 1
                    m.duplicates.labels(m.pod, env.ingestion_id).inc()
                else:
                    self._recent[env.message_id] = None
                    if len(self._recent) > RECENT_IDS:
                        self._recent.popitem(last=False)
                    gap = self._gap(env)
                    if gap:
                        counts.gaps += gap
                        m.sequence_gaps.labels(m.pod, env.ingestion_id).inc(gap)

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
        if not isinstance(seq, int) or isinstance(seq, bool):
            return 0
        sensor = next((str(record[k]) for k in SENSOR_KEYS if k in record), "")
        key = (env.ingestion_id, sensor)
        last = self._last_seq.get(key)
        if last is None or seq > last:
            self._last_seq[key] = seq
        if last is None or seq <= last + 1:
            return 0  # first seen, next in line, or a late/reordered one
        return seq - last - 1
