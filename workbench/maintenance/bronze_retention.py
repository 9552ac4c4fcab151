"""Bronze retention: whole ``ingestion_id=/date=`` directories past their retention.

Bronze is plain Parquet (no Delta log), so retention deletes directories, never rows: a day goes
once all of it is older than the cutoff of its dataset (device or layer default, see
:mod:`workbench.maintenance.policy`). Works on a local lake and on an ``s3a://`` lake (through the
same ``minio`` client the ingest side writes with). No Spark is needed.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import urllib3
from minio.deleteobjects import DeleteObject
from minio.error import S3Error

from workbench.core.errors import StorageError
from workbench.core.settings import Settings
from workbench.lake.browser import LakeBrowser, LakeNotFoundError
from workbench.lake.manifest import ManifestEntry, bronze_partition
from workbench.lake.manifest_reader import ManifestReader
from workbench.lake.s3 import S3Storage
from workbench.lake.storage import is_object_store_root, open_lake
from workbench.maintenance.policy import device_retention
from workbench.maintenance.steps import MaintenanceResult

__all__ = ["BRONZE_MIN_FILE_AGE", "apply_bronze_retention"]

log = logging.getLogger(__name__)

#: A bronze date directory written to this recently is kept even past its cutoff: a late
#: reading replayed into an old date must reach silver before its file is deleted.
BRONZE_MIN_FILE_AGE = timedelta(hours=24)


@dataclass
class _BronzeDay:
    ingestion_id: str
    day: date
    files: int = 0
    bytes: int = 0
    newest: datetime | None = None

    @property
    def path(self) -> str:
        return f"bronze/ingestion_id={self.ingestion_id}/date={self.day.isoformat()}"


def _bronze_days(browser: LakeBrowser) -> list[_BronzeDay]:
    days: dict[tuple[str, str], _BronzeDay] = {}
    for part in browser.partitions("bronze"):
        if part.ingestion_id is None or part.date is None:
            continue
        try:
            day = date.fromisoformat(part.date)
        except ValueError:
            log.warning("bronze partition with an unreadable date kept path=%s", part.path)
            continue
        entry = days.setdefault((part.ingestion_id, part.date), _BronzeDay(part.ingestion_id, day))
        entry.files += part.files
        entry.bytes += part.bytes
        entry.newest = max(entry.newest or part.newest_modified, part.newest_modified)
    return sorted(days.values(), key=lambda d: (d.ingestion_id, d.day))


def _delete_local(root: str, path: str) -> None:
    shutil.rmtree(Path(root) / path)


def _delete_objects(storage: S3Storage, path: str) -> None:
    """Every object under ``path``, hidden ones (uploads in progress) included."""
    prefix = storage.object_name(path) + "/"
    try:
        names = [
            obj.object_name
            for obj in storage.client.list_objects(storage.bucket, prefix=prefix, recursive=True)
            if obj.object_name
        ]
        # remove_objects is lazy: iterating it performs the deletes and yields the failures.
        failures = list(
            storage.client.remove_objects(storage.bucket, (DeleteObject(n) for n in names))
        )
    except (S3Error, urllib3.exceptions.HTTPError, OSError) as err:
        raise StorageError(
            f"cannot delete {prefix} in bucket {storage.bucket!r} at {storage.url}: {err}",
            table="bronze",
            path=prefix,
        ) from err
    if failures:
        raise StorageError(
            f"cannot delete {len(failures)} object(s) under {prefix}: {failures[0]}",
            table="bronze",
            path=prefix,
        )


def _prune_manifest(
    settings: Settings,
    present: set[tuple[str, str]],
    delete: Callable[[str], None],
    *,
    written_since: float,
) -> None:
    """Delete the manifest's entry directories whose files are all gone, after the files.

    An entry is kept while one of its files' ``ingestion_id=/date=`` days is ``present``,
    when it was written since ``written_since`` (epoch s; its day may be newer than the
    listing ``present`` came from), and when it names no file (a mark).
    """

    def kept(entry: ManifestEntry) -> bool:
        if entry.written_at >= written_since or not entry.files:
            return True  # recent, or a mark (an entry naming no file)
        days = (bronze_partition(f.path) for f in entry.files)
        return any(day is None or day[:2] in present for day in days)

    manifest = ManifestReader(open_lake(settings.lake.root, settings.s3))
    for path in manifest.gone_segments(kept):
        delete(path)
        log.info("bronze manifest entries deleted, their files are gone path=%s", path)


def apply_bronze_retention(
    settings: Settings,
    *,
    default_days: int | None,
    per_device: Mapping[str, int | None],
    now: datetime | None = None,
    min_file_age: timedelta = BRONZE_MIN_FILE_AGE,
    dry_run: bool = False,
) -> MaintenanceResult:
    """Delete bronze ``ingestion_id=/date=`` directories whose whole day is past retention.

    Args:
        settings: ``lake.root`` (a directory or ``s3a://bucket/prefix``) and ``s3``.
        default_days: bronze retention (None: keep forever unless a device says otherwise).
        per_device: ``fnmatch`` pattern or exact ``ingestion_id`` → days (None: the layer
            default).
        now: the current time (UTC), for tests; default the clock.
        min_file_age: a day with a file written more recently than this is kept, so late
            readings reach silver before their file goes.
        dry_run: only count what would be deleted.
    """
    started = time.monotonic()
    if default_days is None and all(days is None for days in per_device.values()):
        return MaintenanceResult(
            "retention", "bronze", dry_run=dry_run, skipped="no retention configured"
        )
    moment = now or datetime.now(UTC)
    try:
        days = _bronze_days(LakeBrowser(settings, clock=lambda: moment))
    except LakeNotFoundError:
        # Nothing ingested yet (no lake root or bucket): nothing to delete either.
        return MaintenanceResult("retention", "bronze", dry_run=dry_run, skipped="no bronze data")
    files = sum(d.files for d in days)
    size = sum(d.bytes for d in days)
    result = MaintenanceResult(
        "retention",
        "bronze",
        files_before=files,
        files_after=files,
        bytes_before=size,
        bytes_after=size,
        dry_run=dry_run,
    )
    doomed = []
    for day in days:
        keep_days = device_retention(day.ingestion_id, per_device, default_days)
        if keep_days is None or day.day >= (moment - timedelta(days=keep_days)).date():
            continue
        if day.newest is not None and moment - day.newest < min_file_age:
            log.info("bronze day past retention kept: written recently path=%s", day.path)
            continue
        doomed.append(day)
    root = settings.lake.root
    storage = S3Storage(settings) if is_object_store_root(root) else None

    def delete(path: str) -> None:
        if storage is None:
            _delete_local(root, path)
        else:
            _delete_objects(storage, path)

    if doomed and not dry_run:
        for day in doomed:
            delete(day.path)
            log.info("bronze day deleted path=%s files=%d bytes=%d", day.path, day.files, day.bytes)
    if not dry_run:
        present = {(d.ingestion_id, d.day.isoformat()) for d in days if d not in doomed}
        since = (moment - min_file_age).timestamp()
        _prune_manifest(settings, present, delete, written_since=since)
    gone_files = sum(d.files for d in doomed)
    gone_bytes = sum(d.bytes for d in doomed)
    return replace(
        result,
        files_after=files - gone_files,
        bytes_after=size - gone_bytes,
        files_removed=gone_files,
        bytes_removed=gone_bytes,
        seconds=time.monotonic() - started,
    )
