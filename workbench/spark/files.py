"""Small files of the lake (checkpoint logs, Delta logs) read, and folders removed, without a
Spark job.

On a local lake through the file system; on an ``s3a://`` lake through the session's Hadoop
file system (so the same credentials and endpoint as Spark's own reads).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from workbench.core.errors import EngineError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


class LakeFiles:
    """Listing, reading and deleting files on the local disk or, through Hadoop, on ``s3a://``."""

    def __init__(self, spark: SparkSession | None) -> None:
        self._spark = spark

    @staticmethod
    def local_path(path: str) -> str | None:
        """The local path of ``path`` (a ``file:`` URI or a plain path); None for a remote one."""
        if path.startswith("file:"):
            return unquote(urlparse(path).path)
        return None if "://" in path else path

    def _jvm(self, path: str) -> Any:
        if self._spark is None:
            raise EngineError(f"reading {path} needs a Spark session", path=path)
        return self._spark.sparkContext._jvm

    def _hadoop(self, path: str) -> tuple[Any, Any]:
        hpath = self._jvm(path).org.apache.hadoop.fs.Path(path)
        conf = self._spark.sparkContext._jsc.hadoopConfiguration()  # type: ignore[union-attr]
        return hpath.getFileSystem(conf), hpath

    def walk(self, root: str) -> Iterator[tuple[str, float]]:
        """``(path, mtime seconds)`` of every visible file under ``root`` (none if absent)."""
        local = self.local_path(root)
        if local is not None:
            for folder, dirs, names in os.walk(local):
                # Spark's file source skips names starting with "." or "_" (temporary files,
                # metadata); so must the lag, or a file being written would count as pending.
                dirs[:] = [d for d in dirs if not d.startswith((".", "_"))]
                for name in names:
                    if name.startswith((".", "_")):
                        continue
                    path = os.path.join(folder, name)
                    try:
                        yield path, os.stat(path).st_mtime
                    except FileNotFoundError:
                        continue  # removed between listing and stat (maintenance)
            return
        fs, hpath = self._hadoop(root)
        if not fs.exists(hpath):
            return
        files = fs.listFiles(hpath, True)
        while files.hasNext():
            status = files.next()
            path = status.getPath()
            parts = str(path.toUri().getPath()).split("/")
            if any(p.startswith((".", "_")) for p in parts if p):
                continue
            yield str(path.toString()), status.getModificationTime() / 1000.0

    def names(self, folder: str) -> list[str]:
        """File names directly in ``folder`` (empty if absent)."""
        local = self.local_path(folder)
        if local is not None:
            try:
                return os.listdir(local)
            except FileNotFoundError:
                return []
        fs, hpath = self._hadoop(folder)
        if not fs.exists(hpath):
            return []
        return [str(s.getPath().getName()) for s in fs.listStatus(hpath)]

    def delete_tree(self, path: str) -> None:
        """Remove a file or a folder with everything in it; nothing if it is absent."""
        local = self.local_path(path)
        if local is not None:
            try:
                if os.path.isdir(local) and not os.path.islink(local):
                    shutil.rmtree(local)
                else:
                    os.remove(local)
            except FileNotFoundError:
                pass  # absent, or removed meanwhile
            return
        fs, hpath = self._hadoop(path)
        if fs.exists(hpath):
            fs.delete(hpath, True)

    def read_text(self, path: str) -> str | None:
        """A small file's text, or ``None`` if it is gone (compacted or cleaned up)."""
        local = self.local_path(path)
        if local is not None:
            try:
                return Path(local).read_text()
            except FileNotFoundError:
                return None
        fs, hpath = self._hadoop(path)
        if not fs.exists(hpath):
            return None
        jio = self._jvm(path).java.io
        stream = fs.open(hpath)
        try:
            reader = jio.BufferedReader(jio.InputStreamReader(stream, "UTF-8"))
            lines = []
            line = reader.readLine()
            while line is not None:
                lines.append(str(line))
                line = reader.readLine()
            return "\n".join(lines)
        finally:
            stream.close()

    def readable(self, path: str) -> str | bytes:
        """What Arrow's readers take for a data file: a local path as is, else its bytes.

        Raises:
            FileNotFoundError: a remote file does not exist.
        """
        local = self.local_path(path)
        if local is not None:
            return local
        fs, hpath = self._hadoop(path)
        if not fs.exists(hpath):
            raise FileNotFoundError(path)
        stream = fs.open(hpath)
        try:
            return bytes(self._jvm(path).org.apache.commons.io.IOUtils.toByteArray(stream))
        finally:
            stream.close()

    def mtime(self, path: str) -> float | None:
        """A file's modification time in seconds, ``None`` if it is gone."""
        local = self.local_path(path)
        if local is not None:
            try:
                return os.stat(local).st_mtime
            except FileNotFoundError:
                return None
        fs, hpath = self._hadoop(path)
        if not fs.exists(hpath):
            return None
        return float(fs.getFileStatus(hpath).getModificationTime()) / 1000.0
