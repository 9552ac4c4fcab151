"""What every streaming query of the engine shares: name, checkpoint, trigger, waiting, lag.

Lag behind the input is read from the query's checkpoint, never from Spark's in-memory
progress, so it is known for a stopped or crashed query too and costs no Spark job:

- the enrichment over the bronze manifest: ``ManifestLag`` in
  :mod:`workbench.enrichment.bronze_source` (files named after the committed offset).
- :class:`DeltaSourceLag` (queries over a Delta table, e.g. gold over silver): ``pending`` is
  the number of table versions after the source offset of the last committed batch, ``seconds``
  the age of the oldest of those commits.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable
from typing import Any, Literal, Protocol

from pyspark.errors import StreamingQueryException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.streaming import DataStreamWriter, StreamingQuery

from workbench.core.errors import EngineError, error_code, is_terminal
from workbench.spark.files import LakeFiles
from workbench.streams.status import Lag

log = logging.getLogger(__name__)

#: ``processing_time`` for the service; ``available_now`` drains what exists and stops
#: (tests, backfills).
TriggerMode = Literal["processing_time", "available_now"]


def checkpoint_path(checkpoints: str, name: str) -> str:
    """Where the query ``name`` keeps its checkpoint under the ``checkpoints`` root."""
    return f"{checkpoints.rstrip('/')}/{name}"


def start_query(
    writer: DataStreamWriter,
    *,
    name: str,
    checkpoints: str,
    trigger: TriggerMode,
    interval_seconds: float,
    checkpoint: str | None = None,
) -> StreamingQuery:
    """Name the query, give it its checkpoint under ``checkpoints``, set the trigger, start.

    ``checkpoint`` replaces the default location ``<checkpoints>/<name>`` (a query whose
    checkpoint is not simply named after it, e.g. one per version of a stream computation).
    """
    location = checkpoint or checkpoint_path(checkpoints, name)
    writer = writer.queryName(name).option("checkpointLocation", location)
    if trigger == "available_now":
        writer = writer.trigger(availableNow=True)
    else:
        writer = writer.trigger(processingTime=f"{int(interval_seconds * 1000)} milliseconds")
    query = writer.start()
    log.info("stream started query=%s id=%s trigger=%s", name, query.id, trigger)
    return query


def await_query(query: StreamingQuery, failures: BatchFailures | None = None) -> None:
    """Wait for a query to finish.

    Args:
        query: the query.
        failures: where its batches' failures were kept (see :func:`start_batch_query`).

    Raises:
        WorkbenchError: the terminal error that failed one of its batches, as raised.
        EngineError: if it failed otherwise.
    """
    try:
        query.awaitTermination()
    except StreamingQueryException as err:
        failure = failures.take(query.name) if failures is not None else None
        if failure is not None and is_terminal(failure):
            raise failure from err
        raise EngineError(f"stream {query.name} failed: {err}", query=query.name) from err


def await_until(
    query: StreamingQuery,
    done: Callable[[], bool],
    failures: BatchFailures | None = None,
    *,
    poll_seconds: float = 0.2,
) -> None:
    """Wait until ``done()`` (checked between polls), then stop the query.

    For a drain that ``trigger(availableNow=True)`` cannot split into batches; stopping after
    the last wanted commit is safe: a batch cut short is replayed from the checkpoint.

    Raises:
        as :func:`await_query`, if the query stops first.
    """
    while query.isActive:
        if done():
            query.stop()
            return
        time.sleep(poll_seconds)
    await_query(query, failures)
    if not done():
        raise EngineError(f"stream {query.name} stopped before it was done", query=query.name)


# -- why a batch failed ------------------------------------------------------------------------


class BatchFailures:
    """The error that failed each query's last batch, by query name.

    An error raised in ``foreachBatch`` reaches the query's ``exception()`` as JVM text only;
    its class (terminal or not) and code are kept here for whoever waits for or supervises the
    query. The stream manager owns one and hands it to every query it starts.
    """

    def __init__(self) -> None:
        self._errors: dict[str, BaseException] = {}
        self._lock = threading.Lock()

    def note(self, query: str, err: BaseException) -> None:
        """Keep ``err`` as the reason the last batch of ``query`` failed."""
        with self._lock:
            self._errors[query] = err

    def take(self, query: str) -> BaseException | None:
        """Take the error that failed the last batch of ``query`` (None if none).

        Each failure is given out once: the stream manager takes it when it finds the query
        stopped, and before it starts the query again (a stale one must not stop the new run).
        """
        with self._lock:
            return self._errors.pop(query, None)


# -- lag behind the input ----------------------------------------------------------------------


_BATCH_ID = re.compile(r'"batchId"\s*:\s*(\d+)')


def _batch_ids(names: list[str]) -> list[int]:
    return sorted(int(n) for n in names if n.isdigit())


def last_committed_batch(files: LakeFiles, checkpoint: str) -> int | None:
    """The id of the newest batch whose commit file exists, or ``None``."""
    ids = _batch_ids(files.names(f"{checkpoint}/commits"))
    return ids[-1] if ids else None


def source_offset(files: LakeFiles, checkpoint: str, batch_id: int) -> dict[str, Any] | None:
    """The offset batch ``batch_id`` read its (only) source up to, from ``offsets/<batch>``.

    ``{}`` when the source had no offset yet; None when the batch is not in the offset log.
    """
    text = files.read_text(f"{checkpoint}/offsets/{batch_id}")
    lines = (text or "").splitlines()
    # Line 1 is the format version, line 2 the batch metadata, line 3 the source's offset
    # ("-" before the source has one).
    if len(lines) < 3:
        return None
    if lines[2].strip() in {"", "-"}:
        return {}
    offset: dict[str, Any] = json.loads(lines[2])
    return offset


def batch_watermark(files: LakeFiles, checkpoint: str, batch_id: int) -> float | None:
    """The event-time watermark (epoch s) batch ``batch_id`` ran with, from ``offsets/<batch>``.

    None before the query's first event (Spark writes 0) or when the batch is not in the log.
    """
    text = files.read_text(f"{checkpoint}/offsets/{batch_id}")
    lines = (text or "").splitlines()
    if len(lines) < 2:
        return None
    millis = json.loads(lines[1]).get("batchWatermarkMs") or 0
    return millis / 1000.0 if millis > 0 else None


class BatchWatermark:
    """The event-time watermark each batch of a query ran with (:func:`batch_watermark`).

    Args:
        checkpoint: the query's checkpoint (:func:`checkpoint_path`).
        spark: used only to reach ``s3a://`` paths through Hadoop.
    """

    def __init__(self, checkpoint: str, spark: SparkSession | None = None) -> None:
        self._files = LakeFiles(spark)
        self._checkpoint = checkpoint.rstrip("/")

    def __call__(self, batch_id: int) -> float | None:
        return batch_watermark(self._files, self._checkpoint, batch_id)


class FileSourceLog:
    """A file-source query's checkpoint: which bronze files each batch read.

    Two logs and two counters. The query's offset log (``offsets/<batch>``, line 3) holds the
    source offset ``{"logOffset": k}`` each batch read up to; the source's file log
    (``sources/0/<k>``) the files Spark found at each ``k``, as JSON lines ``{"path",
    "timestamp", "batchId": k}``. Batch ``n`` read the entries after batch ``n - 1``'s
    ``logOffset`` up to its own. The counters differ: a batch without new files (Spark runs
    them to move a watermark) advances the batch id only. Every ``compactInterval`` entries
    Spark writes ``<k>.compact`` (every entry so far) instead of ``<k>`` and, minutes later,
    deletes the plain files it replaced.

    Args:
        checkpoint: the query's checkpoint (:func:`checkpoint_path`).
        spark: used only to reach ``s3a://`` paths through Hadoop.
    """

    def __init__(self, checkpoint: str, spark: SparkSession | None = None) -> None:
        self.checkpoint = checkpoint.rstrip("/")
        self.files = LakeFiles(spark)
        self._dir = f"{self.checkpoint}/sources/0"

    def log_offset(self, batch_id: int) -> int | None:
        """The source offset batch ``batch_id`` read up to (-1: none yet; None: unknown)."""
        if batch_id < 0:
            return -1
        offset = source_offset(self.files, self.checkpoint, batch_id)
        if offset is None:
            return None
        return int(offset.get("logOffset", -1))

    def text(self, k: int) -> str | None:
        """File log entry ``k``'s text (its plain or compact file), None if gone."""
        text = self.files.read_text(f"{self._dir}/{k}")
        return text if text is not None else self.files.read_text(f"{self._dir}/{k}.compact")

    def newest_compact(self, upto: int) -> int | None:
        """The newest compact entry at or before ``upto``."""
        compacts = [
            int(n.removesuffix(".compact"))
            for n in self.files.names(self._dir)
            if n.endswith(".compact") and n.removesuffix(".compact").isdigit()
        ]
        usable = [c for c in compacts if c <= upto]
        return max(usable) if usable else None

    @staticmethod
    def paths(text: str, only: int | None = None) -> list[str]:
        """The paths in a file log text; with ``only``, those found at entry ``only``."""
        paths = []
        for line in text.splitlines()[1:]:  # line 1 is the log format version
            # A compact file holds every entry so far: parse only the lines asked for.
            found = _BATCH_ID.search(line)
            if found and (only is None or int(found.group(1)) == only):
                paths.append(str(json.loads(line)["path"]))
        return paths

    def read_through(self, upto: int) -> list[str]:
        """Every path of the file log entries ``0..upto`` (plain entries compacted away are
        read from the newest compaction)."""
        paths: list[str] = []
        k = 0
        while k <= upto:
            text = self.text(k)
            if text is None:
                compact = self.newest_compact(upto)
                if compact is None or compact < k:
                    k += 1
                    continue
                text, k = self.text(compact), compact
            paths += self.paths(text or "")
            k += 1
        return list(dict.fromkeys(paths))  # a compaction repeats the entries before it


class DeltaSourceLag:
    """Lag of a query reading one Delta table (``pending`` versions, age of the oldest).

    The committed source offset is ``{"reservoirVersion": v, "index": i, ...}``: versions
    before ``v`` are done, ``v`` itself is done only when ``i`` is -1 and ``v`` is then the next
    version to read; both mean versions ``v..latest`` are pending.

    Args:
        table: the Delta table the query reads.
        checkpoint: the query's checkpoint (:func:`checkpoint_path`).
        spark: used only to reach ``s3a://`` paths through Hadoop.
    """

    def __init__(self, table: str, checkpoint: str, spark: SparkSession | None = None) -> None:
        self.table = table.rstrip("/")
        self.checkpoint = checkpoint.rstrip("/")
        self._files = LakeFiles(spark)

    def __call__(self) -> Lag:
        """The lag now."""
        log_dir = f"{self.table}/_delta_log"
        versions = [
            int(n.removesuffix(".json"))
            for n in self._files.names(log_dir)
            if n.endswith(".json") and n.removesuffix(".json").isdigit()
        ]
        if not versions:
            return Lag("versions", 0, 0.0)
        latest = max(versions)
        first_pending = self._next_version()
        pending = max(0, latest - first_pending + 1)
        if pending == 0:
            return Lag("versions", 0, 0.0)
        mtime = self._files.mtime(f"{log_dir}/{first_pending:020d}.json")
        age = max(0.0, time.time() - mtime) if mtime is not None else 0.0
        return Lag("versions", pending, age)

    def _next_version(self) -> int:
        committed = last_committed_batch(self._files, self.checkpoint)
        if committed is None:
            return 0
        offset = source_offset(self._files, self.checkpoint, committed) or {}
        return int(offset.get("reservoirVersion", 0))


def query_app_id(spark: SparkSession, name: str) -> str:
    """The Delta ``txnAppId`` of the active query ``name``: ``workbench-<name>-<query id>``.

    It must be stable across restarts of one checkpoint and new for a new checkpoint (whose
    batch ids restart at 0 and would otherwise be skipped as duplicates). The query id is
    exactly that: it is stored in the checkpoint. A query is active before its first batch
    runs, and names of active queries are unique.

    Raises:
        EngineError: if no query of that name is active.
    """
    for query in spark.streams.active:
        if query.name == name:
            return f"workbench-{name}-{query.id}"
    raise EngineError(f"the {name} query is not active", query=name)


def run_batch_with_retries(
    process: Callable[[], object], *, query: str, batch_id: int, attempts: int, backoff: float = 1.0
) -> None:
    """Run one micro-batch's work, retrying it; after the last attempt fail loudly.

    A retry is safe because every write of a batch is idempotent (Delta transaction ids). A
    terminal error (:func:`~workbench.core.errors.is_terminal`) is not retried: it propagates
    at once. Transient and unknown errors are retried up to ``attempts`` times. The failure
    propagates out of ``foreachBatch``: the query fails, and the stream manager restarts it
    from the checkpoint (unless the error was terminal), so the batch is never marked done
    without its data.

    Raises:
        WorkbenchError: a terminal error, as raised, at its first occurrence.
        EngineError: the batch failed ``attempts`` times (the last error chained).
    """
    for attempt in range(1, attempts + 1):
        try:
            process()
            return
        except Exception as err:
            if is_terminal(err):
                log.error(
                    "batch failed terminally, not retrying query=%s batch_id=%s code=%s error=%s",
                    query,
                    batch_id,
                    error_code(err),
                    err,
                )
                raise
            if attempt == attempts:
                raise EngineError(
                    f"{query} batch {batch_id} failed {attempts} times; the query stops and the "
                    f"stream manager restarts it from its checkpoint. Last error: {err}",
                    query=query,
                    batch_id=batch_id,
                ) from err
            log.warning(
                "batch failed, retrying query=%s batch_id=%s attempt=%s code=%s error=%s",
                query,
                batch_id,
                attempt,
                error_code(err),
                err,
            )
            time.sleep(backoff * 2 ** (attempt - 1))


class BatchHandler(Protocol):
    """Processes the micro-batches of one running query (see :func:`start_batch_query`)."""

    def process(self, batch: DataFrame, batch_id: int) -> object:
        """Write one micro-batch; raise to fail it."""
        ...


def start_batch_query(
    source: DataFrame,
    make_handler: Callable[[str], BatchHandler],
    *,
    name: str,
    checkpoints: str,
    trigger: TriggerMode,
    interval_seconds: float,
    attempts: int,
    checkpoint: str | None = None,
    failures: BatchFailures | None = None,
) -> StreamingQuery:
    """Start ``source`` as query ``name`` whose micro-batches go to a handler.

    The handler is made on the first batch with the query's Delta ``txnAppId``
    (:func:`query_app_id`) and each batch runs through :func:`run_batch_with_retries`; the
    error that fails a batch is kept in ``failures``. ``checkpoint`` is as for
    :func:`start_query`.
    """
    handlers: dict[str, BatchHandler] = {}

    def _batch(batch: DataFrame, batch_id: int) -> None:
        try:
            _run(batch, batch_id)
        except Exception as err:
            if failures is not None:
                failures.note(name, err)
            raise

    def _run(batch: DataFrame, batch_id: int) -> None:
        # Each query's jobs in a scheduler pool of its own (the session schedules FAIR), so a
        # long gold MERGE does not queue the enrichment's tasks behind its own.
        batch.sparkSession.sparkContext.setLocalProperty("spark.scheduler.pool", name)
        handler = handlers.get(name)
        if handler is None:
            handler = handlers[name] = make_handler(query_app_id(source.sparkSession, name))
        run_batch_with_retries(
            lambda: handler.process(batch, batch_id),
            query=name,
            batch_id=batch_id,
            attempts=attempts,
        )

    return start_query(
        source.writeStream.foreachBatch(_batch),
        name=name,
        checkpoints=checkpoints,
        trigger=trigger,
        interval_seconds=interval_seconds,
        checkpoint=checkpoint,
    )
