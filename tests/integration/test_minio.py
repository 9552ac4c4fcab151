"""Bronze on a real MinIO: through the ingest process, and the spill against a stopped store."""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from tests.fixtures.minio import MinioServer, list_bronze, read_bronze_objects, s3_lake_settings
from tests.fixtures.services import IngestProcess, make_settings
from tests.integration.conftest import wait_for
from tests.integration.test_ingest import publish, readings
from workbench.core.errors import ConfigError, StorageError
from workbench.core.settings import Settings
from workbench.ingest.spill import SpillingStorage, build_storage
from workbench.lake.s3 import S3Storage
from workbench.lake.storage import LocalStorage, encode_parquet

BUCKET, PREFIX = "bronze-test", "lake"
LAYOUT = re.compile(
    rf"^{PREFIX}/bronze/ingestion_id=[^/]+/date=\d{{4}}-\d{{2}}-\d{{2}}/hour=\d{{2}}/part-[^/]+\.parquet$"
)


@pytest.fixture
def settings(tmp_path: Path, minio: MinioServer) -> Settings:
    """An isolated stack whose lake is ``s3a://bronze-test/lake`` on the test MinIO."""
    return s3_lake_settings(tmp_path, minio, BUCKET, PREFIX)


class RecordingStore:
    """The real S3 store, with the order in which objects reached it written down."""

    def __init__(self, store: S3Storage) -> None:
        self.store = store
        self.arrived: list[str] = []
        self._lock = threading.Lock()

    def put_bytes(
        self, relative_path: str, data: bytes, *, metadata: dict[str, str] | None = None
    ) -> int:
        written = self.store.put_bytes(relative_path, data, metadata=metadata)
        with self._lock:
            self.arrived.append(relative_path)
        return written


def batch(n: int) -> pa.Table:
    return pa.table({"n": list(range(n))})


def path(i: int) -> str:
    return f"bronze/ingestion_id=t/date=2026-11-26/hour=10/part-{i:04d}.parquet"


def spilled_files(spill_dir: Path) -> list[str]:
    return sorted(p.name for p in spill_dir.glob("*.parquet"))


def test_mqtt_readings_land_in_minio_with_the_local_layout(
    settings: Settings, minio: MinioServer, ingest: IngestProcess
) -> None:
    sent = readings(300)
    publish(settings, sent)
    client = minio.client()
    wait_for(
        lambda: read_bronze_objects(client, BUCKET, PREFIX).num_rows >= 300,
        what="300 bronze rows in MinIO",
    )
    table = read_bronze_objects(client, BUCKET, PREFIX)
    assert table.num_rows == 300
    assert sorted(table["payload"].to_pylist()) == sorted(p.decode() for p in sent)
    assert len(set(table["message_id"].to_pylist())) == 300
    objects = list_bronze(client, BUCKET, PREFIX)
    assert objects and all(LAYOUT.match(o.name) for o in objects), [o.name for o in objects]
    # Partitioned by arrival (today, or yesterday just after midnight), not by event day.
    arrived = {o.name.split("/hour=")[0].rsplit("date=")[1] for o in objects}
    today = datetime.now(UTC).date()
    assert arrived <= {str(today), str(today - timedelta(days=1))}, arrived
    assert {t.date().isoformat() for t in table["event_time"].to_pylist()} == {"2026-11-26"}
    assert all(o.spill_seq is None for o in objects)  # the store was up: nothing spilled
    assert spilled_files(Path(settings.s3.spill_dir)) == []


def test_spill_while_the_store_is_down_then_ordered_upload(
    settings: Settings, minio: MinioServer
) -> None:
    store = RecordingStore(S3Storage(settings))
    spill_dir = Path(settings.s3.spill_dir)
    storage = SpillingStorage(store, spill_dir, retry_max_seconds=0.5)
    storage.start()
    try:
        for i in range(3):
            assert storage.write_parquet(path(i), batch(10)) > 0
        assert storage.depth().files == 0
        minio.stop()
        for i in range(3, 8):
            assert storage.write_parquet(path(i), batch(10)) > 0  # succeeds: durable in spill
        depth = storage.depth()
        assert depth.files == 5 and depth.bytes > 0
        assert [n[:12] for n in spilled_files(spill_dir)] == [f"{s:012d}" for s in range(1, 6)]
        minio.start()
        assert storage.wait_drained(60), storage.last_error
    finally:
        storage.close()
    assert store.arrived == [path(i) for i in range(8)]
    assert spilled_files(spill_dir) == []
    objects = {o.name: o for o in list_bronze(minio.client(), BUCKET, PREFIX)}
    seqs = [objects[f"{PREFIX}/{path(i)}"].spill_seq for i in range(8)]
    assert seqs == [None] * 3 + list(range(1, 6))
    assert read_bronze_objects(minio.client(), BUCKET, PREFIX).num_rows == 80


def test_new_writes_queue_behind_the_spill_even_when_the_store_is_back(
    settings: Settings, minio: MinioServer
) -> None:
    store = RecordingStore(S3Storage(settings))
    storage = SpillingStorage(store, settings.s3.spill_dir, retry_max_seconds=0.5)
    minio.stop()
    storage.write_parquet(path(0), batch(1))
    storage.write_parquet(path(1), batch(1))
    minio.start()
    storage.write_parquet(path(2), batch(1))  # the store answers, but older batches wait
    assert store.arrived == []
    assert storage.depth().files == 3
    storage.start()
    try:
        assert storage.wait_drained(60), storage.last_error
    finally:
        storage.close()
    assert store.arrived == [path(0), path(1), path(2)]
    storage.write_parquet(path(3), batch(1))  # spill empty again: straight to the store
    assert store.arrived[-1] == path(3) and storage.depth().files == 0


def test_spill_survives_a_process_restart(settings: Settings, minio: MinioServer) -> None:
    minio.stop()
    first = SpillingStorage(S3Storage(settings), settings.s3.spill_dir)
    first.start()
    for i in range(3):
        first.write_parquet(path(i), batch(5))
    first.close()  # the process goes away with 3 batches on local disk

    store = RecordingStore(S3Storage(settings))
    second = SpillingStorage(store, settings.s3.spill_dir, retry_max_seconds=0.5)
    assert second.depth().files == 3
    second.write_parquet(path(3), batch(5))
    assert spilled_files(Path(settings.s3.spill_dir))[-1].startswith(f"{4:012d}.")
    minio.start()
    second.start()
    try:
        assert second.wait_drained(60), second.last_error
    finally:
        second.close()
    assert store.arrived == [path(i) for i in range(4)]
    assert read_bronze_objects(minio.client(), BUCKET, PREFIX).num_rows == 20


def test_build_storage_picks_the_store_from_the_root(
    settings: Settings, minio: MinioServer, tmp_path: Path
) -> None:
    local = build_storage(make_settings(tmp_path / "local"))
    assert isinstance(local, LocalStorage)
    remote = build_storage(settings)
    assert isinstance(remote, SpillingStorage)
    try:
        assert minio.client().bucket_exists(BUCKET)  # created at start
    finally:
        remote.close()


def test_a_down_store_at_start_only_means_spilling(settings: Settings, minio: MinioServer) -> None:
    minio.stop()
    storage = build_storage(settings)  # does not raise
    assert isinstance(storage, SpillingStorage)
    try:
        storage.write_parquet(path(0), batch(2))
        assert storage.depth().files == 1
        minio.start()
        assert storage.wait_drained(60), storage.last_error
    finally:
        storage.close()
    assert minio.client().bucket_exists(BUCKET)


def test_errors_name_the_endpoint_the_bucket_and_the_fix(
    settings: Settings, minio: MinioServer, tmp_path: Path
) -> None:
    minio.stop()
    with pytest.raises(StorageError) as err:
        S3Storage(settings).put_bytes(path(0), encode_parquet(batch(1)))
    message = err.value.message
    assert minio.endpoint in message and BUCKET in message and "reachable" in message
    assert err.value.fields["bucket"] == BUCKET
    no_keys = make_settings(tmp_path / "x", lake={"root": "s3a://b/p"}, s3={"access_key": None})
    with pytest.raises(ConfigError, match="WORKBENCH__S3__ACCESS_KEY"):
        S3Storage(no_keys)
    with pytest.raises(ConfigError, match="names no bucket"):
        S3Storage(make_settings(tmp_path / "y", lake={"root": "s3a://"}, s3=minio.s3_settings()))


def test_object_keys_are_the_local_paths_under_the_prefix(settings: Settings) -> None:
    # The writer builds one relative path for every store; S3 only prefixes it.
    relative = f"bronze/ingestion_id=i/date={datetime.now(UTC):%Y-%m-%d}/hour=07/part-x.parquet"
    assert S3Storage(settings).object_name(relative) == f"{PREFIX}/{relative}"
