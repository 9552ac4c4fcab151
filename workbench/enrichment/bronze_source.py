"""The enrichment's bronze source: new bronze files from the manifest, never a listing.

A Spark Python data source (format :data:`FORMAT`) over the bronze manifest
(:mod:`workbench.lake.manifest`, read with :class:`~workbench.lake.manifest_reader.ManifestReader`).
Its offset is ``{writer id: last sequence number}``; a trigger asks each writer for its next
entries by name, so it costs what is new, not what bronze holds. A batch's range of entries
always names the same files, so a batch replayed after a crash reads exactly what it read.
Rows come as Arrow record batches read with pyarrow, with ``ingestion_id``, ``date`` and
``hour`` taken from each file's path (the :data:`BRONZE_READ_SCHEMA` contract).

The same module answers, from the checkpoint's offsets and the manifest, which files a batch
read (:class:`ManifestBatchFiles`) and how far the stream is behind (:class:`ManifestLag`).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.datasource import DataSource, DataSourceStreamReader, InputPartition
from pyspark.sql.types import StructType

from workbench.core.settings import S3Settings, Settings
from workbench.enrichment.bronze_schema import BRONZE_ARROW_SCHEMA, BRONZE_READ_SCHEMA
from workbench.lake.manifest import bronze_partition
from workbench.lake.manifest_reader import ManifestReader, Offset
from workbench.lake.storage import LakeReader, is_object_store_root, open_lake
from workbench.spark.files import LakeFiles
from workbench.streams.queries import last_committed_batch, source_offset
from workbench.streams.status import Lag

__all__ = [
    "FORMAT",
    "BronzeManifestSource",
    "FilesPartition",
    "ManifestBatchFiles",
    "ManifestLag",
    "bronze_stream",
    "committed_offset",
    "drain_target",
    "reached",
    "read_bronze_file",
]

log = logging.getLogger(__name__)

#: The source's format name (``spark.readStream.format(FORMAT)``).
FORMAT = "workbench_bronze"


def read_bronze_file(lake: LakeReader, path: str) -> pa.Table | None:
    """One bronze file as the stream's rows: its columns, then the partition values of its path.

    None if the file is gone. A column an older file lacks is null.
    """
    data = lake.read_bytes(path)
    if data is None:
        return None
    table = pq.read_table(pa.BufferReader(data))
    rows = table.num_rows
    columns = [
        table[f.name].cast(f.type) if f.name in table.column_names else pa.nulls(rows, f.type)
        for f in BRONZE_ARROW_SCHEMA
    ]
    values = bronze_partition(path) or (None, None, None)
    columns += [pa.repeat(pa.scalar(v, pa.string()), rows) for v in values]
    return pa.Table.from_arrays(columns, names=BRONZE_READ_SCHEMA.fieldNames())


@dataclass(frozen=True)
class FilesPartition(InputPartition):
    """The bronze files one task reads (paths relative to the lake root)."""

    paths: tuple[str, ...]


def plan_partitions(files: Sequence[tuple[str, int]], most: int) -> list[FilesPartition]:
    """``(path, rows)`` pairs into at most ``most`` tasks of about equal rows, deterministically."""
    if not files:
        return []
    bins: list[list[str]] = [[] for _ in range(max(1, min(most, len(files))))]
    loads = [0] * len(bins)
    for path, rows in sorted(files, key=lambda f: (-f[1], f[0])):
        lightest = loads.index(min(loads))
        bins[lightest].append(path)
        loads[lightest] += max(rows, 1)
    return [FilesPartition(tuple(paths)) for paths in bins]


class ManifestStream(DataSourceStreamReader):
    """The stream reader; Spark keeps one on the driver (offsets) and makes one per task (rows).

    Spark 4.0 does not tell ``latestOffset`` where the last batch ended, so the reader keeps
    it: the end of the last range it returned or was asked to plan (after a restart Spark plans
    the last batch of the checkpoint first, which tells it).

    Nor does it let a Python source split an available-now run into batches: it takes the
    first ``latestOffset`` as the end. A drain therefore runs on a processing-time trigger with
    the option ``until`` (an offset, JSON) that no batch goes past (:func:`drain_target`).
    """

    def __init__(self, options: dict[str, str]) -> None:
        self._root = options["root"]
        secret = options.get("s3.secret")
        self._s3 = S3Settings.model_validate_json(secret) if secret else None
        self._max_files = int(options.get("maxFilesPerTrigger", "500"))
        self._max_partitions = int(options.get("maxPartitions", "2"))
        until = options.get("until")
        self._until: Offset | None = json.loads(until) if until is not None else None
        self._manifest: ManifestReader | None = None
        self._lake: LakeReader | None = None
        self._position: Offset = {}

    @property
    def lake(self) -> LakeReader:
        if self._lake is None:
            self._lake = open_lake(self._root, self._s3)
        return self._lake

    @property
    def manifest(self) -> ManifestReader:
        if self._manifest is None:
            self._manifest = ManifestReader(self.lake)
        return self._manifest

    def initialOffset(self) -> dict[str, int]:
        return {}

    def latestOffset(self) -> dict[str, int]:
        self._position = self.manifest.advance(
            self._position, max_files=self._max_files, until=self._until
        )
        return self._position

    def partitions(self, start: dict[str, int], end: dict[str, int]) -> Sequence[InputPartition]:
        self._position = dict(end)
        entries = self.manifest.between(start, end)
        files = [(f.path, f.rows) for entry in entries for f in entry.files]
        return plan_partitions(files, self._max_partitions)

    def read(self, partition: InputPartition) -> Iterator[pa.RecordBatch]:
        assert isinstance(partition, FilesPartition)
        for path in partition.paths:
            table = read_bronze_file(self.lake, path)
            if table is None:
                # Only bronze retention deletes files, and only days past their cutoff.
                log.warning("bronze file in the manifest is gone, skipped path=%s", path)
                continue
            yield from table.to_batches()

    def commit(self, end: dict[str, int]) -> None:
        self.manifest.forget(end)


class BronzeManifestSource(DataSource):
    """``spark.readStream.format("workbench_bronze")``: see :func:`bronze_stream`."""

    @classmethod
    def name(cls) -> str:
        return FORMAT

    def schema(self) -> StructType:
        return BRONZE_READ_SCHEMA

    def streamReader(self, schema: StructType) -> DataSourceStreamReader:
        return ManifestStream(self.options)


def bronze_stream(
    spark: SparkSession, settings: Settings, *, until: Offset | None = None
) -> DataFrame:
    """Bronze as a stream of new files from the manifest (at most ``max_files_per_trigger``).

    ``until``: an offset no batch goes past (a drain, see :func:`drain_target`).
    """
    spark.dataSource.register(BronzeManifestSource)
    reader = (
        spark.readStream.format(FORMAT)
        .option("root", settings.lake.root)
        .option("maxFilesPerTrigger", str(settings.engine.max_files_per_trigger))
        .option("maxPartitions", str(max(1, spark.sparkContext.defaultParallelism)))
    )
    if until is not None:
        reader = reader.option("until", json.dumps(until))
    if is_object_store_root(settings.lake.root):
        # Spark redacts options whose key says "secret" wherever it shows a plan.
        reader = reader.option("s3.secret", _s3_json(settings.s3))
    return reader.load()


def _s3_json(s3: S3Settings) -> str:
    body = s3.model_dump(mode="json")
    for key in ("access_key", "secret_key"):
        value = getattr(s3, key)
        body[key] = value.get_secret_value() if value is not None else None
    return json.dumps(body)


def _offset(files: LakeFiles, checkpoint: str, batch_id: int) -> dict[str, Any] | None:
    return {} if batch_id < 0 else source_offset(files, checkpoint, batch_id)


def committed_offset(files: LakeFiles, checkpoint: str) -> Offset:
    """The offset the stream's last committed batch read up to (``{}`` before any)."""
    committed = last_committed_batch(files, checkpoint)
    return (_offset(files, checkpoint, committed) if committed is not None else None) or {}


def drain_target(settings: Settings, checkpoint: str, spark: SparkSession | None) -> Offset:
    """Everything the manifest names now beyond the stream's committed offset, as an offset.

    Costs what is new: each writer's entries after the committed position are probed by name.
    """
    files = LakeFiles(spark)
    manifest = ManifestReader(open_lake(settings.lake.root, settings.s3))
    start = committed_offset(files, checkpoint.rstrip("/"))
    return manifest.end(start)


def reached(committed: Offset, target: Offset) -> bool:
    """Whether ``committed`` is at or past ``target`` for every writer in it."""
    return all(committed.get(writer, -1) >= seq for writer, seq in target.items())


class ManifestBatchFiles:
    """The bronze files a batch of the manifest stream read (paths relative to the lake root).

    The checkpoint's offsets log holds each batch's end offset; the batch read the entries
    after the previous batch's end up to its own.

    Args:
        settings: the lake.
        checkpoint: the query's checkpoint.
        spark: used only to reach ``s3a://`` checkpoints through Hadoop.
    """

    def __init__(self, settings: Settings, checkpoint: str, spark: SparkSession | None) -> None:
        self._files = LakeFiles(spark)
        self._checkpoint = checkpoint.rstrip("/")
        self._manifest = ManifestReader(open_lake(settings.lake.root, settings.s3))

    def __call__(self, batch_id: int) -> list[str] | None:
        """The paths batch ``batch_id`` read; None if the checkpoint does not say."""
        end = _offset(self._files, self._checkpoint, batch_id)
        start = _offset(self._files, self._checkpoint, batch_id - 1)
        if end is None or start is None:
            return None
        self._manifest.forget(start)
        return [f.path for entry in self._manifest.between(start, end) for f in entry.files]


class ManifestLag:
    """How far the manifest stream is behind: files in entries after the committed offset.

    Args:
        settings: the lake.
        checkpoint: the query's checkpoint.
        spark: used only to reach ``s3a://`` checkpoints through Hadoop.
    """

    def __init__(self, settings: Settings, checkpoint: str, spark: SparkSession | None) -> None:
        self._files = LakeFiles(spark)
        self._checkpoint = checkpoint.rstrip("/")
        self._manifest = ManifestReader(open_lake(settings.lake.root, settings.s3))

    def __call__(self) -> Lag:
        """The lag now."""
        pending = self._manifest.pending(committed_offset(self._files, self._checkpoint))
        age = 0.0 if pending.oldest is None else max(0.0, time.time() - pending.oldest)
        return Lag("files", pending.files, age)
