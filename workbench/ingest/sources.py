"""Source lifecycle: create, update, delete, start, stop, restart, health.

Sources are stored in the catalog (through the :class:`SourceStore` protocol, so this layer
never imports the catalog) and run in this process. Updating a running source restarts it with
the new config; deleting one stops it first. Every config is validated against its type's JSON
schema before anything is stored.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Protocol

from workbench.connectors.base import Connector, SourceHealth
from workbench.connectors.registry import ConnectorRegistry, SourceContext
from workbench.core.errors import CatalogError, NotFoundError
from workbench.core.masking import mask_text
from workbench.metrics.ingestor import IngestMetrics

log = logging.getLogger(__name__)

PUSH_SOURCE_SECONDS = 2.0
"""How long the REST push path answers from its last read of the sources (see
:meth:`SourceManager.cached_push_source`)."""


class SourceStore(Protocol):
    """Where sources are kept (the catalog)."""

    def list_sources(self) -> list[dict[str, Any]]: ...

    def save_source(self, name: str, source_type: str, config: dict[str, Any]) -> str: ...

    def delete_source(self, name: str) -> None: ...

    def set_source_enabled(self, name: str, enabled: bool) -> None: ...


class SourceManager:
    """The sources of this ingest process."""

    def __init__(
        self,
        registry: ConnectorRegistry,
        store: SourceStore,
        context: SourceContext,
        metrics: IngestMetrics,
    ) -> None:
        self.registry = registry
        self._store = store
        self._context = context
        self._metrics = metrics
        self._running: dict[str, Connector] = {}
        self._lock = threading.RLock()
        # The push path's last read of the sources: (monotonic time, records by name). Changes
        # made here bump the generation and drop it at once; a read that overlapped a change
        # is not kept (it may predate the change).
        self._snapshot: tuple[float, dict[str, dict[str, Any]]] | None = None
        self._generation = 0

    # -- queries --------------------------------------------------------------------------------

    def records(self) -> dict[str, dict[str, Any]]:
        """Stored sources by name."""
        return {r["name"]: r for r in self._store.list_sources()}

    def record(self, name: str) -> dict[str, Any]:
        """One stored source.

        Raises:
            NotFoundError: naming the known sources.
        """
        records = self.records()
        if name not in records:
            known = ", ".join(sorted(records)) or "none"
            raise NotFoundError(f"no source named {name!r}; known: {known}", source=name)
        return records[name]

    def push_ingestion_id(self, name: str) -> tuple[str, dict[str, Any]]:
        """``(ingestion_id, config)`` of an enabled REST push source, read from the catalog.

        The read is kept for :meth:`cached_push_source`.

        Raises:
            NotFoundError: no such source, or not a REST push source.
            CatalogError: the source is stopped.
        """
        generation = self._generation
        records = self.records()
        if generation == self._generation:
            self._snapshot = (time.monotonic(), records)
        return _push_source(name, records)

    def cached_push_source(self, name: str) -> tuple[str, dict[str, Any]] | None:
        """:meth:`push_ingestion_id` from the last catalog read if it is younger than
        :data:`PUSH_SOURCE_SECONDS`, else None (the caller reads the catalog, off the event
        loop).

        Every push looked its source up in the catalog: one SQLite transaction per request.
        Changes made through this manager take effect at once; changes another process makes
        in the catalog within :data:`PUSH_SOURCE_SECONDS`. Only the source is cached here,
        never who may push: API tokens are checked on every request.

        Raises:
            NotFoundError: no such source, or not a REST push source.
            CatalogError: the source is stopped.
        """
        snapshot = self._snapshot
        if snapshot is None or time.monotonic() - snapshot[0] >= PUSH_SOURCE_SECONDS:
            return None
        return _push_source(name, snapshot[1])

    def _changed(self) -> None:
        """Forget the push path's snapshot: the stored sources just changed."""
        self._generation += 1
        self._snapshot = None

    def health(self, name: str | None = None) -> list[SourceHealth]:
        """Health of one source or all: running connectors report their own state."""
        with self._lock:
            records = [self.record(name)] if name else list(self.records().values())
            out = []
            for rec in records:
                connector = self._running.get(rec["name"])
                if connector is not None:
                    out.append(connector.health())
                else:
                    # An enabled push source has no connector: it runs whenever the API does.
                    passive = rec["type"] == "rest_push" and rec["enabled"]
                    out.append(
                        SourceHealth(
                            name=rec["name"],
                            type=rec["type"],
                            ingestion_id=rec["ingestion_id"],
                            running=passive,
                            connected=passive,
                        )
                    )
            return out

    def connectors(self) -> list[Connector]:
        """The running connectors."""
        with self._lock:
            return list(self._running.values())

    # -- lifecycle ------------------------------------------------------------------------------

    def create(self, name: str, source_type: str, config: dict[str, Any]) -> dict[str, Any]:
        """Validate, store and start a new source."""
        if name in self.records():
            raise CatalogError(f"a source named {name!r} exists; update or delete it", source=name)
        # Nothing stored to restore: a mask copied from another source's answer is refused.
        self.registry.restore_config(source_type, config, {})
        self.registry.validate(source_type, config)
        self._store.save_source(name, source_type, config)
        self._changed()
        try:
            self.start(name)
        except Exception:
            # A source that cannot start (refused target, bad credentials) is not kept.
            self._store.delete_source(name)
            self._changed()
            raise
        return self.record(name)

    def ensure(self, name: str, source_type: str, config: dict[str, Any]) -> None:
        """Store a source unless one of that type exists (first-start defaults); not started."""
        if any(r["type"] == source_type for r in self.records().values()):
            return
        # Not validated: defaults come from typed settings, and validation would load
        # jsonschema (~30 MB) into every fresh ingest process.
        self._store.save_source(name, source_type, config)
        self._changed()

    def update(self, name: str, config: dict[str, Any]) -> dict[str, Any]:
        """Replace a source's config; a running source restarts with it.

        Values a client echoes back masked (``***``, ``https://user:***@host``) keep the stored
        secret instead of overwriting it with the mask.
        """
        record = self.record(name)
        config = self.registry.restore_config(record["type"], config, record["config"] or {})
        self.registry.validate(record["type"], config)
        with self._lock:
            was_running = name in self._running
            self._stop_connector(name)
            self._store.save_source(name, record["type"], config)
            self._changed()
            if was_running or record["enabled"]:
                self.start(name)
        return self.record(name)

    def delete(self, name: str) -> None:
        """Stop a source and remove it (its bronze data stays)."""
        self.record(name)
        with self._lock:
            self._stop_connector(name)
            self._store.delete_source(name)
            self._changed()

    def start(self, name: str) -> None:
        """Start one source (no-op if running)."""
        record = self.record(name)
        with self._lock:
            self._store.set_source_enabled(name, True)
            self._changed()
            if name in self._running:
                return
            kind = self.registry.get(record["type"])
            connector = kind.factory(
                name, record["ingestion_id"], dict(record["config"]), self._context
            )
            if connector is None:
                return
            connector.start()
            self._running[name] = connector
            self._metrics.active_sources.labels(self._metrics.pod, record["type"]).inc()
            log.info("source started name=%s type=%s", name, record["type"])

    def stop(self, name: str) -> None:
        """Stop one source; it stays stopped across restarts of the service."""
        self.record(name)
        with self._lock:
            self._stop_connector(name)
            self._store.set_source_enabled(name, False)
            self._changed()

    def restart(self, name: str) -> None:
        """Stop then start one source."""
        with self._lock:
            self._stop_connector(name)
            self.start(name)

    def start_all(self) -> None:
        """Start every enabled source; one that fails to start is reported, not fatal."""
        for name, record in self.records().items():
            if record["enabled"]:
                try:
                    self.start(name)
                except Exception as err:  # noqa: BLE001 - other sources must still run
                    log.error("source failed to start name=%s error=%s", name, mask_text(str(err)))

    def stop_all(self) -> None:
        """Stop every running source (for shutdown: enabled flags are kept)."""
        with self._lock:
            for name in list(self._running):
                self._stop_connector(name)

    def _stop_connector(self, name: str) -> None:
        connector = self._running.pop(name, None)
        if connector is not None:
            connector.stop()
            self._metrics.active_sources.labels(
                self._metrics.pod, getattr(connector, "type", "?")
            ).dec()
            log.info("source stopped name=%s", name)


def _push_source(name: str, records: dict[str, dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    """``(ingestion_id, config)`` of the enabled REST push source ``name`` among ``records``."""
    record = records.get(name)
    if record is None:
        known = ", ".join(sorted(records)) or "none"
        raise NotFoundError(f"no source named {name!r}; known: {known}", source=name)
    if record["type"] != "rest_push":
        raise NotFoundError(
            f"source {name!r} is a {record['type']} source, not rest_push", source=name
        )
    if not record["enabled"]:
        raise CatalogError(f"source {name!r} is stopped; start it to accept pushes", source=name)
    return record["ingestion_id"], record["config"]
