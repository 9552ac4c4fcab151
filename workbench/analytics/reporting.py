"""Reports computation runs to the engine, which exports them as Prometheus metrics.

Computations run in kernels and Voila apps, as Spark Connect clients: only they know how long a
run took as the user saw it. An :class:`EngineReporter` is the ``observer`` of
:func:`workbench.analytics.computations.run_computation`; it posts each run to the engine's
``POST /api/computations/executions`` from a background thread, so a slow or absent engine
never delays a notebook. Reports that cannot be delivered are dropped after a warning: they
are measurements, not data.
"""

from __future__ import annotations

import logging
import queue
import threading

import httpx

from workbench.core.settings import Settings

__all__ = ["EngineReporter"]

logger = logging.getLogger(__name__)

_QUEUE_SIZE = 1000


class EngineReporter:
    """Posts ``(name, seconds, status)`` of computation runs to the engine, in the background."""

    def __init__(self, settings: Settings, *, timeout: float = 5.0) -> None:
        self.url = (
            f"http://{settings.engine.host}:{settings.engine.port}/api/computations/executions"
        )
        self._timeout = timeout
        self._queue: queue.Queue[dict[str, object]] = queue.Queue(_QUEUE_SIZE)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._warned = False

    def __call__(self, name: str, seconds: float, status: str) -> None:
        """Queue one report (dropped when the queue is full: the engine is away)."""
        try:
            self._queue.put_nowait({"name": name, "seconds": seconds, "status": status})
        except queue.Full:
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="engine-reporter", daemon=True
                )
                self._thread.start()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued report was sent or dropped; False on timeout (tests)."""
        done = threading.Event()

        def _wait() -> None:
            self._queue.join()
            done.set()

        threading.Thread(target=_wait, daemon=True).start()
        return done.wait(timeout)

    def _run(self) -> None:
        with httpx.Client(timeout=self._timeout) as client:
            while True:
                report = self._queue.get()
                try:
                    client.post(self.url, json=report).raise_for_status()
                except httpx.HTTPError as err:
                    if not self._warned:
                        logger.warning("computation metrics not delivered to %s: %s", self.url, err)
                        self._warned = True
                finally:
                    self._queue.task_done()
