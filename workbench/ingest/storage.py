"""Where bronze files go. Local directory now; the S3/MinIO store plugs in behind the same
protocol."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Protocol

import pyarrow as pa
import pyarrow.parquet as pq

from workbench.core.errors import StorageError


class LakeStorage(Protocol):
    """Durable, atomic file writes relative to the lake root."""

    def write_parquet(self, relative_path: str, table: pa.Table) -> int:
        """Write ``table`` so that readers see the whole file or nothing; returns bytes."""
        ...


class LocalStorage:
    """A lake on the local filesystem: temp file, fsync, rename (atomic on POSIX)."""

    def __init__(self, root: str) -> None:
        self.root = Path(root)

    def write_parquet(self, relative_path: str, table: pa.Table) -> int:
        target = self.root / relative_path
        # Spark and the lake browser skip names starting with "." so a partial file is invisible.
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(table, tmp, compression="zstd")
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
            os.replace(tmp, target)
            dir_fd = os.open(target.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
            return target.stat().st_size
        except OSError as err:
            tmp.unlink(missing_ok=True)
            raise StorageError(
                f"cannot write {target}: {err}", path=str(target), layer="bronze"
            ) from err
