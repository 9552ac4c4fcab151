"""The bronze manifest as the ingest writer puts it: one entry per durable flush, in order,
naming exactly the files a reader may read; a failed entry leaves no gap and loses nothing."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from tests.unit.test_bronze_writer import reading, writer
from workbench.core.errors import ConfigError, StorageError
from workbench.ingest.spill import SpillingStorage
from workbench.lake.manifest import MANIFEST_DIR, ManifestEntry, ManifestWriter, entry_path
from workbench.lake.storage import LocalStorage


def entries(root: Path) -> list[ManifestEntry]:
    found = [
        ManifestEntry.from_json(p.read_bytes(), where=str(p))
        for p in (root / MANIFEST_DIR).rglob("*.json")
    ]
    return sorted(found, key=lambda e: (e.writer, e.seq))


def rows_of(root: Path, paths: list[str]) -> pa.Table:
    return ds.dataset([str(root / p) for p in paths], format="parquet").to_table()


def test_each_flush_is_one_entry_naming_its_files_in_order(tmp_path: Path) -> None:
    w = writer(tmp_path)
    for i in range(3):
        w.add(reading(i))
        assert w.flush(timeout=10)
    w.stop()
    found = entries(tmp_path)
    assert [e.seq for e in found] == [0, 1, 2] and {e.writer for e in found} == {w.manifest.writer}
    named = [f.path for e in found for f in e.files]
    on_disk = sorted(
        p.relative_to(tmp_path).as_posix() for p in (tmp_path / "bronze").rglob("*.parquet")
    )
    assert sorted(named) == on_disk  # no file unnamed, none named twice
    assert [f.rows for e in found for f in e.files] == [1, 1, 1]
    assert rows_of(tmp_path, named).num_rows == 3
    # Readers of bronze as Parquet never see the manifest.
    table = ds.dataset(tmp_path / "bronze", format="parquet", partitioning="hive").to_table()
    assert table.num_rows == 3


class EntryFailsOnce(LocalStorage):
    """Writes files, but refuses the first manifest entry (the store went away in between)."""

    def __init__(self, root: str) -> None:
        super().__init__(root)
        self.refused = 0

    def write_bytes(self, relative_path: str, data: bytes) -> int:
        if self.refused == 0:
            self.refused += 1
            raise StorageError("store down")
        return super().write_bytes(relative_path, data)


def test_a_file_whose_entry_failed_is_never_named_and_its_rows_come_once(tmp_path: Path) -> None:
    storage = EntryFailsOnce(str(tmp_path))
    w = writer(tmp_path, storage)
    acked = threading.Event()
    w.add(reading(1), acked.set)
    assert w.flush(timeout=30) and acked.is_set()
    w.stop()
    (entry,) = entries(tmp_path)
    assert entry.seq == 0  # the failed entry took no number
    files = list((tmp_path / "bronze").rglob("*.parquet"))
    assert len(files) == 2  # the first attempt's file stays, named by nobody
    assert rows_of(tmp_path, [f.path for f in entry.files]).num_rows == 1


class Store:
    """An object store (``put_bytes``) that can be down: what the spill stands in front of."""

    def __init__(self) -> None:
        self.up = False
        self.objects: list[str] = []

    def put_bytes(self, relative_path: str, data: bytes, *, metadata: object = None) -> int:
        if not self.up:
            raise StorageError("store down")
        self.objects.append(relative_path)
        return len(data)


def test_spilled_files_and_entries_reach_the_store_in_write_order(tmp_path: Path) -> None:
    store = Store()
    spill = SpillingStorage(store, tmp_path / "spill", retry_max_seconds=0.1)
    spill.start()
    manifest = ManifestWriter(spill, writer="w")
    table = pa.table({"x": [1]})
    for i in range(3):
        spill.write_parquet(f"bronze/ingestion_id=d/part-{i}.parquet", table)
        manifest.record([])
    assert spill.depth().files == 6
    store.up = True
    assert spill.wait_drained(10)
    spill.close()
    assert store.objects == [
        p for i in range(3) for p in (f"bronze/ingestion_id=d/part-{i}.parquet", entry_path("w", i))
    ]


def test_an_entry_of_another_version_is_refused_with_where(tmp_path: Path) -> None:
    body = json.dumps({"version": 99, "writer": "w", "seq": 0, "files": [], "written_at": 0})
    with pytest.raises(ConfigError, match=r"e\.json is not a bronze manifest entry: version 99"):
        ManifestEntry.from_json(body.encode(), where="e.json")
    assert entry_path("w", 12345) == f"{MANIFEST_DIR}/writer=w/00000001/000000012345.json"
