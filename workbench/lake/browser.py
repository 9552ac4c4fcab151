"""The lake browser: layers, partitions and files with sizes and ages, and cheap previews.

Works on a local lake and on an ``s3a://bucket/prefix`` lake alike. Names starting with ``.``
(files being written) are never shown; names starting with ``_`` (``_delta_log``,
``_checkpoints``, ``_spill``...) are internal and not counted as data.

A preview reads the Parquet footer, then only the pages of the first row group(s) that the first
``rows`` rows need (buffered column reads instead of whole column chunks). On an object store
every read is one HTTP range request, so previewing a large file costs about the footer plus one
page per column, never the whole object.

One module over 500 lines: the browser, its local and object-store listings and the ranged
object file implement one contract (what is visible, how little is read) that reads best whole.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal, Protocol

import pyarrow as pa
import pyarrow.parquet as pq
import urllib3
from minio import Minio
from minio.error import InvalidResponseError, S3Error, ServerError

from workbench.core.errors import NotFoundError, StorageError, Terminal, WorkbenchError
from workbench.core.settings import Settings
from workbench.lake.s3 import S3Storage
from workbench.lake.storage import is_object_store_root

__all__ = [
    "LAYERS",
    "LakeBrowser",
    "LakeFile",
    "LakeFileError",
    "LakeNotFoundError",
    "Layer",
    "LayerSummary",
    "Partition",
    "RangedObjectFile",
]

log = logging.getLogger(__name__)

Layer = Literal["bronze", "silver", "gold"]
LAYERS: tuple[Layer, ...] = ("bronze", "silver", "gold")

#: Bytes per buffered column read: pages are read in pieces this size instead of whole chunks.
_READ_BUFFER = 64 * 1024
_S3_FAILURES = (S3Error, ServerError, InvalidResponseError, urllib3.exceptions.HTTPError, OSError)


class LakeNotFoundError(NotFoundError):
    """The lake root, its bucket, a layer or a file does not exist (waiting will not help)."""

    code = "lake_not_found"


class LakeFileError(WorkbenchError, Terminal):
    """A lake file exists but cannot be read as Parquet (retrying reads the same bytes)."""

    code = "lake_file_error"
    status = 422


@dataclass(frozen=True)
class LayerSummary:
    """Data files of one layer."""

    layer: Layer
    files: int
    bytes: int
    newest_modified: datetime | None
    """When the newest file was written (UTC), None for an empty layer."""


@dataclass(frozen=True)
class LakeFile:
    """One data file."""

    path: str
    """Relative to the lake root, ``/``-separated (what :meth:`LakeBrowser.preview` takes)."""
    size: int
    modified: datetime
    """Last write (UTC)."""
    age: timedelta
    """How long ago it was written, at listing time (never negative)."""

    @property
    def name(self) -> str:
        """The file name without its directory."""
        return self.path.rsplit("/", 1)[-1]

    @property
    def partition(self) -> str:
        """The directory holding the file, relative to the lake root."""
        return self.path.rsplit("/", 1)[0]


@dataclass(frozen=True)
class Partition:
    """One directory of data files, e.g. ``bronze/ingestion_id=x/date=2024-05-01/hour=07``."""

    layer: Layer
    path: str
    """Relative to the lake root."""
    values: dict[str, str] = field(hash=False)
    """The ``key=value`` components of the path (``ingestion_id``, ``date``, ``hour``...)."""
    files: int
    bytes: int
    oldest_modified: datetime
    newest_modified: datetime
    oldest_age: timedelta
    newest_age: timedelta

    @property
    def ingestion_id(self) -> str | None:
        """The source of a bronze partition."""
        return self.values.get("ingestion_id")

    @property
    def date(self) -> str | None:
        """``YYYY-MM-DD`` of the partition: in bronze, the day the rows arrived."""
        return self.values.get("date")

    @property
    def hour(self) -> str | None:
        """``HH`` of the partition: in bronze, the hour the rows arrived."""
        return self.values.get("hour")


@dataclass(frozen=True)
class _Entry:
    path: str
    size: int
    modified: datetime


class _Store(Protocol):
    where: str

    def entries(self, top: str) -> Iterator[_Entry]:
        """Every visible file under ``top`` (relative to the root)."""
        ...

    def open(self, path: str) -> pa.NativeFile | io.RawIOBase:
        """A random-access file for ``path`` (relative to the root)."""
        ...


def _visible(name: str) -> bool:
    return not name.startswith((".", "_"))


class _LocalStore:
    def __init__(self, root: str) -> None:
        self.root = Path(root)
        self.where = str(self.root)

    def entries(self, top: str) -> Iterator[_Entry]:
        if not self.root.is_dir():
            raise LakeNotFoundError(
                f"the lake root {self.root} does not exist; start the ingest service (it "
                "creates the lake on its first write) or point WORKBENCH__LAKE__ROOT at the lake",
                path=str(self.root),
            )
        yield from self._walk(self.root / top, top)

    def _walk(self, directory: Path, relative: str) -> Iterator[_Entry]:
        try:
            with os.scandir(directory) as found:
                children = sorted(found, key=lambda e: e.name)
        except FileNotFoundError:
            return
        except OSError as err:
            raise StorageError(
                f"cannot list {directory}: {err}; check its permissions", path=str(directory)
            ) from err
        for entry in children:
            if not _visible(entry.name):
                continue
            child = f"{relative}/{entry.name}"
            if entry.is_dir(follow_symlinks=False):
                yield from self._walk(Path(entry.path), child)
            elif entry.is_file():
                stat = entry.stat()
                yield _Entry(child, stat.st_size, datetime.fromtimestamp(stat.st_mtime, UTC))

    def open(self, path: str) -> pa.NativeFile:
        try:
            return pa.OSFile(str(self.root / path), "rb")
        except FileNotFoundError as err:
            raise LakeNotFoundError(
                f"no file {path!r} in the lake at {self.root}; list files with "
                "LakeBrowser.files() (it may have been compacted or deleted)",
                path=str(self.root / path),
            ) from err


class RangedObjectFile(io.RawIOBase):
    """A read-only, seekable view of one object: every read is one HTTP range request.

    ``requests`` and ``bytes_read`` count what was fetched from the store.

    Args:
        client: the store's client.
        bucket: the bucket.
        name: the object key.
        size: the object's size in bytes.
    """

    def __init__(self, client: Minio, bucket: str, name: str, size: int) -> None:
        super().__init__()
        self._client = client
        self.bucket = bucket
        self.name = name
        self.size = size
        self._pos = 0
        self.requests = 0
        self.bytes_read = 0

    def readable(self) -> bool:
        """Always True."""
        return True

    def seekable(self) -> bool:
        """Always True."""
        return True

    def tell(self) -> int:
        """The current position."""
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Move the position (no request is made)."""
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        """Fill ``buffer`` from the current position with one range request."""
        length = min(len(buffer), self.size - self._pos)
        if length <= 0:
            return 0
        try:
            response = self._client.get_object(
                self.bucket, self.name, offset=self._pos, length=length
            )
            try:
                data = response.read()
            finally:
                response.close()
                response.release_conn()
        except _S3_FAILURES as err:
            raise StorageError(
                f"cannot read {self.name} in bucket {self.bucket!r}: {type(err).__name__}: {err}",
                bucket=self.bucket,
                path=self.name,
            ) from err
        memoryview(buffer)[: len(data)] = data
        self._pos += len(data)
        self.requests += 1
        self.bytes_read += len(data)
        return len(data)


class _ObjectStore:
    def __init__(self, settings: Settings) -> None:
        self.storage = S3Storage(settings)
        self.client = self.storage.client
        self.where = f"bucket {self.storage.bucket!r} at {self.storage.url}"

    def entries(self, top: str) -> Iterator[_Entry]:
        prefix = self.storage.object_name(top) + "/"
        skip = len(self.storage.object_name(""))
        try:
            for obj in self.client.list_objects(self.storage.bucket, prefix=prefix, recursive=True):
                name = obj.object_name or ""
                relative = name[skip:]
                if obj.is_dir or not all(_visible(p) for p in relative[len(top) + 1 :].split("/")):
                    continue
                modified = obj.last_modified or datetime.fromtimestamp(0, UTC)
                yield _Entry(relative, obj.size or 0, modified.astimezone(UTC))
        except S3Error as err:
            if err.code == "NoSuchBucket":
                raise LakeNotFoundError(
                    f"the lake's {self.where} does not exist; start the ingest service (it "
                    "creates the bucket) or fix WORKBENCH__LAKE__ROOT",
                    bucket=self.storage.bucket,
                    endpoint=self.storage.url,
                ) from err
            raise self._error(f"cannot list {prefix}", err) from err
        except _S3_FAILURES as err:
            raise self._error(f"cannot list {prefix}", err) from err

    def open(self, path: str) -> RangedObjectFile:
        name = self.storage.object_name(path)
        try:
            stat = self.client.stat_object(self.storage.bucket, name)
        except S3Error as err:
            if err.code in ("NoSuchKey", "NoSuchBucket", "NoSuchObject"):
                raise LakeNotFoundError(
                    f"no object {name!r} in the lake's {self.where}; list files with "
                    "LakeBrowser.files() (it may have been compacted or deleted)",
                    bucket=self.storage.bucket,
                    path=name,
                ) from err
            raise self._error(f"cannot read {name}", err) from err
        except _S3_FAILURES as err:
            raise self._error(f"cannot read {name}", err) from err
        return RangedObjectFile(self.client, self.storage.bucket, name, stat.size or 0)

    def _error(self, what: str, err: Exception) -> StorageError:
        return StorageError(
            f"{what} in the lake's {self.where}: {type(err).__name__}: {err}. Check that the "
            "object store is running and that WORKBENCH__S3__* credentials may read the bucket.",
            bucket=self.storage.bucket,
            endpoint=self.storage.url,
        )


def _partition_values(path: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in path.split("/") if "=" in part)


class LakeBrowser:
    """Browse the lake of ``settings.lake.root`` (a directory or ``s3a://bucket/prefix``).

    Args:
        settings: ``lake.root`` and, for an object store, ``s3``.
        clock: the current UTC time (ages are measured against it).

    Raises:
        ConfigError: an ``s3a://`` root without bucket or credentials.
    """

    def __init__(
        self, settings: Settings, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self.root = settings.lake.root
        self._clock = clock
        self._store: _Store = (
            _ObjectStore(settings) if is_object_store_root(self.root) else _LocalStore(self.root)
        )

    def layers(self) -> list[LayerSummary]:
        """Bronze, silver and gold with their data files' count, bytes and newest write."""
        summaries = []
        for layer in LAYERS:
            entries = list(self._entries(layer))
            summaries.append(
                LayerSummary(
                    layer,
                    len(entries),
                    sum(e.size for e in entries),
                    max((e.modified for e in entries), default=None),
                )
            )
        return summaries

    def partitions(
        self, layer: Layer = "bronze", ingestion_id: str | None = None
    ) -> list[Partition]:
        """The directories of data files in ``layer``, sorted by path.

        Args:
            layer: bronze, silver or gold.
            ingestion_id: only this source's partitions.
        """
        now = self._clock()
        groups: dict[str, list[_Entry]] = {}
        for entry in self._entries(layer, ingestion_id=ingestion_id):
            groups.setdefault(entry.path.rsplit("/", 1)[0], []).append(entry)
        partitions = []
        for path, entries in sorted(groups.items()):
            oldest = min(e.modified for e in entries)
            newest = max(e.modified for e in entries)
            values = _partition_values(path)
            if ingestion_id is not None and values.get("ingestion_id") != ingestion_id:
                continue
            partitions.append(
                Partition(
                    layer=layer,
                    path=path,
                    values=values,
                    files=len(entries),
                    bytes=sum(e.size for e in entries),
                    oldest_modified=oldest,
                    newest_modified=newest,
                    oldest_age=max(now - oldest, timedelta(0)),
                    newest_age=max(now - newest, timedelta(0)),
                )
            )
        return partitions

    def files(
        self,
        layer: Layer = "bronze",
        *,
        partition: str | Partition | None = None,
        ingestion_id: str | None = None,
    ) -> list[LakeFile]:
        """The data files of ``layer``, sorted by path (bronze names sort by write time).

        Args:
            layer: bronze, silver or gold.
            partition: only the files directly in this partition (a path or a :class:`Partition`).
            ingestion_id: only this source's files.
        """
        now = self._clock()
        if isinstance(partition, Partition):
            layer, partition = partition.layer, partition.path
        under = _clean(partition) if partition else None
        found = []
        for entry in self._entries(layer, ingestion_id=ingestion_id, under=under):
            if under is not None and entry.path.rsplit("/", 1)[0] != under:
                continue
            if ingestion_id is not None and (
                _partition_values(entry.path).get("ingestion_id") != ingestion_id
            ):
                continue
            age = max(now - entry.modified, timedelta(0))
            found.append(LakeFile(entry.path, entry.size, entry.modified, age))
        return sorted(found, key=lambda f: f.path)

    def schema(self, path: str) -> pa.Schema:
        """The Arrow schema of a Parquet file, read from its footer only.

        Raises:
            LakeNotFoundError: no such file.
            LakeFileError: not a Parquet file.
        """
        relative = _clean(path, self.root)
        with self._store.open(relative) as source:
            try:
                return pq.ParquetFile(source).schema_arrow
            except (pa.ArrowException, OSError) as err:
                raise self._unreadable(relative, err) from err

    def preview(self, path: str, rows: int = 20, columns: list[str] | None = None) -> pa.Table:
        """The first ``rows`` rows of a Parquet file, reading only what they need.

        Args:
            path: relative to the lake root (as in :attr:`LakeFile.path`); a path starting with
                the lake root is accepted too.
            rows: how many rows (at most).
            columns: only these columns (all by default).

        Raises:
            LakeNotFoundError: no such file.
            LakeFileError: not a Parquet file.
        """
        if rows < 0:
            raise ValueError(f"rows must be >= 0, got {rows}")
        relative = _clean(path, self.root)
        with self._store.open(relative) as source:
            try:
                return read_first_rows(source, rows, columns=columns)
            except (pa.ArrowException, OSError) as err:
                raise self._unreadable(relative, err) from err

    def _entries(
        self, layer: Layer, *, ingestion_id: str | None = None, under: str | None = None
    ) -> Iterator[_Entry]:
        if layer not in LAYERS:
            raise LakeNotFoundError(
                f"no layer {layer!r} in the lake; choose one of {', '.join(LAYERS)}", layer=layer
            )
        top: str = layer
        if under is not None:
            top = under
        elif layer == "bronze" and ingestion_id is not None:
            top = f"bronze/ingestion_id={ingestion_id}"
        for entry in self._store.entries(top):
            if layer == "bronze" and not entry.path.endswith(".parquet"):
                continue
            yield entry

    def _unreadable(self, path: str, err: Exception) -> LakeFileError:
        return LakeFileError(
            f"{path} in the lake at {self._store.where} is not a readable Parquet file: {err}",
            path=path,
        )


def read_first_rows(
    source: pa.NativeFile | io.RawIOBase | str, rows: int, *, columns: list[str] | None = None
) -> pa.Table:
    """The first ``rows`` rows of a Parquet file: footer, then only the pages they need.

    Args:
        source: a random-access file (or a local path).
        rows: how many rows (at most).
        columns: only these columns (all by default).
    """
    parquet = pq.ParquetFile(source, buffer_size=_READ_BUFFER, pre_buffer=False)
    schema = parquet.schema_arrow
    if columns is not None:
        schema = pa.schema([schema.field(c) for c in columns])
    if rows == 0:
        return schema.empty_table()
    batches = []
    read = 0
    for batch in parquet.iter_batches(batch_size=rows, columns=columns):
        batches.append(batch)
        read += batch.num_rows
        if read >= rows:
            break
    return pa.Table.from_batches(batches, schema=schema).slice(0, rows)


def _clean(path: str, root: str | None = None) -> str:
    """``path`` relative to the lake root, refusing ``..`` and hidden components."""
    if root is not None:
        prefix = root.rstrip("/") + "/"
        if path.startswith(prefix):
            path = path[len(prefix) :]
    parts = [p for p in path.strip("/").split("/") if p not in ("", ".")]
    if not parts or any(p == ".." or p.startswith(".") for p in parts):
        raise LakeNotFoundError(
            f"{path!r} is not a file of the lake; use a path relative to the lake root as "
            "LakeBrowser.files() lists it (hidden and '..' components are refused)",
            path=path,
        )
    return "/".join(parts)
