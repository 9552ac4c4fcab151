import dataclasses
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from tests.fixtures.services import make_settings
from workbench.connectors.envelope import build_envelopes
from workbench.core.errors import (
    UNKNOWN_ATTEMPTS,
    ConfigError,
    InternalError,
    ServiceUnavailableError,
    StorageError,
)
from workbench.core.settings import IngestSettings
from workbench.ingest.bronze_writer import BronzeWriter, partitions, to_arrow
from workbench.ingest.service import IngestService
from workbench.lake.storage import LocalStorage
from workbench.metrics.ingestor import IngestMetrics


def reading(i: int, ts: str = "2026-11-26T10:15:00Z", topic: str = "t") -> list:
    body = f'{{"sensor_id": "s{i % 3}", "v": {i}, "timestamp": "{ts}"}}'.encode()
    return build_envelopes(
        body,
        ingestion_id="ds",
        source_type="mqtt",
        topic=topic,
        received_at=datetime.now(UTC),
        time_fields=["timestamp"],
    )


def bronze_rows(root: Path) -> pa.Table:
    return ds.dataset(root / "bronze", format="parquet", partitioning="hive").to_table()


class FlakyStorage(LocalStorage):
    """Fails the first ``failures`` writes, like an object store that is briefly down."""

    def __init__(self, root: str, failures: int) -> None:
        super().__init__(root)
        self.failures = failures

    def write_parquet(self, relative_path: str, table: pa.Table) -> int:
        if self.failures > 0:
            self.failures -= 1
            raise StorageError("store down")
        return super().write_parquet(relative_path, table)


def writer(root: Path, storage=None, **settings) -> BronzeWriter:
    cfg = IngestSettings(**{"flush_seconds": 0.1, **settings})
    w = BronzeWriter(storage or LocalStorage(str(root)), cfg, IngestMetrics())
    w.start()
    return w


def test_ack_runs_only_after_rows_are_in_a_file(tmp_path: Path) -> None:
    w = writer(tmp_path)
    seen_at_ack: list[int] = []
    done = threading.Event()

    def on_durable() -> None:
        seen_at_ack.append(bronze_rows(tmp_path).num_rows)
        done.set()

    w.add(reading(1), on_durable)
    assert done.wait(10)
    assert seen_at_ack == [1]
    w.stop()


def test_a_flush_lands_in_its_arrival_hour_whatever_the_event_times(tmp_path: Path) -> None:
    w = writer(tmp_path)
    # A replay: a year apart in event time, arriving now. One file, in the arrival hour.
    w.add(reading(1, "2026-11-26T10:59:59Z"))
    w.add(reading(2, "2026-11-26T11:00:00Z"))
    w.add(reading(3, "2025-01-01T00:00:00+02:00"))
    assert w.stop()
    files = list((tmp_path / "bronze").rglob("*.parquet"))
    now = datetime.now(UTC)
    (part,) = {p.relative_to(tmp_path / "bronze").parent.as_posix() for p in files}
    hours = {now.strftime("date=%Y-%m-%d/hour=%H"), (now - timedelta(hours=1)).strftime(
        "date=%Y-%m-%d/hour=%H"
    )}  # fmt: skip
    assert part.removeprefix("ingestion_id=ds/") in hours, part
    assert len(files) == 1
    table = bronze_rows(tmp_path)
    assert sorted(t.isoformat() for t in table["event_time"].to_pylist()) == [
        "2024-12-31T22:00:00+00:00",
        "2026-11-26T10:59:59+00:00",
        "2026-11-26T11:00:00+00:00",
    ]  # the event time is a column
    assert not list(tmp_path.rglob(".*.tmp"))


def test_a_flush_across_an_hour_boundary_writes_one_file_per_arrival_hour() -> None:
    rows = [
        *reading(1, "2020-01-01T00:00:00Z"),
        *reading(2, "2020-01-01T00:00:00Z"),
    ]
    late = datetime(2026, 12, 4, 11, 0, 0, tzinfo=UTC)
    rows[1] = dataclasses.replace(rows[1], received_at=late)
    rows[0] = dataclasses.replace(rows[0], received_at=late - timedelta(microseconds=1))
    parts = partitions(to_arrow(rows))
    assert [(key, t.num_rows) for key, t in parts] == [
        (("2026-12-04", "10"), 1),
        (("2026-12-04", "11"), 1),
    ]


def test_failed_flush_keeps_rows_and_retries(tmp_path: Path) -> None:
    storage = FlakyStorage(str(tmp_path), failures=3)
    w = writer(tmp_path, storage)
    acks = []
    for i in range(50):
        w.add(reading(i), lambda i=i: acks.append(i))
    assert w.flush(timeout=60)
    w.stop()
    table = bronze_rows(tmp_path)
    assert table.num_rows == 50 and sorted(acks) == list(range(50))
    assert storage.failures == 0


def test_flush_by_row_count_and_back_pressure(tmp_path: Path) -> None:
    # A tiny memory budget forces add() to wait for flushes instead of growing without bound.
    w = writer(tmp_path, flush_rows=10, flush_seconds=30, max_buffer_bytes=2000)
    for i in range(200):
        w.add(reading(i))
        _rows, size = w.buffered()
        assert size <= 2000 + 200
    assert w.stop()
    assert bronze_rows(tmp_path).num_rows == 200


def test_one_add_spanning_datasets_acks_once_both_are_durable(tmp_path: Path) -> None:
    w = writer(tmp_path)
    envs = reading(1) + reading(2)
    envs[1].ingestion_id = "other"
    done = threading.Event()
    w.add(envs, done.set)
    assert done.wait(10)
    w.stop()
    assert bronze_rows(tmp_path).num_rows == 2


class BrokenStorage(LocalStorage):
    """Refuses every write with ``error`` until ``fixed``; counts the attempts."""

    def __init__(self, root: str, error: Exception) -> None:
        super().__init__(root)
        self.error = error
        self.attempts = 0
        self.fixed = False

    def write_parquet(self, relative_path: str, table: pa.Table) -> int:
        if not self.fixed:
            self.attempts += 1
            raise self.error
        return super().write_parquet(relative_path, table)


def _service(tmp_path: Path, storage: LocalStorage) -> IngestService:
    from workbench.catalog.store import Catalog
    from workbench.connectors.registry import default_registry

    settings = make_settings(tmp_path, ingest={"flush_seconds": 0.1})
    metrics = IngestMetrics()
    catalog = Catalog(settings.catalog.url)
    return IngestService(
        settings, storage=storage, metrics=metrics, registry=default_registry(), store=catalog
    )


def test_a_terminal_flush_failure_is_not_retried_and_fails_the_writer_visibly(
    tmp_path: Path,
) -> None:
    storage = BrokenStorage(str(tmp_path), ConfigError("bucket refuses writes", bucket="lake"))
    service = _service(tmp_path, storage)
    w = service.writer
    w.start()
    acks: list[int] = []
    for i in range(10):
        w.add(reading(i), lambda i=i: acks.append(i))
    assert not w.flush(timeout=60)  # returns as soon as the writer has failed
    assert storage.attempts == 1  # tried once: retrying cannot help
    assert w.failure is not None and w.failure.code == "config_error"
    assert acks == [] and w.buffered()[0] == 10  # kept, unacknowledged

    health = service.health()
    assert health["status"] == "failed" and health["writer"]["state"] == "failed"
    assert health["writer"]["error"]["code"] == "config_error"
    m = service.metrics
    labels = {"pod": m.pod, "component": "bronze_writer", "code": "config_error"}
    assert m.registry.get_sample_value("workbench_component_failures_total", labels) == 1.0
    with pytest.raises(ServiceUnavailableError, match="config_error"):
        service.push("http", b'{"a": 1}', "application/json", lambda: None)

    # Connectors are held back (back-pressure), not dropped.
    late = threading.Thread(target=w.add, args=(reading(10),))
    late.start()
    late.join(timeout=0.2)
    assert late.is_alive()

    # Once the cause is fixed, resuming writes everything kept: nothing was lost.
    storage.fixed = True
    w.resume()
    late.join(timeout=10)
    assert not late.is_alive()
    assert w.flush(timeout=60)
    assert sorted(acks) == list(range(10))
    assert bronze_rows(tmp_path).num_rows == 11 and storage.attempts == 1
    assert service.health()["writer"] == {"state": "running", "error": None}
    w.stop()


def test_an_unknown_flush_failure_is_retried_a_bounded_number_of_times(tmp_path: Path) -> None:
    storage = BrokenStorage(str(tmp_path), ValueError("cannot convert the buffer"))
    w = writer(tmp_path, storage)
    w.add(reading(1))
    assert not w.flush(timeout=60)
    assert storage.attempts == UNKNOWN_ATTEMPTS
    assert isinstance(w.failure, InternalError)
    assert w.failure.fields["cause"] == "value_error"
    assert w.buffered()[0] == 1
    w.stop()


def test_a_flush_that_times_out_does_not_leave_every_buffer_due(tmp_path: Path) -> None:
    cfg = IngestSettings(flush_seconds=30, flush_rows=1000)
    w = BronzeWriter(LocalStorage(str(tmp_path)), cfg, IngestMetrics())  # no flusher running
    w.add(reading(1))
    assert not w.flush(timeout=0.05)
    w.add(reading(2, topic="later"))
    # Neither rows, bytes nor age make the buffer due: only a flush still in force would.
    assert w._due(time.monotonic()) == []
