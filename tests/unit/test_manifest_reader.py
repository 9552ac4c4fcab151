"""Reading the bronze manifest: what is new comes from probing names, writers take turns, a
range always names the same files, and a bronze file reads back as the stream's rows."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.fixtures.services import make_settings
from tests.unit.test_bronze_writer import reading, writer
from workbench.core.errors import ConfigError
from workbench.enrichment.bronze_schema import BRONZE_READ_SCHEMA
from workbench.enrichment.bronze_source import (
    ManifestBatchFiles,
    ManifestLag,
    plan_partitions,
    reached,
    read_bronze_file,
)
from workbench.lake.manifest import ManifestFile, ManifestWriter, entry_path
from workbench.lake.manifest_reader import ManifestReader
from workbench.lake.storage import LocalStorage


class CountingLake(LocalStorage):
    """A local lake that counts reads and listings (the cost of a look)."""

    def __init__(self, root: str) -> None:
        super().__init__(root)
        self.reads = self.listings = 0

    def read_bytes(self, relative_path: str) -> bytes | None:
        self.reads += 1
        return super().read_bytes(relative_path)

    def names(self, relative_dir: str) -> list[str]:
        self.listings += 1
        return super().names(relative_dir)


def put(root: Path, writer_id: str, files_per_entry: list[int]) -> ManifestWriter:
    w = ManifestWriter(LocalStorage(str(root)), writer_id)
    for n in files_per_entry:
        seq = w.next_seq
        w.record([ManifestFile(f"bronze/{writer_id}-{seq}-{i}.parquet", 10, 100) for i in range(n)])
    return w


def test_what_is_new_is_found_by_name_whatever_the_history(tmp_path: Path) -> None:
    put(tmp_path, "a", [1] * 300)
    lake = CountingLake(str(tmp_path))
    reader = ManifestReader(lake)
    end = reader.advance({}, max_files=10_000)
    assert end == {"a": 299}
    put_more = ManifestWriter(LocalStorage(str(tmp_path)), "a")
    put_more.next_seq = 300
    put_more.record([ManifestFile("bronze/new.parquet", 1, 1)])
    fresh = CountingLake(str(tmp_path))
    later = ManifestReader(fresh).advance(end, max_files=10_000)
    assert later == {"a": 300}
    # One listing of _manifest/ itself, the new entry, and the probe that found nothing.
    assert (fresh.listings, fresh.reads) == (1, 2)


def test_writers_take_turns_within_the_file_budget(tmp_path: Path) -> None:
    put(tmp_path, "backfill", [5] * 20)  # a long backlog
    put(tmp_path, "live", [1] * 3)
    reader = ManifestReader(LocalStorage(str(tmp_path)))
    end = reader.advance({}, max_files=12)
    # Turns: backfill 5, live 1, backfill 5 (11); live's next (1) fits, backfill's next does not.
    assert end == {"backfill": 1, "live": 1}
    end = reader.advance(end, max_files=12)
    assert end == {"backfill": 3, "live": 2}
    # One entry is always taken, however many files it names.
    assert reader.advance({}, max_files=1) == {"backfill": 0}


def test_a_drain_stops_at_its_target_however_much_is_written_after(tmp_path: Path) -> None:
    put(tmp_path, "a", [2] * 6)
    reader = ManifestReader(LocalStorage(str(tmp_path)))
    target = reader.end()
    assert target == {"a": 5} and reader.end({"a": 3}) == target and reader.end(target) == target
    more = ManifestWriter(LocalStorage(str(tmp_path)), "a")
    more.next_seq = 6
    more.record([ManifestFile("bronze/after.parquet", 1, 1)])
    ManifestWriter(LocalStorage(str(tmp_path)), "b").record(
        [ManifestFile("bronze/b.parquet", 1, 1)]
    )
    # Batches of at most 4 files up to the target; the writer that came later does not move.
    fresh = ManifestReader(LocalStorage(str(tmp_path)))
    steps, position = [], {}
    while not reached(position, target):
        position = fresh.advance(position, max_files=4, until=target)
        steps.append(position)
    assert steps == [{"a": 1}, {"a": 3}, {"a": 5}]
    assert fresh.advance(position, max_files=4, until=target) == {"a": 5}
    assert reached({"a": 7}, target) and not reached({"b": 0}, target)


def test_a_range_names_the_same_files_every_time(tmp_path: Path) -> None:
    put(tmp_path, "w1", [2, 1, 3])
    put(tmp_path, "w2", [1, 1])
    start, end = {"w1": 0}, {"w1": 2, "w2": 1}
    first = [
        f.path
        for e in ManifestReader(LocalStorage(str(tmp_path))).between(start, end)
        for f in e.files
    ]
    again = [
        f.path
        for e in ManifestReader(LocalStorage(str(tmp_path))).between(start, end)
        for f in e.files
    ]
    assert first == again
    assert first == [
        "bronze/w1-1-0.parquet",
        "bronze/w1-2-0.parquet",
        "bronze/w1-2-1.parquet",
        "bronze/w1-2-2.parquet",
        "bronze/w2-0-0.parquet",
        "bronze/w2-1-0.parquet",
    ]
    partitions = plan_partitions([(p, 10) for p in first], 2)
    assert partitions == plan_partitions([(p, 10) for p in reversed(first)], 2)
    assert sorted(p for part in partitions for p in part.paths) == sorted(first)
    assert [len(part.paths) for part in partitions] == [3, 3]


def test_pending_counts_files_and_age_beyond_an_offset(tmp_path: Path) -> None:
    put(tmp_path, "w1", [2, 3])
    put(tmp_path, "w2", [4])
    reader = ManifestReader(LocalStorage(str(tmp_path)))
    pending = reader.pending({"w1": 0})
    assert (pending.entries, pending.files) == (2, 7)
    assert pending.oldest is not None and time.time() - pending.oldest < 60
    done = reader.pending({"w1": 1, "w2": 0})
    assert (done.entries, done.files, done.oldest) == (0, 0, None)


def test_an_entry_pruned_from_the_manifest_is_skipped(tmp_path: Path) -> None:
    put(tmp_path, "w1", [1, 1, 1])
    (tmp_path / entry_path("w1", 1)).unlink()
    entries = ManifestReader(LocalStorage(str(tmp_path))).between({}, {"w1": 2})
    assert [e.seq for e in entries] == [0, 2]


def test_a_foreign_file_in_the_manifest_is_refused_by_name(tmp_path: Path) -> None:
    put(tmp_path, "w1", [1])
    (tmp_path / entry_path("w1", 1)).write_text(json.dumps({"version": 99}))
    with pytest.raises(ConfigError, match=r"000000000001\.json is not a bronze manifest entry"):
        ManifestReader(LocalStorage(str(tmp_path))).advance({}, max_files=10)


def test_a_bronze_file_reads_as_the_stream_rows(tmp_path: Path) -> None:
    w = writer(tmp_path)
    w.add(reading(1))
    assert w.flush(timeout=10)
    w.stop()
    [entry] = ManifestReader(LocalStorage(str(tmp_path))).between({}, {w.manifest.writer: 0})
    [file] = entry.files
    table = read_bronze_file(LocalStorage(str(tmp_path)), file.path)
    assert table is not None and table.num_rows == 1
    assert table.column_names == BRONZE_READ_SCHEMA.fieldNames()
    row = table.to_pylist()[0]
    parts = dict(p.split("=", 1) for p in file.path.split("/")[1:4])
    assert (row["ingestion_id"], row["date"], row["hour"]) == (
        parts["ingestion_id"],
        parts["date"],
        parts["hour"],
    )
    assert read_bronze_file(LocalStorage(str(tmp_path)), "bronze/gone.parquet") is None


def test_an_older_file_without_a_column_reads_it_as_null(tmp_path: Path) -> None:
    path = "bronze/ingestion_id=old%20set/date=2025-01-02/hour=03/part-x.parquet"
    (tmp_path / path).parent.mkdir(parents=True)
    pq.write_table(pa.table({"message_id": ["m1"], "payload": ["{}"]}), tmp_path / path)
    table = read_bronze_file(LocalStorage(str(tmp_path)), path)
    assert table is not None
    row = table.to_pylist()[0]
    assert row["message_id"] == "m1" and row["meta"] is None
    assert (row["ingestion_id"], row["date"], row["hour"]) == ("old set", "2025-01-02", "03")


def _checkpoint(root: Path, offsets: list[dict[str, int]], committed: int | None) -> Path:
    """A manifest stream's checkpoint as Spark lays it out (``offsets/``, ``commits/``)."""
    checkpoint = root / "_checkpoints" / "enrichment-manifest"
    (checkpoint / "offsets").mkdir(parents=True)
    (checkpoint / "commits").mkdir()
    meta = '{"batchWatermarkMs":0,"batchTimestampMs":0,"conf":{}}'
    for batch, offset in enumerate(offsets):
        (checkpoint / "offsets" / str(batch)).write_text(f"v1\n{meta}\n{json.dumps(offset)}")
    for batch in range(-1 if committed is None else committed + 1):
        (checkpoint / "commits" / str(batch)).write_text('v1\n{"nextBatchWatermarkMs":0}')
    return checkpoint


def test_batch_files_and_lag_come_from_the_checkpoint_and_the_manifest(tmp_path: Path) -> None:
    put(tmp_path, "w1", [2, 1, 1])
    put(tmp_path, "w2", [3])
    settings = make_settings(tmp_path)
    settings.lake.root = str(tmp_path)
    # Batch 1 had no new entries (Spark runs such batches to move a watermark).
    checkpoint = _checkpoint(tmp_path, [{"w1": 0}, {"w1": 0}, {"w1": 2, "w2": 0}], committed=0)
    files = ManifestBatchFiles(settings, str(checkpoint), None)
    assert files(0) == ["bronze/w1-0-0.parquet", "bronze/w1-0-1.parquet"]
    assert files(1) == []
    assert files(2) == [
        "bronze/w1-1-0.parquet",
        "bronze/w1-2-0.parquet",
        "bronze/w2-0-0.parquet",
        "bronze/w2-0-1.parquet",
        "bronze/w2-0-2.parquet",
    ]
    assert files(3) is None  # not planned yet
    lag = ManifestLag(settings, str(checkpoint), None)()
    assert (lag.kind, lag.pending) == ("files", 5) and lag.seconds >= 0.0
    (checkpoint / "commits" / "2").write_text('v1\n{"nextBatchWatermarkMs":0}')
    assert ManifestLag(settings, str(checkpoint), None)().pending == 0
