"""The ingest service: runs the sources, feeds the bronze writer, accounts for every message."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from workbench.connectors.envelope import OBJECT, Envelope
from workbench.connectors.registry import ConnectorRegistry, SourceContext
from workbench.connectors.rest_push import RecordResult, parse_push_body
from workbench.core.clock import utcnow
from workbench.core.settings import Settings
from workbench.ingest.bronze import BronzeWriter, Observer
from workbench.ingest.loss import LossLedger
from workbench.ingest.metrics import IngestMetrics
from workbench.ingest.sources import SourceManager, SourceStore
from workbench.ingest.storage import LakeStorage, SpillingStorage

log = logging.getLogger(__name__)

DEFAULT_MQTT_SOURCE = "mqtt"
DEFAULT_PUSH_SOURCE = "http"


class IngestService:
    """Sources → envelopes → bronze, with metrics. No HTTP here (see ``api.ingest_app``).

    Args:
        settings: the workbench settings.
        storage: where bronze files go.
        metrics: the process's ingest metrics.
        registry: connector types.
        store: where sources are kept (the catalog).
        observer: called with rows once they are durable (metadata extraction).
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

    def _on_durable(self, rows: list[Envelope]) -> None:
        self.ledger.written(rows)
        if self._observer is not None:
            self._observer(rows)

    def count_received(
        self, source_type: str, iid: str, size: int, envelopes: list[Envelope]
    ) -> None:
        """Received-side accounting shared by every connector."""
        m = self.metrics
        m.received.labels(m.pod, source_type, iid).inc()
        self.ledger.received(iid)
        m.bytes_received.labels(m.pod, source_type).inc(size)
        failures: dict[str, int] = {}
        delay = m.timestamp_delay.labels(m.pod, source_type)
        now = utcnow()
        for env in envelopes:
            if env.payload_kind != OBJECT:
                failures[env.payload_kind] = failures.get(env.payload_kind, 0) + 1
            if env.event_time is not None:
                delay.observe(max(0.0, (now - env.event_time).total_seconds()))
            elif env.event_time_raw is not None:
                failures["unparsable_time"] = failures.get("unparsable_time", 0) + 1
        # One labelled increment per kind, not per record: pushes carry thousands of records.
        for kind, count in failures.items():
            m.failed.labels(m.pod, source_type, iid, kind).inc(count)

    def push(
        self, source: str, body: bytes, content_type: str, on_durable: Callable[[], None]
    ) -> list[RecordResult]:
        """Accept a pushed body for ``source``; ``on_durable`` runs once it is in bronze.

        Raises:
            NotFoundError: the source is not a registered REST push source.
        """
        iid, _config = self.sources.push_ingestion_id(source)
        envelopes, results = parse_push_body(
            body,
            content_type=content_type,
            ingestion_id=iid,
            endpoint=f"/api/push/{source}",
            received_at=utcnow(),
            time_fields=self.settings.ingest.time_fields,
        )
        self.count_received("rest_push", iid, len(body), envelopes)
        self.writer.add(envelopes, on_durable)
        return results

    def health(self) -> dict[str, Any]:
        """Sources, buffers, the spill and the last storage error.

        ``degraded`` while the writer fails or batches wait in the spill: nothing is lost, but
        the object store is not receiving.
        """
        rows, size = self.writer.buffered()
        report: dict[str, Any] = {
            "status": "ok",
            "sources": self.sources.health(),
            "buffer": {"rows": rows, "bytes": size},
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
        return report
