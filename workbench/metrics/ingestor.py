"""The ``ingestor_*`` metrics, created once per ingest process and passed down."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from workbench.metrics.prometheus import new_registry, pod_name


class IngestMetrics:
    """Every ingest metric, each carrying the ``pod`` label."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or new_registry()
        self.pod = pod_name()
        r = self.registry
        self.received = Counter(
            "ingestor_messages_received_total",
            "Messages received from connectors",
            ["pod", "source_type", "ingestion_id"],
            registry=r,
        )
        self.processed = Counter(
            "ingestor_messages_processed_total",
            "Records durably written to bronze",
            ["pod", "source_type", "ingestion_id"],
            registry=r,
        )
        self.failed = Counter(
            "ingestor_messages_failed_total",
            "Records flagged or failed, by reason",
            ["pod", "source_type", "ingestion_id", "error_type"],
            registry=r,
        )
        self.bytes_received = Counter(
            "ingestor_bytes_received_total",
            "Payload bytes received",
            ["pod", "source_type"],
            registry=r,
        )
        self.bytes_written = Counter(
            "ingestor_bytes_written_total", "Bytes of files written", ["pod", "layer"], registry=r
        )
        self.files_written = Counter(
            "ingestor_files_written_total", "Files written", ["pod", "layer"], registry=r
        )
        self.timestamp_delay = Histogram(
            "ingestor_timestamp_delay_seconds",
            "Receive time minus event time",
            ["pod", "source_type"],
            buckets=(0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 300, 3600, 86400),
            registry=r,
        )
        self.duplicates = Counter(
            "ingestor_duplicates_total",
            "Rows whose message id was already written recently",
            ["pod", "ingestion_id"],
            registry=r,
        )
        self.sequence_gaps = Counter(
            "ingestor_sequence_gaps_total",
            "Publisher sequence numbers never received",
            ["pod", "ingestion_id"],
            registry=r,
        )
        self.spill_files = Gauge(
            "ingestor_spill_files",
            "Bronze batches waiting locally for the object store",
            ["pod"],
            registry=r,
        )
        self.spill_bytes = Gauge(
            "ingestor_spill_bytes",
            "Bytes waiting locally for the object store",
            ["pod"],
            registry=r,
        )
        self.active_sources = Gauge(
            "ingestor_active_data_sources", "Running sources", ["pod", "source_type"], registry=r
        )
        self.buffer_messages = Gauge(
            "ingestor_buffer_size_messages",
            "Records waiting in buffers",
            ["pod", "ingestion_id"],
            registry=r,
        )
        self.component_failures = Counter(
            "workbench_component_failures_total",
            "Components (the bronze writer) stopped by a terminal error, by the error's code; "
            "they stay stopped until an operator acts.",
            ["pod", "component", "code"],
            registry=r,
        )
        self.buffer_bytes = Gauge(
            "ingestor_buffer_size_bytes",
            "Payload bytes waiting in buffers",
            ["pod", "ingestion_id"],
            registry=r,
        )
