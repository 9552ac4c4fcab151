"""``workbench bench lake-size``: the lakes it builds are what the ingest writes, and its
result names every size it measured. No assertion on speed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq

from workbench.bench.lake_size import (
    DATASETS,
    Probe,
    build_lake,
    end_of,
    link_files,
    plan_lake,
    write_manifest,
)
from workbench.lake.manifest import bronze_partition
from workbench.lake.manifest_reader import ManifestReader
from workbench.lake.storage import LocalStorage

ROOT = Path(__file__).resolve().parents[2]


def test_a_built_lake_is_bronze_by_arrival_named_in_the_manifest(tmp_path: Path) -> None:
    end = build_lake(tmp_path, 95)
    reader = ManifestReader(LocalStorage(str(tmp_path)))
    entries = reader.between({}, end)
    files = [f for entry in entries for f in entry.files]
    assert len(files) == 95 and len({f.path for f in files}) == 95
    # One file per dataset per flush (the last flush is short), in its arrival hour.
    assert [len(entry.files) for entry in entries] == [DATASETS] * 9 + [5]
    for entry in entries:
        parts = [bronze_partition(f.path) for f in entry.files]
        assert len({(p[1], p[2]) for p in parts if p}) == 1
        assert len({p[0] for p in parts if p}) == len(parts)
    assert pq.read_table(tmp_path / files[0].path).num_rows == files[0].rows


def test_a_probe_resumes_at_the_end_and_reads_only_the_new_flush(tmp_path: Path) -> None:
    end = build_lake(tmp_path, 40)
    probe = Probe(tmp_path, end)
    probe.trigger()
    probe.trigger()  # asserts the offsets moved by one entry and the plan named 10 files
    summary = probe.summary()
    assert summary["writers"] == len(end) + 1
    assert summary["latest_offset_ms"]["p95"] >= summary["latest_offset_ms"]["p50"] > 0


def test_the_cli_refuses_sizes_that_are_not_numbers(tmp_path: Path) -> None:
    env = {"PATH": "/usr/sbin:/usr/bin:/bin", "HOME": str(tmp_path)}
    env["WORKBENCH__CONFIG"] = str(tmp_path / "none.toml")
    refused = subprocess.run(
        [sys.executable, "-m", "workbench", "bench", "lake-size", "--sizes", "10k"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=60,
    )
    assert refused.returncode == 2 and "expected numbers like 10000,100000" in refused.stderr


def test_an_empty_manifest_then_the_files_it_names(tmp_path: Path) -> None:
    entries = plan_lake(25)
    write_manifest(tmp_path, entries, empty=True)
    reader = ManifestReader(LocalStorage(str(tmp_path)))
    assert reader.advance({}, max_files=1) == end_of(entries)  # empty entries cost no budget
    assert not (tmp_path / "bronze" / "ingestion_id=ds-00").exists()
    link_files(tmp_path, entries)
    write_manifest(tmp_path, entries)
    fresh = ManifestReader(LocalStorage(str(tmp_path)))
    assert [len(e.files) for e in fresh.between({}, end_of(entries))] == [10, 10, 5]
