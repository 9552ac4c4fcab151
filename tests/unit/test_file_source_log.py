"""Which bronze files a file-source checkpoint read (lakes from before the bronze manifest).

The checkpoint is written here in Spark's own format (offset log ``offsets/<batch>``, file
log ``sources/0/<k>`` and ``<k>.compact``), with a batch without new files in between so the
query's batch ids and the file log's entries drift apart, as they do in a running stream.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from workbench.streams.queries import FileSourceLog

META = '{"batchWatermarkMs":0,"batchTimestampMs":0,"conf":{}}'


def _offsets(checkpoint: Path, batch: int, log_offset: int) -> None:
    (checkpoint / "offsets").mkdir(parents=True, exist_ok=True)
    (checkpoint / "offsets" / str(batch)).write_text(
        f"v1\n{META}\n{json.dumps({'logOffset': log_offset})}"
    )


def _entries(checkpoint: Path, name: str, entries: list[tuple[str, int]]) -> None:
    folder = checkpoint / "sources" / "0"
    folder.mkdir(parents=True, exist_ok=True)
    lines = [
        json.dumps({"path": f"file://{path}", "timestamp": 0, "batchId": k}, separators=(",", ":"))
        for path, k in entries
    ]
    (folder / name).write_text("\n".join(["v1", *lines]))


def _commit(checkpoint: Path, batch: int) -> None:
    (checkpoint / "commits").mkdir(parents=True, exist_ok=True)
    (checkpoint / "commits" / str(batch)).write_text('v1\n{"nextBatchWatermarkMs":0}')


def _bronze(root: Path, names: list[str]) -> dict[str, str]:
    paths = {}
    for name in names:
        path = root / "ingestion_id=a" / f"{name}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
        os.utime(path, (1_000_000_000, 1_000_000_000))
        paths[name] = str(path)
    return paths


def test_the_files_read_follow_the_log_across_compactions(tmp_path: Path) -> None:
    checkpoint = tmp_path / "ckpt"
    f = _bronze(tmp_path / "bronze", ["f0", "f1", "f2", "f3"])
    # batch 0 read entry 0; batch 1 had no new files (a watermark batch); batch 2 read entry 1;
    # batch 3 read entries 2 and 3 (entry 3 written as a compact file holding all so far).
    for batch, offset in enumerate([0, 0, 1, 3]):
        _offsets(checkpoint, batch, offset)
    _entries(checkpoint, "0", [(f["f0"], 0)])
    _entries(checkpoint, "1", [(f["f1"], 1)])
    _entries(checkpoint, "2", [(f["f2"], 2)])
    _entries(checkpoint, "3.compact", [(f["f0"], 0), (f["f1"], 1), (f["f2"], 2), (f["f3"], 3)])

    log = FileSourceLog(str(checkpoint))
    assert [log.log_offset(b) for b in (-1, 0, 1, 2, 3, 4)] == [-1, 0, 0, 1, 3, None]
    assert log.read_through(1) == [f"file://{f['f0']}", f"file://{f['f1']}"]
    assert log.read_through(3) == [f"file://{f[n]}" for n in ("f0", "f1", "f2", "f3")]


def test_plain_entries_compacted_away_are_read_from_the_compaction(tmp_path: Path) -> None:
    checkpoint = tmp_path / "ckpt"
    f = _bronze(tmp_path / "bronze", ["f0", "f1", "f2", "f3"])
    for batch, offset in enumerate([0, 1, 2, 3]):
        _offsets(checkpoint, batch, offset)
        _commit(checkpoint, batch)
    # Spark deleted entries 0 and 1 after compacting them into 2.compact.
    _entries(checkpoint, "2.compact", [(f["f0"], 0), (f["f1"], 1), (f["f2"], 2)])
    _entries(checkpoint, "3", [(f["f3"], 3)])

    log = FileSourceLog(str(checkpoint))
    assert log.read_through(3) == [f"file://{f[n]}" for n in ("f0", "f1", "f2", "f3")]
    assert log.text(0) is None and log.newest_compact(3) == 2
