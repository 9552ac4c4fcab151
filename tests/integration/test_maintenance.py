"""Bronze retention: whole date directories past retention, on a local lake and on MinIO, and
the manifest entries naming them.

Bronze is plain Parquet, so no Spark here; the Delta steps are in ``tests/spark``.
"""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from tests.fixtures.minio import MinioServer, s3_lake_settings
from tests.fixtures.services import make_settings
from workbench.core.settings import Settings
from workbench.lake import manifest
from workbench.lake.manifest import MANIFEST_DIR, ManifestFile, ManifestWriter, entry_path
from workbench.lake.manifest_reader import ManifestReader
from workbench.lake.s3 import S3Storage
from workbench.lake.storage import LakeStorage, LocalStorage, encode_parquet
from workbench.maintenance.bronze_retention import apply_bronze_retention

NOW = datetime.now(UTC)


def later() -> datetime:
    """After the files a test has written (not after import: a suite can run for an hour), so
    with no minimum file age every file is old enough."""
    return datetime.now(UTC) + timedelta(minutes=10)


PER_DEVICE = {"temp-*": 10, "temp-001": 3}


def day(offset: int) -> str:
    return (NOW - timedelta(days=offset)).date().isoformat()


def part(ingestion_id: str, offset: int, hour: str = "10", name: str = "part-1.parquet") -> str:
    return f"bronze/ingestion_id={ingestion_id}/date={day(offset)}/hour={hour}/{name}"


PARQUET = encode_parquet(pa.table({"message_id": ["m1", "m2"]}))
#: (path, deleted?) with bronze 30 days, temp-* 10, temp-001 3 (the exact id wins).
LAYOUT = [
    (part("temp-001", 2), False),
    (part("temp-001", 4), True),
    (part("temp-001", 4, hour="23"), True),  # the whole day goes, every hour of it
    (part("temp-002", 4), False),
    (part("temp-002", 11), True),
    (part("air-1", 11), False),
    (part("air-1", 31), True),
    (part("air-1", 31, name=".part-2.parquet.abc.tmp"), True),  # a leftover upload, too
]


def test_local_bronze_retention_deletes_old_days_only(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    root = Path(settings.lake.root)
    long_ago = (NOW - timedelta(days=40)).timestamp()
    for path, _ in LAYOUT:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(PARQUET)
        os.utime(root / path, (long_ago, long_ago))
    # A late reading written just now into an old day: kept until the stream had a day for it.
    late = root / part("air-1", 40)
    late.parent.mkdir(parents=True)
    late.write_bytes(PARQUET)

    planned = apply_bronze_retention(
        settings, default_days=30, per_device=PER_DEVICE, now=NOW, dry_run=True
    )
    assert all((root / p).exists() for p, _ in LAYOUT)
    done = apply_bronze_retention(settings, default_days=30, per_device=PER_DEVICE, now=NOW)

    assert {p: not (root / p).exists() for p, _ in LAYOUT} == dict(LAYOUT)
    assert late.exists()
    assert not (root / part("air-1", 31)).parent.parent.exists()  # the date directory itself
    # Hidden files are neither listed nor counted, but go with their day.
    assert planned.files_removed == done.files_removed == 4
    assert done.bytes_removed == 4 * len(PARQUET)
    assert (done.files_before, done.files_after) == (8, 4)
    nothing = apply_bronze_retention(settings, default_days=None, per_device={"x": None}, now=NOW)
    assert nothing.skipped == "no retention configured"
    empty = make_settings(tmp_path / "empty")  # no lake yet: nothing ingested
    assert apply_bronze_retention(empty, default_days=1, per_device={}).skipped == "no bronze data"


def test_bronze_retention_on_minio(tmp_path: Path, minio: MinioServer) -> None:
    settings = s3_lake_settings(tmp_path, minio, "retention", "lake")
    store = S3Storage(settings)
    for path, _ in LAYOUT:
        store.put_bytes(path, PARQUET)
    client = minio.client()

    def objects() -> set[str]:
        listed = client.list_objects("retention", prefix="lake/bronze/", recursive=True)
        return {str(o.object_name).removeprefix("lake/") for o in listed}

    # Objects cannot be back-dated: every file counts as written long enough ago (and "now"
    # is after the uploads).
    done = apply_bronze_retention(
        settings,
        default_days=30,
        per_device=PER_DEVICE,
        now=datetime.now(UTC),
        min_file_age=timedelta(0),
    )

    assert objects() == {p for p, deleted in LAYOUT if not deleted}
    assert done.files_removed == 4 and done.error is None


def _manifest_of(settings: Settings, store: LakeStorage, layout: list[list[str]]) -> None:
    """Name the layout's files in the manifest, ``ENTRIES_PER_DIRECTORY`` entries a directory,
    each entry written 40 days ago."""
    writer = ManifestWriter(store, "00000000000000000001-aaaa")
    for files in layout:
        entry = writer.record([ManifestFile(p, 2, len(PARQUET)) for p in files])
        old = replace(entry, written_at=(NOW - timedelta(days=40)).timestamp())
        store.write_bytes(entry_path(entry.writer, entry.seq), old.to_json())


def test_retention_prunes_the_manifest_directories_whose_files_are_all_gone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(manifest, "ENTRIES_PER_DIRECTORY", 2)
    settings = make_settings(tmp_path)
    root = Path(settings.lake.root)
    store = LocalStorage(str(root))
    for path, _ in LAYOUT:
        store.write_bytes(path, PARQUET)
    # Directory 0: two entries whose files all go. Directory 1: one entry whose file goes,
    # one that keeps a file. Directory 2: only files that go, but newer than directory 1.
    _manifest_of(
        settings,
        store,
        [
            [part("temp-001", 4), part("air-1", 31)],
            [part("temp-002", 11)],
            [part("temp-001", 4, hour="23")],
            [part("temp-002", 4), part("air-1", 31)],
            [part("air-1", 31)],
        ],
    )
    ManifestWriter(store, "00000000000000000002-mark").record([])  # a mark, never pruned
    folder = root / MANIFEST_DIR / "writer=00000000000000000001-aaaa"

    apply_bronze_retention(settings, default_days=30, per_device=PER_DEVICE, now=NOW, dry_run=True)
    assert sorted(p.name for p in folder.iterdir()) == ["00000000", "00000001", "00000002"]
    apply_bronze_retention(
        settings, default_days=30, per_device=PER_DEVICE, now=later(), min_file_age=timedelta(0)
    )
    # Only directory 0 goes: directory 1 still names a kept file, which stops the writer there.
    assert sorted(p.name for p in folder.iterdir()) == ["00000001", "00000002"]
    assert ManifestReader(store).entry("00000000000000000002-mark", 0) is not None
    # Once that file's day goes too, the rest follow.
    apply_bronze_retention(
        settings, default_days=1, per_device={}, now=later(), min_file_age=timedelta(0)
    )
    assert not any(folder.iterdir())


def test_retention_keeps_entries_written_recently(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    store = LocalStorage(settings.lake.root)
    store.write_bytes(part("air-1", 31), PARQUET)
    long_ago = (NOW - timedelta(days=40)).timestamp()
    os.utime(Path(settings.lake.root) / part("air-1", 31), (long_ago, long_ago))
    ManifestWriter(store, "00000000000000000001-aaaa").record(
        [ManifestFile(part("air-1", 31), 2, len(PARQUET))]
    )  # written now: its day may be newer than the listing retention looked at
    apply_bronze_retention(settings, default_days=30, per_device={}, now=NOW)
    assert not (Path(settings.lake.root) / part("air-1", 31)).exists()
    assert ManifestReader(store).entry("00000000000000000001-aaaa", 0) is not None


def test_manifest_pruning_on_minio(tmp_path: Path, minio: MinioServer) -> None:
    settings = s3_lake_settings(tmp_path, minio, "pruning", "lake")
    store = S3Storage(settings)
    for path, _ in LAYOUT:
        store.put_bytes(path, PARQUET)
    _manifest_of(settings, store, [[part("air-1", 31)], [part("air-1", 11)]])
    apply_bronze_retention(
        settings, default_days=30, per_device={}, now=later(), min_file_age=timedelta(0)
    )
    reader = ManifestReader(store)
    # One directory holds both entries (10,000 a directory) and one of them keeps a file.
    assert [reader.entry("00000000000000000001-aaaa", s) is not None for s in (0, 1)] == [
        True,
        True,
    ]
    apply_bronze_retention(
        settings, default_days=5, per_device={}, now=later(), min_file_age=timedelta(0)
    )
    assert ManifestReader(store).writers() == []
