"""Metadata extraction: fold what reached bronze into the catalog, in the background.

The bronze writer calls :meth:`MetadataExtractor.observe` with the rows it made durable. Counts
are exact; observations are merged in memory (bounded by the number of field paths) and written
to the catalog every ``batch_size`` records or ``batch_seconds``, on this object's own thread, so
a slow catalog never slows ingestion.

Distinct sensors are counted from every record (not only the sampled ones) into a bounded
sketch per dataset (``sketch.DistinctSketch``); a record's sensor id is found as the
normalization rules name it (``sensor_ids``), with the rules re-read by the writer thread at
most every :data:`SENSOR_RULES_SECONDS`, never by :meth:`MetadataExtractor.observe`.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta
from typing import Any

from workbench.catalog.migrations import DEFAULT_RULES
from workbench.catalog.records import NormalizationRule
from workbench.catalog.schemas import DatasetObservation
from workbench.catalog.sensor_ids import SENSOR_KEY, SensorIdReader, SensorKeys, as_text
from workbench.catalog.store import Catalog
from workbench.connectors.envelope import Envelope
from workbench.connectors.envelope_batch import EnvelopeBatch
from workbench.core.clock import utcnow

log = logging.getLogger(__name__)

FULL_INFERENCE_RECORDS = 500
"""Records per dataset and batch whose fields are all inferred..."""
SAMPLE_STRIDE = 20
"""...then one record in this many."""
SENSOR_UNKNOWN_SCANS = 8
"""Records per dataset and batch whose known sensor-id spellings found nothing that are scanned
for a new spelling (a dataset without sensor ids costs no more than this)."""
SENSOR_RULES_SECONDS = 5.0
"""How often the writer thread re-reads the normalization rules that name the sensor id."""


class MetadataExtractor:
    """Accumulates dataset observations and writes them to the catalog in batches.

    Args:
        catalog: where observations go.
        batch_size: write after this many records...
        batch_seconds: ...or this many seconds, whichever comes first.
        stale_seconds: ``settings.catalog.field_stale_seconds``; None never sweeps.
    """

    def __init__(
        self,
        catalog: Catalog,
        *,
        batch_size: int,
        batch_seconds: float,
        stale_seconds: float | None = None,
    ) -> None:
        self._catalog = catalog
        self._stale_after = None if stale_seconds is None else timedelta(seconds=stale_seconds)
        # Sweeping takes the catalog's write lock, so not every round: a tenth of the stale
        # time (capped at a minute) is precise enough for "not seen for N".
        self._sweep_every = min(60.0, stale_seconds / 10) if stale_seconds else 0.0
        self._next_sweep = 0.0
        self._batch_size = batch_size
        self._batch_seconds = batch_seconds
        self._pending: dict[str, DatasetObservation] = {}
        # Until the catalog's rules are read (start()), the seed defaults name the sensor id.
        self._sensor_keys = SensorKeys.from_rules(_seed_sensor_rules())
        self._readers: dict[str, SensorIdReader] = {}
        self._next_rules = 0.0
        self._pending_records = 0
        self._lock = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None

    def observe(self, rows: list[Envelope] | EnvelopeBatch) -> None:
        """Fold durable rows into the pending observations (cheap, never blocks on the DB).

        Column by column, one dataset at a time (a flush is one batch of one dataset): counts,
        sizes and times by list operations, sensor ids by dictionary look-ups in list
        comprehensions, and only the sampled records' fields inferred
        (:meth:`DatasetObservation.add_batch`). The result is what folding the rows one by one
        would give.
        """
        batches = [rows] if isinstance(rows, EnvelopeBatch) else EnvelopeBatch.of_datasets(rows)
        with self._lock:
            for batch in batches:
                if len(batch):
                    self._observe_batch(batch)
                self._pending_records += len(batch)
            if self._pending_records >= self._batch_size:
                self._lock.notify_all()

    def _observe_batch(self, batch: EnvelopeBatch) -> None:
        obs, reader, sensor_ids = self._batch_entry(batch)
        records = batch.records
        objects = [r for r in records if r is not None]
        read_sensor_ids(reader, objects, sensor_ids)
        # Counts are exact; field inference samples once a batch has seen plenty, so
        # extraction keeps up with the full ingest rate (types still widen over time). Record i
        # is inferred while the observation had seen fewer than FULL_INFERENCE_RECORDS, then
        # when the count it had seen is a multiple of SAMPLE_STRIDE.
        n, seen = len(records), obs.records
        full = max(0, min(n, FULL_INFERENCE_RECORDS - seen))
        start = full + (-(seen + full)) % SAMPLE_STRIDE
        sampled = records[:full] + records[start::SAMPLE_STRIDE]
        inferred = [r for r in sampled if r is not None]
        obs.add_batch(
            inferred,
            records=n,
            size=batch.size,
            first_seen=min(batch.received_at),
            last_seen=max(batch.received_at),
            skipped=len(objects) - len(inferred),
        )
        obs.sensors.update(sensor_ids)

    def _batch_entry(
        self, batch: EnvelopeBatch
    ) -> tuple[DatasetObservation, SensorIdReader, set[str]]:
        iid = batch.ingestion_id
        obs = self._pending.get(iid)
        if obs is None:
            obs = self._pending[iid] = DatasetObservation(iid, batch.source_type)
        reader = self._readers.get(iid)
        if reader is None:
            order = self._sensor_keys.order(iid)
            reader = self._readers[iid] = SensorIdReader(order)
        reader.scans_left = SENSOR_UNKNOWN_SCANS
        # The batch's first record is scanned in full: a new spelling is learned even where a
        # known one would have answered. (It is read again with the others: a repeated id is
        # harmless.)
        record = batch.records[0]
        first = reader.read(record) if record is not None else None
        return obs, reader, set() if first is None else {first}

    def refresh_sensor_rules(self) -> None:
        """Re-read the normalization rules that name the sensor id (the writer thread does,
        every :data:`SENSOR_RULES_SECONDS`); on a catalog error the current ones stay."""
        self._next_rules = time.monotonic() + SENSOR_RULES_SECONDS
        try:
            keys = SensorKeys.from_rules(self._catalog.list_rules())
        except Exception:  # counting with the rules read last time beats not counting
            log.exception("reading normalization rules failed; will retry")
            return
        with self._lock:
            if keys != self._sensor_keys:
                self._sensor_keys, self._readers = keys, {}

    def start(self) -> None:
        """Read the rules and start the background writer."""
        self.refresh_sensor_rules()
        self._thread = threading.Thread(target=self._run, name="metadata", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Write what is pending and stop."""
        with self._lock:
            self._stopping = True
            self._lock.notify_all()
        if self._thread:
            self._thread.join(timeout=30)
        self.write_pending()

    def write_pending(self) -> None:
        """Write the pending observations now; on failure they are merged back for next time."""
        with self._lock:
            batch, self._pending, self._pending_records = self._pending, {}, 0
        if not batch:
            return
        try:
            self._catalog.record_observations(batch.values())
        except Exception:  # keep the observations and retry next round
            log.exception("writing metadata failed datasets=%s; will retry", len(batch))
            with self._lock:
                for iid, obs in batch.items():
                    newer = self._pending.get(iid)
                    if newer is not None:
                        obs.merge(newer)
                    self._pending[iid] = obs

    def sweep_stale(self) -> None:
        """Log ``not_seen`` events for fields missing longer than ``stale_seconds``."""
        if self._stale_after is None:
            return
        try:
            logged = self._catalog.sweep_stale_fields(utcnow(), self._stale_after)
        except Exception:  # the next round sweeps again; ingestion must not stop for this
            log.exception("sweeping stale fields failed; will retry")
            return
        if logged:
            log.info("fields not seen logged count=%s", logged)

    def _run(self) -> None:
        deadline = time.monotonic() + self._batch_seconds
        while True:
            with self._lock:
                while (
                    not self._stopping
                    and self._pending_records < self._batch_size
                    and time.monotonic() < deadline
                ):
                    self._lock.wait(max(0.0, deadline - time.monotonic()))
                if self._stopping:
                    return
            self.write_pending()
            if time.monotonic() >= self._next_rules:
                self.refresh_sensor_rules()
            if time.monotonic() >= self._next_sweep:
                self._next_sweep = time.monotonic() + self._sweep_every
                self.sweep_stale()
            deadline = time.monotonic() + self._batch_seconds


def read_sensor_ids(reader: SensorIdReader, records: list[dict[str, Any]], found: set[str]) -> None:
    """Add the sensor ids of ``records`` (objects, in order) to ``found``, as reading them one
    by one with ``reader`` would.

    Every record's id counts. The known spellings are looked up for all records at once, best
    first; only from the first record none of them answers on is the batch read record by
    record, since scanning that record may learn a spelling the records after it are read by.
    """
    if reader.nested:  # nested paths are found by scanning every record
        for record in records:
            sensor_id = reader.read(record)
            if sensor_id is not None:
                found.add(sensor_id)
        return
    spellings = reader.spellings
    values: list[Any] = [None] * len(records)
    if spellings:
        values = [r.get(spellings[0]) for r in records]
        for key in spellings[1:]:
            if None not in values:
                break
            values = [
                v if v is not None else r.get(key) for v, r in zip(values, records, strict=True)
            ]
    try:
        unread = values.index(None)
    except ValueError:
        unread = len(values)
    head = values[:unread]
    try:
        distinct: set[Any] | None = set(head)
    except TypeError:  # an object or array as the id
        distinct = None
    if distinct is not None and all(type(v) is str for v in distinct):
        found |= distinct
    else:
        found.update(v if type(v) is str else as_text(v) for v in head)
    for record in records[unread:]:
        # SensorIdReader.read(scan=False) inlined, then a scan for a new spelling.
        for key in reader.spellings:
            value = record.get(key)
            if value is not None:
                found.add(value if type(value) is str else as_text(value))
                break
        else:
            sensor_id = reader.read_unknown(record)
            if sensor_id is not None:
                found.add(sensor_id)


def _seed_sensor_rules() -> list[NormalizationRule]:
    raw_keys = DEFAULT_RULES[SENSOR_KEY]
    return [NormalizationRule(-i, raw, SENSOR_KEY, priority=i) for i, raw in enumerate(raw_keys)]
