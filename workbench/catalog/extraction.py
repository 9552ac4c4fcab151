"""Metadata extraction (SPEC F9): fold what reached bronze into the catalog, in the background.

The bronze writer calls :meth:`MetadataExtractor.observe` with the rows it made durable. Counts
are exact; observations are merged in memory (bounded by the number of field paths) and written
to the catalog every ``batch_size`` records or ``batch_seconds``, on this object's own thread, so
a slow catalog never slows ingestion.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

from workbench.catalog.schemas import DatasetObservation
from workbench.catalog.store import Catalog
from workbench.connectors.envelope import Envelope
from workbench.core.clock import utcnow

log = logging.getLogger(__name__)

FULL_INFERENCE_RECORDS = 500
"""Records per dataset and batch whose fields are all inferred..."""
SAMPLE_STRIDE = 20
"""...then one record in this many."""


class MetadataExtractor:
    """Accumulates dataset observations and writes them to the catalog in batches.

    Args:
        catalog: where observations go.
        batch_size: write after this many records...
        batch_seconds: ...or this many seconds, whichever comes first.
        stale_seconds: ``settings.catalog.field_stale_seconds``; None never sweeps.
    """

    def __init__(
        self,
        catalog: Catalog,
        *,
        batch_size: int,
        batch_seconds: float,
        stale_seconds: float | None = None,
    ) -> None:
        self._catalog = catalog
        self._stale_after = None if stale_seconds is None else timedelta(seconds=stale_seconds)
        # Sweeping takes the catalog's write lock, so not every round: a tenth of the stale
        # time (capped at a minute) is precise enough for "not seen for N".
        self._sweep_every = min(60.0, stale_seconds / 10) if stale_seconds else 0.0
        self._next_sweep = 0.0
        self._batch_size = batch_size
        self._batch_seconds = batch_seconds
        self._pending: dict[str, DatasetObservation] = {}
        self._pending_records = 0
        self._lock = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None

    def observe(self, envelopes: list[Envelope]) -> None:
        """Fold durable rows into the pending observations (cheap, never blocks on the DB)."""
        with self._lock:
            for env in envelopes:
                obs = self._pending.get(env.ingestion_id)
                if obs is None:
                    obs = self._pending[env.ingestion_id] = DatasetObservation(
                        env.ingestion_id, env.source_type
                    )
                # Counts are exact; field inference samples once a batch has seen plenty, so
                # extraction keeps up with the full ingest rate (types still widen over time).
                sampled = obs.records < FULL_INFERENCE_RECORDS or obs.records % SAMPLE_STRIDE == 0
                obs.add(
                    env.record if sampled else None,
                    env.size,
                    env.received_at,
                    is_object=env.record is not None,
                )
            self._pending_records += len(envelopes)
            if self._pending_records >= self._batch_size:
                self._lock.notify_all()

    def start(self) -> None:
        """Start the background writer."""
        self._thread = threading.Thread(target=self._run, name="metadata", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Write what is pending and stop."""
        with self._lock:
            self._stopping = True
            self._lock.notify_all()
        if self._thread:
            self._thread.join(timeout=30)
        self.write_pending()

    def write_pending(self) -> None:
        """Write the pending observations now; on failure they are merged back for next time."""
        with self._lock:
            batch, self._pending, self._pending_records = self._pending, {}, 0
        if not batch:
            return
        try:
            self._catalog.record_observations(batch.values())
        except Exception:  # keep the observations and retry next round
            log.exception("writing metadata failed datasets=%s; will retry", len(batch))
            with self._lock:
                for iid, obs in batch.items():
                    newer = self._pending.get(iid)
                    if newer is not None:
                        obs.merge(newer)
                    self._pending[iid] = obs

    def sweep_stale(self) -> None:
        """Log ``not_seen`` events for fields missing longer than ``stale_seconds``."""
        if self._stale_after is None:
            return
        try:
            logged = self._catalog.sweep_stale_fields(utcnow(), self._stale_after)
        except Exception:  # the next round sweeps again; ingestion must not stop for this
            log.exception("sweeping stale fields failed; will retry")
            return
        if logged:
            log.info("fields not seen logged count=%s", logged)

    def _run(self) -> None:
        deadline = time.monotonic() + self._batch_seconds
        while True:
            with self._lock:
                while (
                    not self._stopping
                    and self._pending_records < self._batch_size
                    and time.monotonic() < deadline
                ):
                    self._lock.wait(max(0.0, deadline - time.monotonic()))
                if self._stopping:
                    return
            self.write_pending()
            if time.monotonic() >= self._next_sweep:
                self._next_sweep = time.monotonic() + self._sweep_every
                self.sweep_stale()
            deadline = time.monotonic() + self._batch_seconds
