"""Where lake files go: the storage contract, a local directory, and object-store roots.

The ingest writer, the spill and the lake browser share these; the S3 store is in ``s3.py``
so a process with a local lake never imports the S3 client.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import pyarrow as pa
import pyarrow.parquet as pq

from workbench.core.errors import ConfigError, StorageError
from workbench.core.settings import S3Settings

_OBJECT_STORE_SCHEMES = ("s3a://", "s3://")


class LakeStorage(Protocol):
    """Durable, atomic file writes relative to the lake root."""

    def write_parquet(self, relative_path: str, table: pa.Table) -> int:
        """Write ``table`` so that readers see the whole file or nothing; returns bytes."""
        ...

    def write_bytes(self, relative_path: str, data: bytes) -> int:
        """Write ``data`` so that readers see the whole file or nothing; returns bytes."""
        ...


class LakeReader(Protocol):
    """Reads relative to the lake root: what the bronze manifest's reader needs."""

    def read_bytes(self, relative_path: str) -> bytes | None:
        """The file's bytes; None if it does not exist."""
        ...

    def names(self, relative_dir: str) -> list[str]:
        """The names directly under ``relative_dir`` (files and directories; [] if absent)."""
        ...


class LakeStore(LakeReader, LakeStorage, Protocol):
    """Reads and durable writes relative to the lake root (:class:`LocalStorage`, the S3 store)."""


class ObjectStore(Protocol):
    """What :class:`SpillingStorage` needs from the store it protects."""

    def put_bytes(
        self, relative_path: str, data: bytes, *, metadata: dict[str, str] | None = None
    ) -> int:
        """Store ``data`` under ``relative_path`` (raises :class:`StorageError`); returns bytes."""
        ...


def encode_parquet(table: pa.Table) -> bytes:
    """``table`` as the bytes of one bronze Parquet file (zstd, like the local lake)."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return bytes(sink.getvalue().to_pybytes())


def fsync_dir(directory: Path) -> None:
    """Make a rename or unlink in ``directory`` durable (POSIX needs the directory fsynced)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalStorage:
    """A lake on the local filesystem: temp file, fsync, rename (atomic on POSIX)."""

    def __init__(self, root: str) -> None:
        self.root = Path(root)

    def write_parquet(self, relative_path: str, table: pa.Table) -> int:
        """Write ``table`` atomically and durably under the lake root; returns bytes."""
        return self._write(
            relative_path, lambda tmp: pq.write_table(table, tmp, compression="zstd")
        )

    def write_bytes(self, relative_path: str, data: bytes) -> int:
        """Write ``data`` atomically and durably under the lake root; returns bytes."""
        return self._write(relative_path, lambda tmp: tmp.write_bytes(data))

    def read_bytes(self, relative_path: str) -> bytes | None:
        """The file's bytes; None if it does not exist.

        Raises:
            StorageError: it exists but cannot be read.
        """
        target = self.root / relative_path
        try:
            return target.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as err:
            raise StorageError(f"cannot read {target}: {err}", path=str(target)) from err

    def names(self, relative_dir: str) -> list[str]:
        """The names directly under ``relative_dir``, sorted ([] if it does not exist)."""
        try:
            return sorted(os.listdir(self.root / relative_dir))
        except FileNotFoundError:
            return []
        except OSError as err:
            raise StorageError(f"cannot list {self.root / relative_dir}: {err}") from err

    def _write(self, relative_path: str, fill: Callable[[Path], object]) -> int:
        target = self.root / relative_path
        # Spark and the lake browser skip names starting with "." so a partial file is invisible.
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fill(tmp)
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
            os.replace(tmp, target)
            fsync_dir(target.parent)
            return target.stat().st_size
        except OSError as err:
            tmp.unlink(missing_ok=True)
            raise StorageError(
                f"cannot write {target}: {err}", path=str(target), layer="bronze"
            ) from err


def open_lake(root: str, s3: S3Settings | None = None) -> LakeStore:
    """Reads and writes relative to the lake ``root``: the directory, or the bucket via ``s3``."""
    if not is_object_store_root(root):
        return LocalStorage(root)
    from workbench.core.settings import LakeSettings, Settings
    from workbench.lake.s3 import S3Storage  # only a lake on S3 loads the client

    return S3Storage(Settings.model_construct(lake=LakeSettings(root=root), s3=s3 or S3Settings()))


def is_object_store_root(root: str) -> bool:
    """True for an ``s3a://`` (or ``s3://``) lake root."""
    return root.startswith(_OBJECT_STORE_SCHEMES)


def parse_object_store_root(root: str) -> tuple[str, str]:
    """``(bucket, prefix)`` of ``s3a://bucket/prefix`` (prefix without slashes at either end).

    Raises:
        ConfigError: when the root names no bucket.
    """
    rest = root.split("://", 1)[1] if is_object_store_root(root) else ""
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise ConfigError(
            f"lake root {root!r} names no bucket; use s3a://<bucket>/<prefix> "
            "(WORKBENCH__LAKE__ROOT) or a local directory",
            setting="lake.root",
        )
    return bucket, prefix.strip("/")
