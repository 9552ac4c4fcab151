"""The stream manager: start, stop, restart, watch and report the engine's queries.

Queries are registered by name with a function that starts them (and, optionally, one that
measures their lag behind their input, see :mod:`workbench.streams.queries`). The manager knows
nothing of what each query does, so the engine manages enrichment and gold streams alike.

- **By name**: :meth:`StreamManager.start`, :meth:`~StreamManager.stop` and
  :meth:`~StreamManager.restart`. A query stopped by name stays stopped: the monitor only
  restarts queries that are meant to run.
- **Automatic restart**: the monitor thread restarts a query that failed or ended, waiting
  ``min(cap, base * 2**(failures-1))`` seconds first, so a query that keeps failing does not
  spin; a query that ran :data:`HEALTHY_SECONDS` before failing starts the backoff afresh.
  A query whose batch (or start) failed with a terminal error
  (:func:`~workbench.core.errors.is_terminal`, kept in the manager's
  :class:`~workbench.streams.queries.BatchFailures`) is not restarted: its status says
  ``failed`` with the error's code and ``restart_scheduled`` false until it is started by
  name. Transient and unknown failures (a lost executor looks like any Spark error) are
  restarted with the capped backoff.
- **Graceful stop**: a stop waits for the running micro-batch to finish (up to the stop
  timeout, 30 s in the engine), then stops the query; Spark's own
  ``spark.sql.streaming.stopTimeout`` bounds the stop itself. A batch cut short is no loss: it is
  replayed from the checkpoint and its writes are idempotent.
- **Schema watchdog**: :meth:`StreamManager.watch_schema` restarts chosen queries gracefully when
  a known dataset's schema version rises, so a stream that reads with the merged schema picks
  up new and widened fields. A new dataset's first version is its baseline: new sensors arrive
  all the time and must not restart the stream each. The restarted query resumes from its
  checkpoint and its writes are idempotent: nothing is lost or processed twice.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from pyspark.sql.streaming import StreamingQuery

from workbench.core.errors import EngineError, NotFoundError, error_code, is_terminal
from workbench.streams.queries import BatchFailures
from workbench.streams.status import Lag, State, StreamStatus

log = logging.getLogger(__name__)

StartQuery = Callable[[], StreamingQuery]

#: A query that ran this long before failing is considered healthy again (backoff resets).
HEALTHY_SECONDS = 60.0

#: How long a stop waits for the running batch before stopping the query anyway.
STOP_TIMEOUT_SECONDS = 30.0


class LagProbe(Protocol):
    """Measures a query's lag behind its input (:class:`workbench.streams.status.Lag`)."""

    def __call__(self) -> Lag:
        """The lag now."""
        ...


SchemaVersions = Callable[[], Mapping[str, int]]


@dataclass
class ManagedQuery:
    """One registered query and its restart bookkeeping."""

    name: str
    start: StartQuery
    lag: LagProbe | None = None
    query: StreamingQuery | None = None
    wanted: bool = False
    started_at: float = 0.0
    failures: int = 0
    restarts: int = 0
    retry_at: float = 0.0
    last_error: str | None = None
    error_code: str | None = None
    terminal: bool = False
    """The last failure was terminal: the monitor does not restart the query."""
    last_restart_reason: str | None = None
    stopping: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


@dataclass
class _SchemaWatch:
    versions: SchemaVersions
    queries: tuple[str, ...]
    every_seconds: float
    seen: dict[str, int]
    next_at: float = 0.0


class StreamManager:
    """Owns the engine's streaming queries.

    Args:
        backoff_base: seconds before the first automatic restart.
        backoff_cap: longest wait between automatic restarts.
        stop_timeout: seconds a stop waits for the running batch to finish.
        on_failure: called with ``(name, error)`` when a query is found failed (metrics).
        on_terminal: called with ``(name, code)`` when a terminal error stops a query for good
            (metrics).
    """

    def __init__(
        self,
        *,
        backoff_base: float = 1.0,
        backoff_cap: float = 60.0,
        stop_timeout: float = STOP_TIMEOUT_SECONDS,
        on_failure: Callable[[str, str], None] | None = None,
        on_terminal: Callable[[str, str], None] | None = None,
    ) -> None:
        #: Hand this to every query registered here (``start_batch_query(failures=...)``): it is
        #: how the manager tells a terminal batch failure from one worth a restart.
        self.failures = BatchFailures()
        self._queries: dict[str, ManagedQuery] = {}
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._base = backoff_base
        self._cap = backoff_cap
        self.stop_timeout = stop_timeout
        self._on_failure = on_failure
        self._on_terminal = on_terminal
        self._watch: _SchemaWatch | None = None

    # -- registration and the monitor ------------------------------------------------------

    def register(self, name: str, start: StartQuery, *, lag: LagProbe | None = None) -> None:
        """Add a query; it starts with :meth:`start_all` (or :meth:`start`).

        Registering and unregistering are safe while the monitor runs: it works on a snapshot.

        Args:
            name: the query's name (its checkpoint is named after it).
            start: starts the query and returns it.
            lag: measures the query's lag behind its input, shown by :meth:`status`.
        """
        self._queries[name] = ManagedQuery(name, start, lag=lag)

    def unregister(self, name: str) -> None:
        """Stop a query gracefully (as :meth:`stop` does) and forget it.

        Queries come and go while the engine runs (stream computations): a query registered
        again under the same name starts afresh, with the new ``start``.

        Raises:
            NotFoundError: if no query has that name.
        """
        managed = self._get(name)
        with managed.lock:
            managed.wanted = False
            try:
                self._stop(managed, time.monotonic() + self.stop_timeout)
            finally:
                self._queries.pop(name, None)
        log.info("stream unregistered query=%s", name)

    def names(self) -> list[str]:
        """Registered query names, in registration order."""
        return list(self._queries)

    def watch_schema(
        self, versions: SchemaVersions, *, queries: Iterable[str], every_seconds: float = 5.0
    ) -> None:
        """Restart ``queries`` gracefully whenever a schema version in ``versions()`` rises.

        Args:
            versions: ``{dataset: schema_version}`` now (the catalog's datasets).
            queries: names of the queries to restart (the enrichment query).
            every_seconds: how often the monitor looks.
        """
        self._watch = _SchemaWatch(versions, tuple(queries), every_seconds, dict(versions()))

    def start_all(self, *, poll_seconds: float = 1.0) -> None:
        """Start every registered query and the monitor thread.

        A query that fails to start is retried by the monitor with backoff, like a failed one
        (unless the error is terminal); the others run meanwhile and the status shows the error.
        """
        for managed in list(self._queries.values()):
            with managed.lock:
                managed.wanted = True
                try:
                    self._start(managed)
                except Exception as err:  # noqa: BLE001 - retried with backoff, shown in status
                    self._start_failed(managed, err, time.monotonic())
        self._thread = threading.Thread(
            target=self._monitor, args=(poll_seconds,), name="stream-monitor", daemon=True
        )
        self._thread.start()

    def _monitor(self, poll_seconds: float) -> None:
        while not self._stopping.wait(poll_seconds):
            try:
                self.check()
            except Exception as err:  # noqa: BLE001 - the monitor must outlive one bad pass
                log.error("stream monitor pass failed error=%s", err)

    def check(self) -> None:
        """One monitor pass: restart what failed (after its backoff), then the schema watch."""
        for managed in list(self._queries.values()):
            if self._stopping.is_set():
                return
            with managed.lock:
                self._check(managed)
        self.check_schema()

    def check_schema(self, *, force: bool = False) -> list[str]:
        """Compare schema versions with the last look; restart the watched queries if one rose.

        Args:
            force: look now even if ``every_seconds`` has not passed.

        Returns:
            The datasets whose schema version rose (empty if none, or if it was not time).
        """
        watch = self._watch
        now = time.monotonic()
        if watch is None or self._stopping.is_set() or (not force and now < watch.next_at):
            return []
        watch.next_at = now + watch.every_seconds
        current = dict(watch.versions())
        risen = sorted(d for d, v in current.items() if d in watch.seen and v > watch.seen[d])
        watch.seen = {**watch.seen, **current}
        if not risen:
            return []
        log.info("schema changed datasets=%s restarting=%s", ",".join(risen), watch.queries)
        for name in watch.queries:
            managed = self._queries.get(name)
            if managed is None:
                continue
            with managed.lock:
                if managed.wanted and managed.query is not None:
                    self._restart(managed, reason=f"schema change: {','.join(risen)}")
        return risen

    def _start(self, managed: ManagedQuery) -> None:
        self.failures.take(managed.name)  # a failure of an earlier run must not stop this one
        managed.query = managed.start()
        managed.started_at = time.monotonic()

    def _start_failed(self, managed: ManagedQuery, err: Exception, now: float) -> None:
        managed.query = None
        managed.failures += 1
        managed.last_error = f"start failed: {err}"
        managed.error_code = error_code(err)
        if is_terminal(err):
            self._stopped_for_good(managed)
            return
        managed.retry_at = now + min(self._cap, self._base * 2 ** (managed.failures - 1))
        log.error(
            "stream start failed query=%s code=%s error=%s", managed.name, managed.error_code, err
        )

    def _stopped_for_good(self, managed: ManagedQuery) -> None:
        """A terminal failure: no restart until an operator starts the query by name."""
        managed.terminal = True
        log.error(
            "stream failed terminally, not restarting query=%s code=%s error=%s; fix the cause "
            "and start it by name (`workbench streams start %s`)",
            managed.name,
            managed.error_code,
            managed.last_error,
            managed.name,
        )
        if self._on_terminal is not None:
            self._on_terminal(managed.name, managed.error_code or "unknown")

    def _check(self, managed: ManagedQuery) -> None:
        if not managed.wanted or managed.terminal:
            return
        query = managed.query
        now = time.monotonic()
        if query is not None and query.isActive:
            return
        if query is not None:
            # Newly found stopped: record why, schedule the restart (unless it was terminal).
            error = query.exception()
            failure = self.failures.take(managed.name)
            managed.last_error = (
                str(failure)
                if failure is not None
                else str(error)
                if error is not None
                else "ended"
            )
            managed.error_code = None if failure is None else error_code(failure)
            if now - managed.started_at >= HEALTHY_SECONDS:
                managed.failures = 0
            managed.failures += 1
            managed.query = None
            if self._on_failure is not None:
                self._on_failure(managed.name, managed.last_error)
            if failure is not None and is_terminal(failure):
                self._stopped_for_good(managed)
                return
            delay = min(self._cap, self._base * 2 ** (managed.failures - 1))
            managed.retry_at = now + delay
            log.error(
                "stream stopped query=%s failures=%d retry_in_s=%.1f code=%s error=%s",
                managed.name,
                managed.failures,
                delay,
                managed.error_code,
                managed.last_error,
            )
            return
        if now >= managed.retry_at:
            try:
                self._start(managed)
            except Exception as err:  # noqa: BLE001 - a start can fail like a batch; retry with backoff
                self._start_failed(managed, err, now)
                return
            managed.restarts += 1
            managed.last_restart_reason = "failure"
            log.info("stream restarted query=%s restarts=%d", managed.name, managed.restarts)

    # -- by name ---------------------------------------------------------------------------

    def _get(self, name: str) -> ManagedQuery:
        try:
            return self._queries[name]
        except KeyError:
            raise NotFoundError(
                f"no stream named {name!r}; known: {', '.join(self._queries)}", stream=name
            ) from None

    def start(self, name: str) -> StreamStatus:
        """Start a query (a no-op if it runs); it is restarted on failure from now on.

        Raises:
            NotFoundError: if no query has that name.
        """
        managed = self._get(name)
        with managed.lock:
            _want(managed)
            if managed.query is None or not managed.query.isActive:
                self._start(managed)
                log.info("stream started by name query=%s", name)
        return _status(managed)

    def stop(self, name: str) -> StreamStatus:
        """Stop a query gracefully; it stays stopped until started again.

        Raises:
            NotFoundError: if no query has that name.
        """
        managed = self._get(name)
        with managed.lock:
            managed.wanted = False
            self._stop(managed, time.monotonic() + self.stop_timeout)
            log.info("stream stopped by name query=%s", name)
        return _status(managed)

    def restart(self, name: str) -> StreamStatus:
        """Stop a query gracefully and start it again (from its checkpoint).

        Raises:
            NotFoundError: if no query has that name.
        """
        managed = self._get(name)
        with managed.lock:
            _want(managed)
            self._restart(managed, reason="by name")
        return _status(managed)

    def _restart(self, managed: ManagedQuery, *, reason: str) -> None:
        self._stop(managed, time.monotonic() + self.stop_timeout)
        self._start(managed)
        managed.restarts += 1
        managed.last_restart_reason = reason
        log.info("stream restarted query=%s reason=%s", managed.name, reason)

    def _stop(self, managed: ManagedQuery, deadline: float) -> None:
        query = managed.query
        if query is None or not query.isActive:
            managed.query = None
            return
        # The query stays visible (state "stopping", its batch running) while we wait.
        managed.stopping = True
        try:
            try:
                wait_for_batch(query, deadline)
            except Exception as err:  # noqa: BLE001 - progress unreadable: stop it anyway
                log.warning("stream batch wait failed query=%s error=%s", managed.name, err)
            query.stop()
        except Exception as err:
            # Spark gave up waiting for its thread (stopTimeout): report it, the query is gone.
            raise EngineError(
                f"stream {managed.name} did not stop cleanly: {err}", query=managed.name
            ) from err
        finally:
            managed.query = None
            managed.stopping = False

    # -- status and shutdown ---------------------------------------------------------------

    def status(self) -> list[StreamStatus]:
        """Every query's status, in registration order (see :class:`StreamStatus`)."""
        return [_status(m) for m in list(self._queries.values())]

    def status_of(self, name: str) -> StreamStatus:
        """One query's status.

        Raises:
            NotFoundError: if no query has that name.
        """
        return _status(self._get(name))

    def active_count(self) -> int:
        """How many managed queries are running."""
        return sum(
            1 for m in list(self._queries.values()) if m.query is not None and m.query.isActive
        )

    def stop_all(self, timeout: float | None = None) -> None:
        """Stop the monitor, then every query, each after its running batch (one deadline).

        Args:
            timeout: seconds to wait for running batches in all (default: the stop timeout).
        """
        self._stopping.set()
        # Join first: the monitor finishes its current pass and must not restart anything.
        if self._thread is not None:
            self._thread.join(timeout=self.stop_timeout + 10)
        deadline = time.monotonic() + (self.stop_timeout if timeout is None else timeout)
        for managed in list(self._queries.values()):
            with managed.lock:
                if managed.query is not None and managed.query.isActive:
                    log.info("stopping stream query=%s", managed.name)
                try:
                    self._stop(managed, deadline)
                except EngineError as err:  # keep stopping the others; the error is logged
                    log.error("stream stop failed query=%s error=%s", managed.name, err.message)


def wait_for_batch(query: StreamingQuery, deadline: float, *, poll_seconds: float = 0.05) -> bool:
    """Wait until the batch running now (if any) has finished, or until ``deadline``.

    A batch has finished when the trigger is idle, or when a newer progress event exists: under
    load the next trigger may start at once, so waiting for an idle trigger alone could miss it.

    Returns:
        ``True`` if no batch was running or it finished, ``False`` at the deadline.
    """
    running = _trigger_active(query)
    if not running:
        return True
    before = _progress_key(query)
    while time.monotonic() < deadline:
        if not query.isActive or not _trigger_active(query) or _progress_key(query) != before:
            return True
        time.sleep(poll_seconds)
    log.warning("stream batch still running at the stop timeout query=%s", query.name)
    return False


def _trigger_active(query: StreamingQuery) -> bool:
    try:
        return bool(query.status.get("isTriggerActive"))
    except Exception:  # noqa: BLE001 - a query that just ended has no status to give
        return False


def _progress_key(query: StreamingQuery) -> tuple[Any, Any]:
    progress = query.lastProgress or {}
    return progress.get("batchId"), progress.get("timestamp")


def _state(managed: ManagedQuery, active: bool) -> State:
    if managed.stopping:
        return "stopping"
    if active:
        return "running"
    if not managed.wanted:
        return "stopped"
    return "ended" if managed.last_error in (None, "ended") else "failed"


def _status(managed: ManagedQuery) -> StreamStatus:
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
    lag: Lag | None = None
    lag_error: str | None = None
    if managed.lag is not None:
        try:
            lag = managed.lag()
        except Exception as err:  # noqa: BLE001 - status must answer even if the lake is away
            lag_error = str(err)
    state = _state(managed, active)
    return StreamStatus(
        name=managed.name,
        id=str(query.id) if query is not None else None,
        state=state,
        active=active,
        batch_running=active and _trigger_active(query),
        last_batch_id=progress.get("batchId"),
        input_rows_per_second=progress.get("inputRowsPerSecond"),
        processed_rows_per_second=progress.get("processedRowsPerSecond"),
        last_batch_rows=progress.get("numInputRows"),
        last_batch_duration_ms=durations.get("triggerExecution"),
        last_latest_offset_ms=durations.get("latestOffset"),
        watermark=(progress.get("eventTime") or {}).get("watermark"),
        restarts=managed.restarts,
        last_restart_reason=managed.last_restart_reason,
        exception=error,
        error_code=managed.error_code,
        restart_scheduled=managed.wanted and not managed.terminal and state in ("failed", "ended"),
        lag=lag,
        lag_error=lag_error,
    )


def _want(managed: ManagedQuery) -> None:
    """Mark a query as wanted running by an operator: a fresh start, no backoff carried over."""
    managed.wanted = True
    managed.failures, managed.retry_at = 0, 0.0
    managed.terminal = False
