"""The bronze manifest: which bronze files exist, in the order they became durable.

Each ingest process is one *writer*, with an id of its own taken at start (time-ordered, so
writers sort by when they started). After a flush's files are durable, the writer puts one
entry naming them, at ``bronze/_manifest/writer=<id>/<seq // 10000:08d>/<seq:012d>.json``,
``seq`` running 0, 1, 2… without gaps. Entry ``n + 1`` is written only after entry ``n``, and a
flush is acknowledged only once its entry is durable too; so a reader that knows a writer's
last sequence number finds what is new by probing the next names instead of listing bronze,
and a file whose entry never came (a crash in between) is never read: its messages were not
acknowledged and come again in a later flush.

``_manifest`` starts with ``_``, so Parquet readers of bronze (Spark's file source, the lake
browser) skip it.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import unquote

from workbench.core.errors import ConfigError
from workbench.lake.storage import LakeStorage

__all__ = [
    "MANIFEST_DIR",
    "ManifestEntry",
    "ManifestFile",
    "ManifestWriter",
    "bronze_partition",
    "entry_path",
    "new_writer_id",
]

#: Where the manifest lives, relative to the lake root.
MANIFEST_DIR = "bronze/_manifest"
#: Entries per directory: a directory stays small enough to list, and names sort.
ENTRIES_PER_DIRECTORY = 10_000
#: The entry format; a reader refuses versions it does not know.
VERSION = 1


@dataclass(frozen=True)
class ManifestFile:
    """One bronze file an entry names: its path relative to the lake root, rows and bytes."""

    path: str
    rows: int
    bytes: int


@dataclass(frozen=True)
class ManifestEntry:
    """One durable flush of one writer."""

    writer: str
    seq: int
    files: tuple[ManifestFile, ...]
    written_at: float
    """When the entry was written (epoch seconds)."""

    def to_json(self) -> bytes:
        """The entry's file contents."""
        body = {
            "version": VERSION,
            "writer": self.writer,
            "seq": self.seq,
            "written_at": self.written_at,
            "files": [{"path": f.path, "rows": f.rows, "bytes": f.bytes} for f in self.files],
        }
        return json.dumps(body, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes, *, where: str = "a manifest entry") -> ManifestEntry:
        """Read an entry back.

        Raises:
            ConfigError: the bytes are not an entry of a known version (naming ``where``).
        """
        try:
            body = json.loads(data)
            if body.get("version") != VERSION:
                raise ValueError(f"version {body.get('version')!r}, this reader knows {VERSION}")
            files = tuple(
                ManifestFile(str(f["path"]), int(f["rows"]), int(f["bytes"])) for f in body["files"]
            )
            return cls(str(body["writer"]), int(body["seq"]), files, float(body["written_at"]))
        except (ValueError, KeyError, TypeError) as err:
            raise ConfigError(f"{where} is not a bronze manifest entry: {err}", path=where) from err


def bronze_partition(path: str) -> tuple[str, str, str] | None:
    """``(ingestion_id, date, hour)`` of a bronze file's path (the id unquoted); None if the
    path is outside the layout."""
    found = _PARTITION.search(path)
    if found is None:
        return None
    return unquote(found.group(1)), found.group(2), found.group(3)


_PARTITION = re.compile(r"ingestion_id=([^/]+)/date=([^/]+)/hour=([^/]+)/")


def entry_path(writer: str, seq: int) -> str:
    """Where entry ``seq`` of ``writer`` lives, relative to the lake root."""
    return f"{MANIFEST_DIR}/writer={writer}/{seq // ENTRIES_PER_DIRECTORY:08d}/{seq:012d}.json"


def new_writer_id() -> str:
    """A writer id: the start time in nanoseconds, then randomness (ids sort by start)."""
    return f"{time.time_ns():020d}-{secrets.token_hex(4)}"


class ManifestWriter:
    """Puts one writer's entries, in order, through the bronze storage.

    Used by one thread (the bronze flusher). A failed write raises and leaves the sequence
    number where it was: the next flush puts the same number again.
    """

    def __init__(self, storage: LakeStorage, writer: str | None = None) -> None:
        self._storage = storage
        self.writer = writer or new_writer_id()
        self.next_seq = 0

    def record(self, files: Sequence[ManifestFile]) -> ManifestEntry:
        """Write the entry naming ``files`` (already durable); returns it.

        Raises:
            StorageError: the entry could not be written (nothing is recorded).
        """
        entry = ManifestEntry(self.writer, self.next_seq, tuple(files), time.time())
        self._storage.write_bytes(entry_path(self.writer, entry.seq), entry.to_json())
        self.next_seq += 1
        return entry
