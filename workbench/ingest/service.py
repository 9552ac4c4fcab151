"""The ingest service: runs the sources, feeds the bronze writer, accounts for every message."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from workbench.connectors.base import Connector
from workbench.connectors.envelope import OBJECT, Envelope
from workbench.connectors.mqtt import MqttConnector
from workbench.connectors.rest_push import RecordResult, parse_push_body
from workbench.core.clock import utcnow
from workbench.core.errors import NotFoundError
from workbench.core.settings import Settings
from workbench.ingest.bronze import BronzeWriter, Observer
from workbench.ingest.metrics import IngestMetrics
from workbench.ingest.storage import LakeStorage

log = logging.getLogger(__name__)


class IngestService:
    """Sources → envelopes → bronze, with metrics. No HTTP here (see ``api.ingest_app``).

    Args:
        settings: the workbench settings.
        storage: where bronze files go.
        metrics: the process's ingest metrics.
        observer: called with rows once they are durable (metadata extraction).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        storage: LakeStorage,
        metrics: IngestMetrics,
        observer: Observer | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.writer = BronzeWriter(storage, settings.ingest, metrics, observer=observer)
        self.sources: dict[str, Connector] = {}
        self.push_sources: dict[str, str] = {}
        """REST push source name → ingestion_id."""

    def add_source(self, record: dict[str, Any]) -> None:
        """Register a source from its catalog record (``name``, ``type``, ``ingestion_id``,
        ``config``)."""
        name, kind, iid = record["name"], record["type"], record["ingestion_id"]
        if kind == "mqtt":
            mqtt_settings = self.settings.mqtt.model_copy(update=record.get("config") or {})
            self.sources[name] = MqttConnector(
                name,
                iid,
                mqtt_settings,
                self.writer.add,
                time_fields=self.settings.ingest.time_fields,
                on_received=self.count_received,
            )
        elif kind == "rest_push":
            self.push_sources[name] = iid
        else:
            log.warning("unknown source type, not started name=%s type=%s", name, kind)

    def start(self) -> None:
        """Start the writer, then every source."""
        self.writer.start()
        for source in self.sources.values():
            source.start()
            self.metrics.active_sources.labels(self.metrics.pod, getattr(source, "type", "?")).inc()

    def stop(self) -> bool:
        """Stop receiving, then flush everything; True if nothing was left unflushed."""
        for source in self.sources.values():
            source.stop()
            self.metrics.active_sources.labels(self.metrics.pod, getattr(source, "type", "?")).dec()
        return self.writer.stop()

    def count_received(
        self, source_type: str, iid: str, size: int, envelopes: list[Envelope]
    ) -> None:
        """Received-side accounting shared by every connector."""
        m = self.metrics
        m.received.labels(m.pod, source_type, iid).inc()
        m.bytes_received.labels(m.pod, source_type).inc(size)
        now = utcnow()
        for env in envelopes:
            if env.payload_kind != OBJECT:
                m.failed.labels(m.pod, source_type, iid, env.payload_kind).inc()
            if env.event_time is not None:
                m.timestamp_delay.labels(m.pod, source_type).observe(
                    max(0.0, (now - env.event_time).total_seconds())
                )
            elif env.event_time_raw is not None:
                m.failed.labels(m.pod, source_type, iid, "unparsable_time").inc()

    def push(
        self, source: str, body: bytes, content_type: str, on_durable: Callable[[], None]
    ) -> list[RecordResult]:
        """Accept a pushed body for ``source``; ``on_durable`` runs once it is in bronze.

        Raises:
            NotFoundError: the source is not a registered REST push source.
        """
        iid = self.push_sources.get(source)
        if iid is None:
            known = ", ".join(sorted(self.push_sources)) or "none"
            raise NotFoundError(
                f"no REST push source named {source!r}; known: {known}", source=source
            )
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
        """Sources, buffers and the writer's last error."""
        rows, size = self.writer.buffered()
        sources = [vars(s.health()) for s in self.sources.values()]
        sources += [
            {"name": n, "type": "rest_push", "ingestion_id": i, "running": True, "connected": True}
            for n, i in self.push_sources.items()
        ]
        return {
            "status": "ok" if self.writer.last_error is None else "degraded",
            "sources": sources,
            "buffer": {"rows": rows, "bytes": size},
            "last_error": self.writer.last_error,
        }


def wait_all_connected(service: IngestService, timeout: float) -> bool:
    """True once every MQTT source is subscribed."""
    return all(
        s.wait_connected(timeout) for s in service.sources.values() if isinstance(s, MqttConnector)
    )
