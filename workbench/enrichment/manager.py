"""The stream manager (F21): start, watch, restart with backoff, and stop streaming queries.

Queries are registered by name with a function that starts them; a monitor thread restarts a
query that stopped or failed, waiting ``min(cap, base * 2**(failures-1))`` seconds first, so a
query that keeps failing does not spin. The manager knows nothing of what each query does, so
the engine can manage enrichment and gold streams alike.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pyspark.sql.streaming import StreamingQuery

log = logging.getLogger(__name__)

StartQuery = Callable[[], StreamingQuery]

#: A query that ran this long before failing is considered healthy again (backoff resets).
HEALTHY_SECONDS = 60.0


@dataclass
class ManagedQuery:
    """One registered query and its restart bookkeeping."""

    name: str
    start: StartQuery
    query: StreamingQuery | None = None
    started_at: float = 0.0
    failures: int = 0
    restarts: int = 0
    retry_at: float = 0.0
    last_error: str | None = None


class StreamManager:
    """Owns the engine's streaming queries.

    Args:
        backoff_base: seconds before the first restart.
        backoff_cap: longest wait between restarts.
        on_failure: called with ``(name, error)`` when a query is found failed (metrics).
    """

    def __init__(
        self,
        *,
        backoff_base: float = 1.0,
        backoff_cap: float = 60.0,
        on_failure: Callable[[str, str], None] | None = None,
    ) -> None:
        self._queries: dict[str, ManagedQuery] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._base = backoff_base
        self._cap = backoff_cap
        self._on_failure = on_failure

    def register(self, name: str, start: StartQuery) -> None:
        """Add a query; it starts with :meth:`start_all`."""
        self._queries[name] = ManagedQuery(name, start)

    def start_all(self, *, poll_seconds: float = 1.0) -> None:
        """Start every registered query and the monitor thread."""
        for managed in self._queries.values():
            self._start(managed)
        self._thread = threading.Thread(
            target=self._monitor, args=(poll_seconds,), name="stream-monitor", daemon=True
        )
        self._thread.start()

    def _start(self, managed: ManagedQuery) -> None:
        managed.query = managed.start()
        managed.started_at = time.monotonic()

    def _monitor(self, poll_seconds: float) -> None:
        while not self._stopping.wait(poll_seconds):
            self.check()

    def check(self) -> None:
        """One monitor pass: note stopped queries, restart those whose backoff has passed."""
        for managed in self._queries.values():
            with self._lock:
                if self._stopping.is_set():
                    return
                self._check(managed)

    def _check(self, managed: ManagedQuery) -> None:
        query = managed.query
        now = time.monotonic()
        if query is not None and query.isActive:
            return
        if query is not None:
            # Newly found stopped: record why, schedule the restart.
            error = query.exception()
            managed.last_error = str(error) if error is not None else "stopped"
            if now - managed.started_at >= HEALTHY_SECONDS:
                managed.failures = 0
            managed.failures += 1
            delay = min(self._cap, self._base * 2 ** (managed.failures - 1))
            managed.retry_at = now + delay
            managed.query = None
            log.error(
                "stream stopped query=%s failures=%d retry_in_s=%.1f error=%s",
                managed.name,
                managed.failures,
                delay,
                managed.last_error,
            )
            if self._on_failure is not None:
                self._on_failure(managed.name, managed.last_error)
            return
        if now >= managed.retry_at:
            try:
                self._start(managed)
            except Exception as err:  # noqa: BLE001 - a start can fail like a batch; retry with backoff
                managed.failures += 1
                managed.last_error = str(err)
                managed.retry_at = now + min(self._cap, self._base * 2 ** (managed.failures - 1))
                log.error("stream restart failed query=%s error=%s", managed.name, err)
                return
            managed.restarts += 1
            log.info("stream restarted query=%s restarts=%d", managed.name, managed.restarts)

    def status(self) -> list[dict[str, Any]]:
        """Per query: name, active, last batch id, rates, last batch duration, error."""
        return [_status(m) for m in self._queries.values()]

    def active_count(self) -> int:
        """How many managed queries are running."""
        return sum(1 for m in self._queries.values() if m.query is not None and m.query.isActive)

    def stop_all(self) -> None:
        """Stop the monitor, then each query (bounded by ``spark.sql.streaming.stopTimeout``)."""
        self._stopping.set()
        # Join first: the monitor finishes its current check and must not restart anything.
        if self._thread is not None:
            self._thread.join(timeout=10)
        with self._lock:
            for managed in self._queries.values():
                if managed.query is not None and managed.query.isActive:
                    log.info("stopping stream query=%s", managed.name)
                    try:
                        managed.query.stop()
                    except Exception as err:  # noqa: BLE001 - keep stopping the others; the error is logged
                        log.error("stream stop failed query=%s error=%s", managed.name, err)


def _status(managed: ManagedQuery) -> dict[str, Any]:
    query = managed.query
    progress: dict[str, Any] = {}
    active = False
    error = managed.last_error
    if query is not None:
        active = query.isActive
        progress = query.lastProgress or {}
        exc = None if active else query.exception()
        if exc is not None:
            error = str(exc)
    durations = progress.get("durationMs") or {}
    return {
        "name": managed.name,
        "id": str(query.id) if query is not None else None,
        "active": active,
        "last_batch_id": progress.get("batchId"),
        "input_rows_per_second": progress.get("inputRowsPerSecond"),
        "processed_rows_per_second": progress.get("processedRowsPerSecond"),
        "last_batch_duration_ms": durations.get("triggerExecution"),
        "restarts": managed.restarts,
        "exception": error,
    }
