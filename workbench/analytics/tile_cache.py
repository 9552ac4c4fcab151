"""Tile results shared by every viewer: one Spark job per new version of the data.

A tile's result is kept per (computation and its SQL, parameter values, clearance). A request
within ``min_refresh_seconds`` of the last check is answered from memory; after that the
Delta versions of the tables the result read (and the devices' labels) are compared, and the
computation runs again only when one of them changed. One refresh per key at a time: viewers
asking while it runs wait for it and share its answer. A denial (the result is above the
clearance) is kept the same way, so twenty viewers without clearance cost one derivation.

A result read from the cache is audited like a fresh one when its label calls for it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from workbench.analytics.computation_runner import Computations
from workbench.analytics.sensitivity import AUDITED, CLEARANCE, SensitivityDenied, rank
from workbench.catalog.records import Tile
from workbench.catalog.users import Identity

__all__ = ["MIN_REFRESH_SECONDS", "TileCache"]

#: The least time between two checks of one tile's data.
MIN_REFRESH_SECONDS = 15.0

_Key = tuple[str, str, tuple[tuple[str, str], ...], str]


@dataclass
class _Entry:
    body: dict[str, Any] | None
    denied: SensitivityDenied | None
    tables: tuple[str, ...]
    versions: dict[str, int]
    devices: tuple[Any, ...]
    computed_at: datetime
    checked_at: float


class TileCache:
    """Serves tile results from memory, refreshing them when their data changed.

    Args:
        computations: runs the tiles' computations (the query service behind it).
        min_refresh_seconds: the least time between two checks of one key.
        clock: monotonic seconds (tests).
    """

    def __init__(
        self,
        computations: Computations,
        *,
        min_refresh_seconds: float = MIN_REFRESH_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.computations = computations
        self.min_refresh_seconds = min_refresh_seconds
        self._clock = clock
        self._entries: dict[_Key, _Entry] = {}
        self._locks: dict[_Key, threading.Lock] = {}
        self._guard = threading.Lock()
        self.runs = 0
        """Computations run so far (each a Spark job): what the cache saves is counted here."""

    def answer(self, tile: Tile, identity: Identity) -> dict[str, Any]:
        """The tile's result for ``identity``: the query answer plus ``cached_at`` (when it was
        computed), ``age_seconds`` and ``from_cache``.

        Raises:
            SensitivityDenied: the result is above the caller's clearance.
            NotFoundError: the tile's computation is gone.
        """
        computation = self.computations.catalog.get_computation(tile.computation)
        params = tuple(sorted((k, repr(v)) for k, v in tile.parameters.items()))
        key: _Key = (computation.name, computation.sql, params, CLEARANCE[identity.role])
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:  # one refresh per key; the others wait and share it
            entry, fresh = self._current(key, tile, identity)
        if entry.denied is not None:
            # A copy per caller: the kept one re-raised would gather every request's frames.
            raise SensitivityDenied(entry.denied.message, **entry.denied.fields)
        assert entry.body is not None
        label = entry.body["sensitivity"]["label"]
        if fresh is False and rank(label) >= rank(AUDITED):
            self._audit(identity, computation.name, computation.sql, entry)
        age = (datetime.now(UTC) - entry.computed_at).total_seconds()
        return {
            **entry.body,
            "cached_at": entry.computed_at.isoformat(),
            "age_seconds": round(age, 3),
            "from_cache": not fresh,
            "versions": dict(entry.versions),
        }

    def _current(self, key: _Key, tile: Tile, identity: Identity) -> tuple[_Entry, bool]:
        """The entry for ``key``, refreshed if its data changed; and whether it was run now."""
        now = self._clock()
        entry = self._entries.get(key)
        if entry is not None and now - entry.checked_at < self.min_refresh_seconds:
            return entry, False
        service = self.computations.service
        # The tables a computation reads follow from its text; their versions are read before
        # the run, so a version landing during the run makes the next check run again and
        # never hides new data.
        if entry is not None:
            tables = entry.tables
        else:
            prepared = self.computations.prepare(tile.computation, tile.parameters)
            tables = prepared.derivation.tables
        versions = service.table_versions(tables)
        devices = service.devices_key()
        if entry is not None and versions == entry.versions and devices == entry.devices:
            entry.checked_at = now
            return entry, False
        with self._guard:
            self.runs += 1
        body: dict[str, Any] | None = None
        denied: SensitivityDenied | None = None
        try:
            result = self.computations.run(tile.computation, identity, parameters=tile.parameters)
            body = result.to_dict()
        except SensitivityDenied as refused:
            denied = refused
        fresh = _Entry(body, denied, tuple(tables), versions, devices, datetime.now(UTC), now)
        self._entries[key] = fresh
        return fresh, True

    def _audit(self, identity: Identity, name: str, sql: str, entry: _Entry) -> None:
        assert entry.body is not None
        label = entry.body["sensitivity"]
        self.computations.catalog.audit_read(
            user=identity.user,
            role=identity.role,
            sensitivity=label["label"],
            sql=sql,
            computation=name,
            tables=list(label["tables"]),
            devices=sorted(label["devices"]),
            rows=int(entry.body["row_count"]),
        )
