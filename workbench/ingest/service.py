"""The ingest service: runs the sources, feeds the bronze writer, accounts for every message."""

from __future__ import annotations

import bisect
import gc
import importlib.abc
import logging
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

from prometheus_client import Histogram

from workbench.connectors.envelope import OBJECT, Envelope
from workbench.connectors.envelope_batch import EnvelopeBatch
from workbench.connectors.registry import ConnectorRegistry, SourceContext
from workbench.connectors.rest_push import parse_push_batch
from workbench.core.clock import utcnow
from workbench.core.errors import ServiceUnavailableError
from workbench.core.settings import Settings
from workbench.ingest.bronze_writer import BronzeWriter, Observer
from workbench.ingest.loss import LossLedger
from workbench.ingest.sources import SourceManager, SourceStore
from workbench.ingest.spill import LakeStorage, SpillingStorage
from workbench.metrics.ingestor import IngestMetrics

log = logging.getLogger(__name__)

DEFAULT_MQTT_SOURCE = "mqtt"
DEFAULT_PUSH_SOURCE = "http"


class _RefusePandas(importlib.abc.MetaPathFinder):
    """Makes ``import pandas`` fail while installed (see :func:`prepare_ingest_process`)."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> None:
        if fullname == "pandas":
            raise ModuleNotFoundError("pandas is not used by the ingest process", name=fullname)
        return None


def prepare_ingest_process() -> None:
    """Process-wide tuning for a dedicated ingest process; call once the app is built.

    Not for a process that hosts anything else (tests, notebooks): both steps change the
    whole interpreter.

    1. pyarrow checks whether pandas is installed the first time it converts a Python list
       (``pa.array``), only to recognise pandas arguments, and that import alone adds ~40 MB
       RSS to a process that never uses pandas. The check runs once here with pandas
       hidden, so pyarrow notes "no pandas" and never imports it; code that explicitly asks
       pyarrow for pandas still gets it.
    2. Garbage collection: the objects created by imports and start-up move to the permanent
       generation (``gc.freeze``), which full collections no longer scan, and a young
       collection waits for 50,000 net new container objects instead of 700. At full REST rate
       every push allocates ~3,000 containers that die after the flush (envelopes, results)
       and the collector ran ~200 times a second for ~12 % of the process's CPU; measured
       cyclic garbage is only ~200 objects a second, so the higher threshold holds at most
       a few MB of it.
    """
    import pyarrow as pa

    if "pandas" not in sys.modules:
        refuse = _RefusePandas()
        sys.meta_path.insert(0, refuse)
        try:
            pa.array([None])  # pyarrow's one-time pandas probe
        finally:
            sys.meta_path.remove(refuse)
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 10)


def observe_many(histogram: Histogram, counts: dict[float, int]) -> None:
    """``histogram.observe(value)`` ``n`` times for each ``value: n`` of ``counts``.

    prometheus_client has no weighted observe, and one ``observe`` (a lock and a bucket scan)
    costs ~1.7 µs: per record of a 1,000-record push that was ~8 % of the ingest process at
    full rate. This adds each distinct value's count to its bucket and sum directly. Falls back
    to plain ``observe`` calls if the (pinned) library's internals ever differ.
    """
    bounds = getattr(histogram, "_upper_bounds", None)
    buckets = getattr(histogram, "_buckets", None)
    total = getattr(histogram, "_sum", None)
    if bounds is None or buckets is None or total is None or len(bounds) != len(buckets):
        for value, n in counts.items():
            for _ in range(n):
                histogram.observe(value)
        return
    per_bucket: dict[int, int] = {}
    amount = 0.0
    for value, n in counts.items():
        index = bisect.bisect_left(bounds, value)  # the first bound >= value, as observe does
        per_bucket[index] = per_bucket.get(index, 0) + n
        amount += value * n
    total.inc(amount)
    for index, n in per_bucket.items():
        buckets[index].inc(n)


class IngestService:
    """Sources → envelopes → bronze, with metrics. No HTTP here (see ``api.ingest_app``).

    Args:
        settings: the workbench settings.
        storage: where bronze files go.
        metrics: the process's ingest metrics.
        registry: connector types.
        store: where sources are kept (the catalog).
        observer: called with each flush's rows once they are durable (metadata extraction).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        storage: LakeStorage,
        metrics: IngestMetrics,
        registry: ConnectorRegistry,
        store: SourceStore,
        observer: Observer | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.storage = storage
        self.ledger = LossLedger(metrics)
        self._observer = observer
        self.writer = BronzeWriter(storage, settings.ingest, metrics, observer=self._on_durable)
        context = SourceContext(
            sink=self.writer.add,
            time_fields=settings.ingest.time_fields,
            on_received=self.count_received,
            defaults={"mqtt": settings.mqtt, "default_mqtt_source": DEFAULT_MQTT_SOURCE},
        )
        self.sources = SourceManager(registry, store, context, metrics)

    def register_defaults(self) -> None:
        """At first start: one MQTT source on the configured topic, one REST push source."""
        self.sources.ensure(DEFAULT_MQTT_SOURCE, "mqtt", {"topic": self.settings.mqtt.topic})
        self.sources.ensure(DEFAULT_PUSH_SOURCE, "rest_push", {})

    def start(self) -> None:
        """Start the writer, then every enabled source."""
        self.writer.start()
        self.sources.start_all()

    def stop(self) -> bool:
        """Stop receiving, then flush everything; True if nothing was left unflushed."""
        self.sources.stop_all()
        flushed = self.writer.stop()
        if isinstance(self.storage, SpillingStorage):
            self.storage.close()  # what is still spilled is uploaded at the next start
        return flushed

    def _on_durable(self, batch: EnvelopeBatch) -> None:
        self.ledger.written_batch(batch)
        if self._observer is not None:
            self._observer(batch)

    def count_received(
        self, source_type: str, iid: str, size: int, envelopes: list[Envelope]
    ) -> None:
        """Received-side accounting shared by every connector."""
        m = self.metrics
        m.received.labels(m.pod, source_type, iid).inc()
        self.ledger.received(iid)
        m.bytes_received.labels(m.pod, source_type).inc(size)
        failures: dict[str, int] = {}
        delays: dict[float, int] = {}
        now = utcnow()
        last_time, last_delay = None, 0.0
        for env in envelopes:
            if env.payload_kind != OBJECT:
                failures[env.payload_kind] = failures.get(env.payload_kind, 0) + 1
            event_time = env.event_time
            if event_time is not None:
                # Records of one batch often share their time (one parsed object per distinct
                # string): compute each delay once and count it.
                if event_time is not last_time:
                    last_time = event_time
                    last_delay = max(0.0, (now - event_time).total_seconds())
                delays[last_delay] = delays.get(last_delay, 0) + 1
            elif env.event_time_raw is not None:
                failures["unparsable_time"] = failures.get("unparsable_time", 0) + 1
        if delays:
            observe_many(m.timestamp_delay.labels(m.pod, source_type), delays)
        # One labelled increment per kind, not per record: pushes carry thousands of records.
        for kind, count in failures.items():
            m.failed.labels(m.pod, source_type, iid, kind).inc(count)

    def count_received_batch(self, batch: EnvelopeBatch, size: int) -> None:
        """:meth:`count_received` for a pushed batch, column by column: the same counts."""
        m = self.metrics
        source_type, iid = batch.source_type, batch.ingestion_id
        m.received.labels(m.pod, source_type, iid).inc()
        self.ledger.received(iid)
        m.bytes_received.labels(m.pod, source_type).inc(size)
        failures: dict[str, int] = {}
        if batch.flagged:
            failures = dict(Counter(k for k in batch.kinds if k != OBJECT))
        now = utcnow()
        delays: dict[float, int] = {}
        # Equal times (one parsed object per distinct string) are counted, then each distinct
        # one's delay computed once.
        for event_time, n in Counter(batch.event_times).items():
            if event_time is not None:
                delay = max(0.0, (now - event_time).total_seconds())
                delays[delay] = delays.get(delay, 0) + n
        raws = batch.event_times_raw
        if raws.count(None) != len(raws):
            unparsable = sum(
                1
                for raw, moment in zip(raws, batch.event_times, strict=True)
                if moment is None and raw is not None
            )
            if unparsable:
                failures["unparsable_time"] = unparsable
        if delays:
            observe_many(m.timestamp_delay.labels(m.pod, source_type), delays)
        for kind, count in failures.items():
            m.failed.labels(m.pod, source_type, iid, kind).inc(count)

    def push(
        self,
        source: str,
        body: bytes,
        content_type: str,
        on_durable: Callable[[], None],
        *,
        ingestion_id: str | None = None,
    ) -> EnvelopeBatch:
        """Accept a pushed body for ``source``; ``on_durable`` runs once it is in bronze.

        Returns the body's rows (``rest_push.push_answer`` turns them into the answer); they
        are read, never changed, by the writer from here on.

        Args:
            source: the REST push source's name.
            body: the request body.
            content_type: the request's content type (NDJSON or JSON).
            on_durable: called once every record is in bronze.
            ingestion_id: the source's dataset when the caller has just looked it up (the HTTP
                route does, for the token): saves a second catalog read per request.

        Raises:
            NotFoundError: the source is not a registered REST push source.
            ServiceUnavailableError: the bronze writer has failed; the sender keeps its data.
        """
        failure = self.writer.failure
        if failure is not None:
            raise ServiceUnavailableError(
                f"the bronze writer has failed ({failure.code}: {failure.message}) and accepts "
                "nothing until an operator fixes it; send again later",
                cause=failure.code,
            )
        iid = ingestion_id or self.sources.push_ingestion_id(source)[0]
        batch = parse_push_batch(
            body,
            content_type=content_type,
            ingestion_id=iid,
            endpoint=f"/api/push/{source}",
            received_at=utcnow(),
            time_fields=self.settings.ingest.time_fields,
        )
        self.count_received_batch(batch, len(body))
        self.writer.add(batch, on_durable)
        return batch

    def health(self) -> dict[str, Any]:
        """Sources, buffers, the writer, the spill and the last storage error.

        ``degraded`` while writes fail (and are retried) or batches wait in the spill: nothing
        is lost, but the object store is not receiving. ``failed`` once the bronze writer has
        stopped on an error retrying cannot clear (``writer.error`` says which, with its code):
        its rows are kept unacknowledged and nothing more is accepted.
        """
        rows, size = self.writer.buffered()
        failure = self.writer.failure
        report: dict[str, Any] = {
            "status": "ok",
            "sources": [h.to_dict() for h in self.sources.health()],
            "buffer": {"rows": rows, "bytes": size},
            "writer": {
                "state": "running" if failure is None else "failed",
                "error": None if failure is None else failure.to_dict(),
            },
            "last_error": self.writer.last_error,
        }
        if isinstance(self.storage, SpillingStorage):
            depth = self.storage.depth()
            m = self.metrics
            m.spill_files.labels(m.pod).set(depth.files)
            m.spill_bytes.labels(m.pod).set(depth.bytes)
            report["spill"] = {
                "files": depth.files,
                "bytes": depth.bytes,
                "last_error": self.storage.last_error,
            }
            if depth.files:
                report["status"] = "degraded"
                report["last_error"] = report["last_error"] or self.storage.last_error
        if self.writer.last_error is not None:
            report["status"] = "degraded"
        if failure is not None:
            report["status"] = "failed"
        return report
