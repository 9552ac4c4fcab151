"""Lakes from before the bronze manifest: their files are named once, by a writer of their own.

The enrichment reads only files the manifest names. Bronze written before ingest wrote the
manifest has no entries, so the first time the enrichment starts on such a lake it names, under
the writer :data:`LEGACY_WRITER` (which sorts before every real writer), each bronze file that

- no entry names,
- is older than the oldest writer's start (a newer file is an ingest crash's orphan, whose
  messages came again in a file of their own), and
- the old file-source checkpoint (``_checkpoints/enrichment``) had not read: nothing is read
  twice and nothing is skipped.

The writer's entries are written once and end with an empty one, the mark that it was done
(kept by bronze retention), so the check costs one listing of ``_manifest/`` from then on.
Bronze partitioned by event hour reads the same (the partition values are names only).
"""

from __future__ import annotations

import logging

from pyspark.sql import SparkSession

from workbench.core.settings import Settings
from workbench.lake.manifest import ManifestFile, ManifestWriter
from workbench.lake.manifest_reader import ManifestReader
from workbench.lake.storage import open_lake
from workbench.spark.files import LakeFiles
from workbench.streams.queries import FileSourceLog, checkpoint_path, last_committed_batch

__all__ = ["FILES_PER_ENTRY", "LEGACY_WRITER", "name_legacy_bronze"]

log = logging.getLogger(__name__)

#: Sorts before every writer id (those start with the start time in nanoseconds).
LEGACY_WRITER = "00000000000000000000-legacy"
FILES_PER_ENTRY = 100


def name_legacy_bronze(spark: SparkSession, settings: Settings, *, old_checkpoint: str) -> int:
    """Name the bronze files from before the manifest, once (see the module docstring).

    Args:
        spark: reaches ``s3a://`` lakes through Hadoop.
        settings: the lake.
        old_checkpoint: the file-source checkpoint's name under the checkpoints root.

    Returns:
        Files named now (0 when it was done before).
    """
    lake = open_lake(settings.lake.root, settings.s3)
    manifest = ManifestReader(lake)
    writers = manifest.writers()
    if LEGACY_WRITER in writers:
        return 0
    named = {f.path for entry in manifest.between({}, manifest.end()) for f in entry.files}
    starts = [_start_seconds(w) for w in writers]
    before = min((s for s in starts if s is not None), default=float("inf"))
    files = LakeFiles(spark)
    root = settings.lake.root.rstrip("/")
    read = {_relative(p, root) for p in _read_by(spark, settings, old_checkpoint)}
    unlisted = sorted(
        relative
        for path, mtime in files.walk(settings.lake.bronze)
        if path.endswith(".parquet") and mtime < before
        for relative in [_relative(path, root)]
        if relative not in named and relative not in read
    )
    writer = ManifestWriter(lake, LEGACY_WRITER)
    for first in range(0, len(unlisted), FILES_PER_ENTRY):
        # Rows unknown (0): they only balance the tasks of a batch.
        writer.record([ManifestFile(p, 0, 0) for p in unlisted[first : first + FILES_PER_ENTRY]])
    writer.record([])  # the mark that this was done: an entry without files, never pruned
    log.info(
        "named bronze files from before the manifest files=%d already_read=%d",
        len(unlisted),
        len(read),
    )
    return len(unlisted)


def _read_by(spark: SparkSession, settings: Settings, name: str) -> list[str]:
    """The files the file-source checkpoint ``name`` read in committed batches."""
    source = FileSourceLog(checkpoint_path(settings.lake.checkpoints, name), spark)
    committed = last_committed_batch(source.files, source.checkpoint)
    upto = None if committed is None else source.log_offset(committed)
    return [] if upto is None else source.read_through(upto)


def _relative(path: str, root: str) -> str:
    local = LakeFiles.local_path(path)
    text = local if local is not None else path
    local_root = LakeFiles.local_path(root)
    base = (local_root if local_root is not None else root).rstrip("/") + "/"
    return text[len(base) :] if text.startswith(base) else text


def _start_seconds(writer: str) -> float | None:
    head = writer.split("-", 1)[0]
    return int(head) / 1e9 if head.isdigit() and int(head) > 0 else None
