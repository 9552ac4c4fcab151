"""Reading the bronze manifest: what is new since an offset, without listing bronze.

An *offset* maps each writer id to the last sequence number read (``{}``: nothing read). What
is new is found by asking for the next entry names of every writer; only ``_manifest/`` itself
is listed, to find writers that started since (one name per ingest process lifetime). So the
cost of a look is the number of writers plus what is new, however much bronze holds.

The writer side, the entry format and the layout are in :mod:`workbench.lake.manifest`.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from workbench.lake.manifest import MANIFEST_DIR, ManifestEntry, entry_path
from workbench.lake.storage import LakeReader

__all__ = ["WRITER_PREFIX", "ManifestReader", "Offset", "Pending"]

log = logging.getLogger(__name__)

Offset = dict[str, int]
"""Writer id → the last sequence number read."""

#: How a writer's directory under ``_manifest/`` is named.
WRITER_PREFIX = "writer="


@dataclass(frozen=True)
class Pending:
    """What the manifest holds beyond an offset."""

    entries: int
    files: int
    oldest: float | None
    """When the oldest pending entry was written (epoch seconds), None if nothing is pending."""


class ManifestReader:
    """Finds and reads manifest entries through ``lake`` (a local directory or a bucket).

    Entries read are kept until :meth:`forget` drops those at or before an offset, so a batch's
    entries are read once though its range is asked for again when it is planned.
    """

    def __init__(self, lake: LakeReader) -> None:
        self._lake = lake
        self._entries: dict[tuple[str, int], ManifestEntry] = {}

    def writers(self) -> list[str]:
        """Every writer with a directory under ``_manifest/``, oldest first (ids sort by start)."""
        return [
            name[len(WRITER_PREFIX) :]
            for name in self._lake.names(MANIFEST_DIR)
            if name.startswith(WRITER_PREFIX)
        ]

    def entry(self, writer: str, seq: int) -> ManifestEntry | None:
        """Entry ``seq`` of ``writer``; None if it is not written (yet, or any more).

        Raises:
            ConfigError: the file is not an entry (a foreign or newer format).
            StorageError: the store cannot be read.
        """
        key = (writer, seq)
        found = self._entries.get(key)
        if found is not None:
            return found
        path = entry_path(writer, seq)
        data = self._lake.read_bytes(path)
        if data is None:
            return None
        found = ManifestEntry.from_json(data, where=path)
        self._entries[key] = found
        return found

    def advance(
        self,
        start: Mapping[str, int],
        *,
        max_files: int,
        until: Mapping[str, int] | None = None,
    ) -> Offset:
        """The offset after taking new entries from ``start``, about ``max_files`` files' worth.

        Writers take one entry each in turn, so a writer with a long backlog (a backfill) does
        not hold back the others. At least one entry is taken when any is new, however many
        files it names. Writers in ``start`` that are no longer listed keep their position.
        With ``until``, no writer goes past its number there (nor moves when absent from it).
        """
        position = {writer: start.get(writer, -1) for writer in self.writers()}
        position.update({w: s for w, s in start.items() if w not in position})
        budget, taken = max_files, False
        active = sorted(w for w in position if until is None or w in until)
        while active:
            still: list[str] = []
            for writer in active:
                if until is not None and position[writer] >= until[writer]:
                    continue
                entry = self.entry(writer, position[writer] + 1)
                if entry is None:
                    continue
                if taken and len(entry.files) > budget:
                    return _offset(position)
                position[writer] += 1
                budget -= len(entry.files)
                taken = True
                still.append(writer)
            active = still
        return _offset(position)

    def end(self, start: Mapping[str, int] | None = None) -> Offset:
        """The offset after every entry written beyond ``start`` (default: from the beginning).

        Probes each writer's entries after its position by name: costs what is new.
        """
        return self.advance(start or {}, max_files=sys.maxsize)

    def between(self, start: Mapping[str, int], end: Mapping[str, int]) -> list[ManifestEntry]:
        """The entries after ``start`` up to and including ``end``, by writer then number.

        An entry gone from the manifest (pruned by retention after its files) is skipped with a
        warning: its files are gone too.
        """
        entries: list[ManifestEntry] = []
        for writer in sorted(end):
            for seq in range(start.get(writer, -1) + 1, end[writer] + 1):
                entry = self.entry(writer, seq)
                if entry is None:
                    log.warning(
                        "bronze manifest entry missing, skipped writer=%s seq=%s", writer, seq
                    )
                    continue
                entries.append(entry)
        return entries

    def pending(self, start: Mapping[str, int], *, limit: int = 100_000) -> Pending:
        """What is written beyond ``start`` (entries counted up to ``limit`` per writer)."""
        self.forget(start)
        entries = files = 0
        oldest: float | None = None
        for writer in self.writers():
            seq = start.get(writer, -1) + 1
            for _ in range(limit):
                entry = self.entry(writer, seq)
                if entry is None:
                    break
                entries, files = entries + 1, files + len(entry.files)
                oldest = entry.written_at if oldest is None else min(oldest, entry.written_at)
                seq += 1
        return Pending(entries, files, oldest)

    def gone_segments(self, kept: Callable[[ManifestEntry], bool]) -> list[str]:
        """Directories of entries (relative to the lake root) with no entry ``kept``.

        Each writer's directories are looked at oldest first, each from its newest entry
        back; the first directory with a kept entry stops that writer (what follows is newer).
        """
        gone: list[str] = []
        for writer in self.writers():
            folder = f"{MANIFEST_DIR}/{WRITER_PREFIX}{writer}"
            for segment in sorted(n for n in self._lake.names(folder) if n.isdigit()):
                names = self._lake.names(f"{folder}/{segment}")
                seqs = sorted((int(n[:-5]) for n in names if n[:-5].isdigit()), reverse=True)
                entries = (self.entry(writer, seq) for seq in seqs)
                if any(entry is not None and kept(entry) for entry in entries):
                    break
                gone.append(f"{folder}/{segment}")
        return gone

    def forget(self, upto: Mapping[str, int]) -> None:
        """Drop the entries kept in memory at or before ``upto`` (a committed offset)."""
        self._entries = {
            (writer, seq): entry
            for (writer, seq), entry in self._entries.items()
            if seq > upto.get(writer, -1)
        }


def _offset(position: Mapping[str, int]) -> Offset:
    return {writer: seq for writer, seq in sorted(position.items()) if seq >= 0}
