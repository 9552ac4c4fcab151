"""The bronze writer: per-dataset buffers flushed to Parquet by rows, bytes or age.

Connectors call :meth:`BronzeWriter.add` with envelopes (a REST push: its rows as one
:class:`~workbench.connectors.envelope_batch.EnvelopeBatch`) and an ``on_durable`` callback
(the MQTT ack, the HTTP response). The callback runs only after every row of the call is in a
file that was fsynced and atomically renamed into place, and the flush's entry in the bronze
manifest (:mod:`workbench.lake.manifest`) is durable too. When buffers hold more than
``max_buffer_bytes``, ``add`` blocks: connectors stop reading instead of dropping.

A failed flush keeps its rows; whether it is retried is the error's to say
(:func:`~workbench.core.errors.should_retry`). A transient one (the store away) is retried
with backoff up to 10 s, for as long as it lasts. An unknown one (a bug, a buffer Arrow cannot
convert) is retried :data:`~workbench.core.errors.UNKNOWN_ATTEMPTS` times in a row. Then, or at
once for a terminal one (a broken storage config), the writer **fails**: it writes nothing
more, keeps every buffered row in memory unacknowledged (senders still hold them: MQTT
redelivers, a push sender gets no answer), ``add`` blocks like a full buffer, and
:attr:`BronzeWriter.failure` holds the error with its code for health, metrics
(``workbench_component_failures_total{component="bronze_writer"}``) and logs.
An operator recovers by fixing the cause and restarting the ingest service: nothing kept was
acknowledged, so the broker redelivers it and push senders, who got no answer, send it again.
(:meth:`BronzeWriter.resume` retries the kept rows in-process; no route calls it yet.) The
flusher thread never dies.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from workbench.connectors.envelope import Envelope
from workbench.connectors.envelope_batch import EnvelopeBatch, batches_of, by_dataset
from workbench.core.errors import (
    UNKNOWN_ATTEMPTS,
    InternalError,
    WorkbenchError,
    error_code,
    is_terminal,
    should_retry,
)
from workbench.core.settings import IngestSettings
from workbench.lake.manifest import ManifestFile, ManifestWriter
from workbench.lake.storage import LakeStorage
from workbench.metrics.ingestor import IngestMetrics

log = logging.getLogger(__name__)

_TS = pa.timestamp("us", tz="UTC")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

#: Columns of every bronze file. ``ingestion_id``, and the arrival ``date`` and ``hour``, live in
#: the path.
BRONZE_FILE_SCHEMA = pa.schema(
    [
        ("message_id", pa.string()),
        ("source_type", pa.string()),
        ("topic", pa.string()),
        ("received_at", _TS),
        ("event_time", _TS),
        ("event_time_raw", pa.string()),
        ("payload", pa.string()),
        ("payload_kind", pa.string()),
        ("error", pa.string()),
        ("meta", pa.string()),
    ]
)

Observer = Callable[[EnvelopeBatch], None]
"""Called with a flush's rows (one dataset) once they are durable."""

#: An ``add`` of at least this many rows is a batch whose sender is waiting for the answer (a
#: REST push body, a poll page): its buffer is flushed as soon as the flusher is free (group
#: commit) instead of after ``flush_seconds``. Such a batch is file-sized already, so this makes
#: no small files; single-message adds (MQTT) still wait for rows, bytes or age.
GROUP_COMMIT_ROWS = 500


@dataclass
class _Buffer:
    parts: list[EnvelopeBatch | list[Envelope]] = field(default_factory=list)
    """What ``add`` buffered, in order: pushed batches as they came, consecutive single
    envelopes gathered in one list. One batch of all of them is built at flush time."""
    count: int = 0
    """Rows in ``parts``."""
    source_type: str = ""
    callbacks: list[Callable[[], None]] = field(default_factory=list)
    bytes: int = 0
    since: float = 0.0
    waiting_batch: bool = False
    """A batch of at least ``GROUP_COMMIT_ROWS`` rows waits: flush when the flusher is free."""

    def append(self, rows: EnvelopeBatch | list[Envelope]) -> None:
        """Buffer ``rows`` (of this buffer's dataset) after what is already here."""
        if not self.parts:
            self.source_type = (
                rows.source_type if isinstance(rows, EnvelopeBatch) else rows[0].source_type
            )
        last = self.parts[-1] if self.parts else None
        if isinstance(rows, EnvelopeBatch):
            self.parts.append(rows)
        elif isinstance(last, list):
            last.extend(rows)
        else:
            self.parts.append(list(rows))
        self.count += len(rows)


class _Countdown:
    """Runs ``callback`` on the n-th call: one ``add`` spanning several datasets is durable
    only when each of their buffers has been flushed."""

    def __init__(self, n: int, callback: Callable[[], None]) -> None:
        self._left = n
        self._callback = callback
        self._lock = threading.Lock()

    def __call__(self) -> None:
        with self._lock:
            self._left -= 1
            fire = self._left == 0
        if fire:
            self._callback()


def partitions(table: pa.Table) -> list[tuple[tuple[str, str], pa.Table]]:
    """A bronze table split by arrival hour (``received_at``) into ``(date, hour)`` parts.

    Bronze is partitioned by when data arrived, never by its event time: a flush is one file
    per dataset (two when it spans an hour boundary) however old its readings are, and a new
    file only ever lands in the newest partitions. A replay of a year of readings would
    otherwise write one small file per event hour. The event time stays a column.

    Computed in Arrow, one formatted ``(date, hour)`` per distinct hour.
    """
    if table.num_rows == 0:
        return []
    hours = pc.floor_temporal(table["received_at"], unit="hour")
    distinct = pc.unique(hours)
    if len(distinct) == 1:
        return [(_date_hour(distinct[0].as_py()), table)]
    return [
        (_date_hour(value), table.filter(pc.equal(hours, pa.scalar(value, _TS))))
        for value in sorted(distinct.to_pylist())
    ]


def _date_hour(moment: datetime) -> tuple[str, str]:
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d"), moment.strftime("%H")


def timestamp_array(values: Sequence[datetime | None]) -> pa.Array:
    """Aware datetimes as a UTC microsecond timestamp array.

    pyarrow converts each datetime object on its own (~0.8 µs); the rows of one batch share a
    few objects (one receive time per push, one parsed object per distinct time string), so
    each distinct object is converted once here and the column is built from integers: the
    flusher's largest Python cost before. A column of one value (a push's receive time, its
    readings' shared time) is converted once and repeated by Arrow.
    """
    n = len(values)
    first = values[0] if n else None
    if values.count(first) == n:  # also all None (or empty)
        if first is None:
            return pa.nulls(n, _TS)
        try:
            return pa.repeat(pa.scalar((first - _EPOCH) // _MICROSECOND, _TS), n)
        except TypeError:  # a naive datetime: let pyarrow apply its own rule
            return pa.array(values, _TS)
    micros: list[int | None] = []
    seen: dict[int, int] = {}
    try:
        for value in values:
            if value is None:
                micros.append(None)
                continue
            us = seen.get(id(value))  # the list keeps every object alive: ids stay unique
            if us is None:
                us = seen[id(value)] = (value - _EPOCH) // _MICROSECOND
            micros.append(us)
    except TypeError:  # a naive datetime: let pyarrow apply its own rule
        return pa.array(values, _TS)
    return pa.array(micros, _TS)


def to_arrow(rows: list[Envelope]) -> pa.Table:
    """Envelopes as a bronze table."""
    if not rows:
        return BRONZE_FILE_SCHEMA.empty_table()
    return batch_table(EnvelopeBatch.from_envelopes(rows))


def batch_table(batch: EnvelopeBatch) -> pa.Table:
    """A batch as a bronze table, each column converted from its list at once."""
    dumped: dict[tuple[Any, ...], str] = {}
    by_object: dict[int, str] = {}

    def meta_text(meta: dict[str, Any]) -> str:
        # The same few small meta dicts repeat across a buffer (MQTT qos/retain/dup): dump each
        # distinct one once.
        if not meta:
            return "{}"
        try:
            key = tuple((k, type(v), v) for k, v in meta.items())  # True == 1
            text = dumped.get(key)
        except TypeError:  # an unhashable value
            return json.dumps(meta)
        if text is None:
            text = dumped[key] = json.dumps(meta)
        return text

    metas: list[str | None]
    first = batch.metas[0] if batch.metas else None
    if first is not None and all(meta is first for meta in batch.metas):
        metas = [meta_text(first)] * len(batch.metas)  # a push: one dict for all its rows
    else:
        metas = []
        for meta in batch.metas:
            # MQTT messages repeat a few small metas: look each object up once.
            text = by_object.get(id(meta))  # the batch keeps every dict alive: ids are unique
            if text is None:
                text = by_object[id(meta)] = meta_text(meta)
            metas.append(text)
    return pa.Table.from_arrays(
        [
            string_array(batch.message_ids),
            string_array(batch.source_types),
            string_array(batch.topics),
            timestamp_array(batch.received_at),
            timestamp_array(batch.event_times),
            string_array(batch.event_times_raw),
            string_array(batch.payloads),
            string_array(batch.kinds),
            string_array(batch.errors),
            string_array(metas),
        ],
        schema=BRONZE_FILE_SCHEMA,
    )


def string_array(values: Sequence[str | None]) -> pa.Array:
    """A string column; one repeated value (a push's source type, topic, kind, no error) is
    converted once and repeated by Arrow, instead of once per row."""
    n = len(values)
    if n and values.count(values[0]) == n:
        first = values[0]
        if first is None:
            return pa.nulls(n, pa.string())
        return pa.repeat(pa.scalar(first, pa.string()), n)
    return pa.array(values, pa.string())


class BronzeWriter:
    """Buffers envelopes per ``ingestion_id`` and flushes them durably to bronze."""

    def __init__(
        self,
        storage: LakeStorage,
        settings: IngestSettings,
        metrics: IngestMetrics,
        *,
        observer: Observer | None = None,
        manifest: ManifestWriter | None = None,
    ) -> None:
        self._storage = storage
        self.manifest = manifest or ManifestWriter(storage)
        """Where each flush's files are recorded once durable (one writer id per writer)."""
        self._settings = settings
        self._metrics = metrics
        self._observer = observer
        self._buffers: dict[str, _Buffer] = {}
        self._buffered_bytes = 0
        self._lock = threading.Condition()
        self._stopping = False
        self._force = False
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None
        self._failure: WorkbenchError | None = None

    # -- producer side -----------------------------------------------------------------------

    def add(
        self,
        envelopes: list[Envelope] | EnvelopeBatch,
        on_durable: Callable[[], None] | None = None,
    ) -> None:
        """Buffer ``envelopes``; ``on_durable`` runs once all of them are in bronze files.

        Blocks while the buffers are full, and while the writer has failed (back-pressure).
        """
        if not envelopes:
            if on_durable:
                on_durable()
            return
        size = envelopes.size if isinstance(envelopes, EnvelopeBatch) else _size(envelopes)
        with self._lock:
            while not self._stopping and (
                self._failure is not None
                or (
                    self._buffered_bytes + size > self._settings.max_buffer_bytes
                    and self._buffered_bytes > 0
                )
            ):
                self._lock.wait(0.1)
            by_id = _by_dataset(envelopes)
            done = (
                on_durable
                if on_durable is None or len(by_id) == 1
                else _Countdown(len(by_id), on_durable)
            )
            settings = self._settings
            wake = False
            for iid, rows in by_id.items():
                buf = self._buffers.setdefault(iid, _Buffer())
                if not buf.count:
                    buf.since = time.monotonic()
                buf.append(rows)
                buf.bytes += rows.size if isinstance(rows, EnvelopeBatch) else _size(rows)
                if len(rows) >= GROUP_COMMIT_ROWS:
                    buf.waiting_batch = True
                if done is not None:
                    buf.callbacks.append(done)
                wake = wake or (
                    buf.waiting_batch
                    or buf.count >= settings.flush_rows
                    or buf.bytes >= settings.flush_bytes
                )
            self._buffered_bytes += size
            # Wake the flusher only when a buffer just became due: waking it on every message
            # (MQTT adds one row at a time) cost more than the writing itself. Age is polled.
            if wake:
                self._lock.notify_all()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the flusher thread."""
        self._thread = threading.Thread(
            target=self._run_flusher, name="bronze-flusher", daemon=True
        )
        self._thread.start()

    def flush(self, timeout: float = 60.0) -> bool:
        """Flush everything buffered now; True when the buffers are empty.

        False at the timeout, or as soon as the writer has failed (:attr:`failure`).
        """
        deadline = time.monotonic() + timeout
        with self._lock:
            self._force = True
            self._lock.notify_all()
            try:
                while self._buffered_bytes > 0 or any(b.count for b in self._buffers.values()):
                    if self._failure is not None or time.monotonic() > deadline:
                        return False
                    self._lock.wait(0.05)
            finally:
                # Also on a timeout: a force left set would flush every buffer at each pass.
                self._force = False
        return True

    @property
    def failure(self) -> WorkbenchError | None:
        """The error that made the writer fail (it writes nothing more), None while it works."""
        return self._failure

    def resume(self) -> None:
        """Clear a failure: the flusher tries the kept rows again (after fixing the cause)."""
        with self._lock:
            if self._failure is not None:
                log.info("bronze writer resumed code=%s", self._failure.code)
            self._failure = None
            self._lock.notify_all()

    def stop(self, timeout: float = 60.0) -> bool:
        """Flush everything and stop the flusher; True if nothing was left behind."""
        flushed = self.flush(timeout)
        with self._lock:
            self._stopping = True
            self._lock.notify_all()
        if self._thread:
            self._thread.join(timeout=5)
        return flushed

    def buffered(self) -> tuple[int, int]:
        """``(rows, bytes)`` waiting in buffers."""
        with self._lock:
            return sum(b.count for b in self._buffers.values()), self._buffered_bytes

    # -- flusher -----------------------------------------------------------------------------

    def _due(self, now: float) -> list[str]:
        s = self._settings
        return [
            iid
            for iid, buf in self._buffers.items()
            if buf.count
            and (
                self._force
                or buf.waiting_batch
                or buf.count >= s.flush_rows
                or buf.bytes >= s.flush_bytes
                or now - buf.since >= s.flush_seconds
            )
        ]

    def _run_flusher(self) -> None:
        backoff = 0.0
        failures = 0  # consecutive failed writes
        while True:
            with self._lock:
                if self._stopping:
                    return
                due = [] if self._failure is not None else self._due(time.monotonic())
                if not due:
                    self._lock.wait(0.05)
                    continue
                taken = {iid: self._buffers.pop(iid) for iid in due}
            for iid, buf in taken.items():
                if self._failure is not None:
                    self._restore(iid, buf)  # kept, unacknowledged, for resume()
                    continue
                try:
                    batch = self._write(iid, buf)
                except Exception as err:  # noqa: BLE001 - the flusher must survive any failure
                    failures += 1
                    self.last_error = f"{error_code(err)}: {type(err).__name__}: {err}"
                    self._metrics.failed.labels(
                        self._metrics.pod, buf.source_type, iid, "storage"
                    ).inc(buf.count)
                    self._restore(iid, buf)
                    if not should_retry(err, failures, unknown_attempts=UNKNOWN_ATTEMPTS):
                        self._fail(iid, err, failures)
                        failures, backoff = 0, 0.0
                        continue
                    log.error(
                        "bronze flush failed ingestion_id=%s rows=%s failures=%d error=%s; "
                        "will retry",
                        iid,
                        buf.count,
                        failures,
                        self.last_error,
                    )
                    backoff = min(max(backoff * 2, 0.2), 10.0)
                    time.sleep(backoff)
                    continue
                backoff, failures = 0.0, 0
                self.last_error = None
                with self._lock:
                    self._buffered_bytes -= buf.bytes
                    self._lock.notify_all()
                for callback in buf.callbacks:
                    callback()
                self._observe(iid, batch)
            self._update_gauges()

    def _fail(self, iid: str, err: Exception, failures: int) -> None:
        """Stop writing: retrying ``err`` cannot help (terminal, or unknown and persistent)."""
        failure = (
            err
            if isinstance(err, WorkbenchError) and is_terminal(err)
            else InternalError(
                f"bronze flush failed {failures} times in a row: {type(err).__name__}: {err}",
                ingestion_id=iid,
                cause=error_code(err),
            )
        )
        # Counted before it is visible: whoever sees the failure sees it counted too.
        m = self._metrics
        m.component_failures.labels(m.pod, "bronze_writer", failure.code).inc()
        with self._lock:
            self._failure = failure
            self._lock.notify_all()
        rows, size = self.buffered()
        log.error(
            "bronze writer failed, not retrying code=%s ingestion_id=%s error=%s; keeping "
            "rows=%s bytes=%s in memory unacknowledged and accepting nothing until resumed",
            failure.code,
            iid,
            failure.message,
            rows,
            size,
        )

    def _restore(self, iid: str, buf: _Buffer) -> None:
        """Put a failed buffer back in front of anything that arrived meanwhile."""
        with self._lock:
            newer = self._buffers.get(iid)
            if newer is not None:
                buf.parts.extend(newer.parts)
                buf.count += newer.count
                buf.callbacks.extend(newer.callbacks)
                buf.bytes += newer.bytes
                buf.waiting_batch = buf.waiting_batch or newer.waiting_batch
            self._buffers[iid] = buf

    def _write(self, iid: str, buf: _Buffer) -> EnvelopeBatch:
        """Write a buffer's rows durably and record them in the manifest; returns them as
        one batch (for the observer)."""
        parts = batches_of(buf.parts)
        batch = EnvelopeBatch.concat(parts)
        # One table per part, joined without copying: a push's columns of one value (its
        # receive time, topic...) stay one value each. The file is the same as from one table.
        tables = [batch_table(part) for part in parts]
        whole = tables[0] if len(tables) == 1 else pa.concat_tables(tables)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        m = self._metrics
        files = []
        for (date, hour), table in partitions(whole):
            path = (
                f"bronze/ingestion_id={iid}/date={date}/hour={hour}/"
                f"part-{stamp}-{uuid.uuid4().hex[:12]}.parquet"
            )
            written = self._storage.write_parquet(path, table)
            files.append(ManifestFile(path, table.num_rows, written))
            m.bytes_written.labels(m.pod, "bronze").inc(written)
            m.files_written.labels(m.pod, "bronze").inc()
        # After the files, before the acks: a crash in between leaves files no entry names,
        # which no reader sees, and messages nobody acknowledged, which come again.
        self.manifest.record(files)
        m.processed.labels(m.pod, buf.source_type, iid).inc(len(batch))
        return batch

    def _observe(self, iid: str, batch: EnvelopeBatch) -> None:
        # Called after the durability callbacks: acks and HTTP answers never wait for metadata.
        if self._observer is None:
            return
        try:
            self._observer(batch)
        except Exception:  # metadata must never block or fail ingestion
            log.exception("metadata observer failed ingestion_id=%s", iid)

    def _update_gauges(self) -> None:
        m = self._metrics
        with self._lock:
            snapshot = {iid: (b.count, b.bytes) for iid, b in self._buffers.items()}
        for iid, (rows, size) in snapshot.items():
            m.buffer_messages.labels(m.pod, iid).set(rows)
            m.buffer_bytes.labels(m.pod, iid).set(size)


def _size(rows: list[Envelope]) -> int:
    return sum(len(e.payload) for e in rows)


def _by_dataset(
    rows: list[Envelope] | EnvelopeBatch,
) -> dict[str, list[Envelope]] | dict[str, EnvelopeBatch]:
    """``rows`` split by dataset, each part in order (a batch is one dataset already)."""
    if isinstance(rows, EnvelopeBatch):
        return {rows.ingestion_id: rows}
    return by_dataset(rows)
