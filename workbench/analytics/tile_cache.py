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
from workbench.analytics.query_service import QueryResult
from workbench.analytics.sensitivity import CLEARANCE, SensitivityDenied
from workbench.catalog.records import Tile
from workbench.catalog.users import Identity

__all__ = ["MIN_REFRESH_SECONDS", "TileCache"]

#: The least time between two checks of one tile's data.
MIN_REFRESH_SECONDS = 15.0
#: A table's version read for one tile serves the others checking within this time: tiles
#: filled together expire together, and each would otherwise ask Spark for the same history.
VERSION_REUSE_SECONDS = 1.0

_Key = tuple[str, str, tuple[tuple[str, str], ...], str]


@dataclass
class _Entry:
    result: QueryResult | None
    body: dict[str, Any] | None
    """``result`` as answered, built once per run, not once per request."""
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
        self._versions: dict[str, tuple[float, int]] = {}
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
        assert entry.result is not None and entry.body is not None
        if not fresh:  # a fresh run was audited by the query service itself
            self.computations.service.audit(
                identity, entry.result, computation.sql, computation=computation.name
            )
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
        versions = self._table_versions(tables, now)
        devices = service.devices_key()
        if entry is not None and versions == entry.versions and devices == entry.devices:
            entry.checked_at = now
            return entry, False
        with self._guard:
            self.runs += 1
        result: QueryResult | None = None
        denied: SensitivityDenied | None = None
        try:
            result = self.computations.run(tile.computation, identity, parameters=tile.parameters)
        except SensitivityDenied as refused:
            denied = refused
        body = result.to_dict() if result is not None else None
        fresh = _Entry(
            result, body, denied, tuple(tables), versions, devices, datetime.now(UTC), now
        )
        self._entries[key] = fresh
        return fresh, True

    def _table_versions(self, tables: tuple[str, ...], now: float) -> dict[str, int]:
        """The tables' Delta versions, asking Spark only for those not read just now."""
        with self._guard:
            known = {
                t: v
                for t, (at, v) in self._versions.items()
                if t in tables and now - at < VERSION_REUSE_SECONDS
            }
        missing = [t for t in tables if t not in known]
        if missing:
            read = self.computations.service.table_versions(missing)
            with self._guard:
                self._versions.update({t: (now, v) for t, v in read.items()})
            known.update(read)
        return {t: known[t] for t in tables if t in known}
