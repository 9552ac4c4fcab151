"""The ordered local spill in front of an object store, and the choice of bronze storage.

While the store is away, a batch is kept durably in a local directory (so ``write_parquet``
still means "durable before the ack") and uploaded in order when the store returns.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote

import pyarrow as pa

from workbench.core.errors import StorageError
from workbench.core.settings import Settings
from workbench.lake.storage import (
    LakeStorage,
    LocalStorage,
    ObjectStore,
    encode_parquet,
    fsync_dir,
    is_object_store_root,
)

log = logging.getLogger(__name__)

_SPILL_NAME = re.compile(r"^(\d{12})\.(.+)\.parquet$")


@dataclass(frozen=True)
class SpillDepth:
    """How much waits in the spill directory."""

    files: int
    bytes: int


@dataclass(frozen=True)
class _Spilled:
    seq: int
    relative_path: str
    path: Path
    size: int


class SpillingStorage:
    """An object store that never makes a write fail while the local disk works.

    A write goes to ``primary`` while the spill is empty. When the primary fails, the batch is
    written durably to ``spill_dir`` as ``<seq>.<quoted path>.parquet`` and the write succeeds
    (the data is on local disk, so acks may go out). While anything is spilled, new writes
    spill too, so the store receives batches in write order. A drainer thread uploads the
    oldest spilled file until it succeeds, never skipping ahead, and deletes it only after its
    upload; uploaded objects carry ``spill-seq`` metadata. Files left by an earlier process are
    found again at start.

    Args:
        primary: the object store.
        spill_dir: local directory of spilled batches (one per ingest process).
        retry_max_seconds: longest wait between two upload attempts.
    """

    def __init__(
        self, primary: ObjectStore, spill_dir: str | Path, *, retry_max_seconds: float = 5.0
    ) -> None:
        self.primary = primary
        self.spill_dir = Path(spill_dir)
        self.spill_dir.mkdir(parents=True, exist_ok=True)
        self._retry_max = retry_max_seconds
        self._queue: deque[_Spilled] = deque(self._scan())
        self._next_seq = self._queue[-1].seq + 1 if self._queue else 1
        self._bytes = sum(s.size for s in self._queue)
        self._lock = threading.Condition()
        self._write_lock = threading.Lock()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.uploaded = 0
        self.last_error: str | None = None
        if self._queue:
            log.warning(
                "found spilled bronze batches from an earlier run files=%s bytes=%s dir=%s",
                len(self._queue),
                self._bytes,
                self.spill_dir,
            )

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the drainer thread."""
        self._thread = threading.Thread(target=self._run_drainer, name="spill-drainer", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 10.0) -> None:
        """Stop the drainer; whatever is still spilled stays on disk for the next start."""
        with self._lock:
            self._stopping = True
            self._lock.notify_all()
        if self._thread:
            self._thread.join(timeout)

    def depth(self) -> SpillDepth:
        """Files and bytes waiting to be uploaded."""
        with self._lock:
            return SpillDepth(len(self._queue), self._bytes)

    def wait_drained(self, timeout: float) -> bool:
        """Block until the spill is empty; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._queue:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(min(left, 0.1))
        return True

    # -- writes ------------------------------------------------------------------------------

    def write_parquet(self, relative_path: str, table: pa.Table) -> int:
        """Write to the store, or durably to the spill when it is down or still draining.

        Raises:
            StorageError: only when the local spill directory cannot be written either.
        """
        return self.write_bytes(relative_path, encode_parquet(table))

    def write_bytes(self, relative_path: str, data: bytes) -> int:
        """Write to the store, or durably to the spill when it is down or still draining; in
        write order either way (a file and then its manifest entry reach the store so).

        Raises:
            StorageError: only when the local spill directory cannot be written either.
        """
        with self._write_lock:
            with self._lock:
                spilling = bool(self._queue)
            if not spilling:
                # Only writers add to the queue and they hold _write_lock: it stays empty here.
                try:
                    return self.primary.put_bytes(relative_path, data)
                except StorageError as err:
                    self.last_error = err.message
                    log.warning(
                        "object store write failed, spilling path=%s error=%s",
                        relative_path,
                        err.message,
                    )
            return self._spill(relative_path, data)

    def _spill(self, relative_path: str, data: bytes) -> int:
        seq = self._next_seq
        name = f"{seq:012d}.{quote(relative_path, safe='')}.parquet"
        target = self.spill_dir / name
        tmp = self.spill_dir / f".{name}.tmp"
        try:
            with open(tmp, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
            fsync_dir(self.spill_dir)
        except OSError as err:
            tmp.unlink(missing_ok=True)
            raise StorageError(
                f"the object store is unreachable and the spill directory {self.spill_dir} "
                f"cannot be written either: {err}. Free disk space or point "
                "WORKBENCH__S3__SPILL_DIR at a writable directory.",
                path=str(target),
                layer="bronze",
            ) from err
        self._next_seq = seq + 1
        with self._lock:
            self._queue.append(_Spilled(seq, relative_path, target, len(data)))
            self._bytes += len(data)
            self._lock.notify_all()
        log.info("spilled seq=%s path=%s bytes=%s", seq, relative_path, len(data))
        return len(data)

    def _scan(self) -> list[_Spilled]:
        found = []
        for entry in self.spill_dir.iterdir():
            match = _SPILL_NAME.match(entry.name)
            if match:
                seq, quoted = match.groups()
                found.append(_Spilled(int(seq), unquote(quoted), entry, entry.stat().st_size))
        return sorted(found, key=lambda s: s.seq)

    # -- drainer -----------------------------------------------------------------------------

    def _run_drainer(self) -> None:
        backoff = 0.0
        while True:
            with self._lock:
                while not self._queue and not self._stopping:
                    self._lock.wait(1.0)
                if self._stopping:
                    return
                head = self._queue[0]
            try:
                self._upload(head)
            except (StorageError, OSError) as err:
                self.last_error = err.message if isinstance(err, StorageError) else str(err)
                backoff = min(max(backoff * 2, 0.2), self._retry_max)
                log.warning(
                    "spill upload failed seq=%s left=%s retry_in=%.1fs error=%s",
                    head.seq,
                    len(self._queue),
                    backoff,
                    self.last_error,
                )
                self._pause(backoff)
                continue
            backoff = 0.0
            self.last_error = None

    def _upload(self, head: _Spilled) -> None:
        data = head.path.read_bytes()
        self.primary.put_bytes(head.relative_path, data, metadata={"spill-seq": str(head.seq)})
        # A crash between the upload and the unlink re-uploads the same bytes to the same key.
        head.path.unlink()
        fsync_dir(self.spill_dir)
        with self._lock:
            self._queue.popleft()
            self._bytes -= head.size
            left = len(self._queue)
            self._lock.notify_all()
        self.uploaded += 1
        log.info("spill uploaded seq=%s path=%s left=%s", head.seq, head.relative_path, left)

    def _pause(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        with self._lock:
            while not self._stopping and (left := deadline - time.monotonic()) > 0:
                self._lock.wait(left)


def build_storage(settings: Settings) -> LakeStorage:
    """The lake storage for ``settings.lake.root``.

    A local directory gets :class:`LocalStorage`; ``s3a://bucket/prefix`` gets a started
    :class:`SpillingStorage` over :class:`S3Storage` (the bucket is created if missing; a store
    that is down at start only means the first batches spill).
    """
    root = settings.lake.root
    if not is_object_store_root(root):
        return LocalStorage(root)
    # Imported here: the S3 client and its dependencies cost ~20 MB of a local-lake process.
    from workbench.lake.s3 import S3Storage

    primary = S3Storage(settings)
    try:
        primary.ensure_bucket()
    except StorageError as err:
        log.warning("object store not reachable at start; batches spill until it is: %s", err)
    storage = SpillingStorage(
        primary, settings.s3.spill_dir, retry_max_seconds=settings.s3.spill_retry_max_seconds
    )
    storage.start()
    log.info(
        "bronze on object store endpoint=%s bucket=%s prefix=%s spill_dir=%s",
        primary.url,
        primary.bucket,
        primary.prefix,
        settings.s3.spill_dir,
    )
    return storage
