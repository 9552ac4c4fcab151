"""The object store is down for 60 s under load; nothing is lost and the spill drains in order.

A publisher thread sends numbered QoS 1 readings at a steady rate through a real Mosquitto to a
real ingest process whose lake is ``s3a://`` on a real MinIO. MinIO is stopped mid-stream for
60 s and started again; afterwards every published number is in bronze exactly once, the spill
directory is empty, and the spilled batches reached MinIO in spill order.
"""

from __future__ import annotations

import io
import json
import logging
import re
import time
from collections import Counter
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest
from minio import Minio

from tests.faults.load import SteadyPublisher
from tests.fixtures.minio import (
    BronzeObject,
    MinioServer,
    list_bronze,
    list_manifest,
    s3_lake_settings,
)
from tests.fixtures.services import IngestProcess
from tests.integration.conftest import wait_for
from workbench.client.credentials import auth_headers
from workbench.core.settings import Settings

log = logging.getLogger(__name__)

RATE = 200  # messages per second
OUTAGE_SECONDS = 60.0
BUCKET, PREFIX = "bronze-faults", "lake"
PART_STAMP = re.compile(r"/part-(\d{8}T\d{12})-")


@pytest.fixture
def settings(tmp_path: Path, minio: MinioServer) -> Settings:
    """A stack whose lake is ``s3a://bronze-faults/lake`` on the test MinIO."""
    return s3_lake_settings(tmp_path, minio, BUCKET, PREFIX)


class BronzeReader:
    """Reads each new bronze object once and keeps the ``seq`` numbers it holds."""

    def __init__(self, client: Minio) -> None:
        self.client = client
        self.objects: dict[str, BronzeObject] = {}
        self.seqs: dict[str, list[int]] = {}

    def refresh(self) -> int:
        """Read objects not seen yet; returns the number of rows seen so far."""
        for obj in list_bronze(self.client, BUCKET, PREFIX):
            if obj.name in self.objects:
                continue
            response = self.client.get_object(BUCKET, obj.name)
            try:
                table = pq.read_table(io.BytesIO(response.read()), columns=["payload"])
            finally:
                response.close()
                response.release_conn()
            self.objects[obj.name] = obj
            self.seqs[obj.name] = [json.loads(p)["seq"] for p in table["payload"].to_pylist()]
        return sum(len(s) for s in self.seqs.values())


def spill_files(spill_dir: Path) -> list[Path]:
    return sorted(spill_dir.glob("*.parquet")) if spill_dir.exists() else []


@pytest.mark.fault
def test_object_store_down_60s_under_load(
    settings: Settings, minio: MinioServer, ingest: IngestProcess
) -> None:
    reader = BronzeReader(minio.client())
    spill_dir = Path(settings.s3.spill_dir)
    publisher = SteadyPublisher(settings, RATE, topic="sensors/r3/1", client_id="r3-publisher")
    publisher.start()
    try:
        wait_for(lambda: reader.refresh() >= 2 * RATE, timeout=60, what="bronze before the fault")
        minio.stop()
        down_at, sent_at_stop = time.monotonic(), publisher.sent
        wait_for(lambda: bool(spill_files(spill_dir)), timeout=30, what="the first spilled batch")
        time.sleep(max(0.0, down_at + OUTAGE_SECONDS - time.monotonic()))  # the outage itself
        peak_spill = len(spill_files(spill_dir))
        # Operators see the outage: the open probe says degraded, the report says why.
        probe = httpx.get(f"{ingest.url}/health")
        assert probe.status_code == 503 and probe.json() == {"status": "degraded"}, probe.text
        health = httpx.get(f"{ingest.url}/api/health", headers=auth_headers(settings)).json()
        assert health["status"] == "degraded" and health["spill"]["files"] > 0, health
        sent_during_outage = publisher.sent - sent_at_stop
        minio.start()
        restarted_at = publisher.sent
        wait_for(lambda: not spill_files(spill_dir), timeout=120, what="the spill to drain")
        wait_for(lambda: publisher.sent >= restarted_at + 5 * RATE, what="load after the drain")
    finally:
        publisher.stop()

    total = publisher.sent
    wait_for(lambda: reader.refresh() >= total, timeout=120, what=f"{total} rows in MinIO")
    counts = Counter(seq for seqs in reader.seqs.values() for seq in seqs)
    rows = sum(counts.values())
    duplicates = rows - len(counts)
    missing = set(range(total)) - counts.keys()

    spilled = sorted(
        (o for o in reader.objects.values() if o.spill_seq is not None),
        key=lambda o: o.spill_seq or 0,
    )
    spilled_rows = sum(len(reader.seqs[o.name]) for o in spilled)
    uploaded_log = [int(m) for m in re.findall(r"spill uploaded seq=(\d+)", ingest.log.read_text())]
    log.warning(
        "object store down: published=%s acked=%s rows=%s missing=%s duplicates=%s objects=%s "
        "spilled_objects=%s spilled_rows=%s peak_spill_files=%s sent_during_outage=%s",
        total,
        publisher.acked,
        rows,
        len(missing),
        duplicates,
        len(reader.objects),
        len(spilled),
        spilled_rows,
        peak_spill,
        sent_during_outage,
    )

    # Nothing lost, nothing doubled.
    assert publisher.acked == total
    assert not missing, f"{len(missing)} published readings are not in bronze"
    assert duplicates == 0 and rows == total
    # Batches did spill (acks kept flowing while the store was down) and all were drained.
    assert spilled and spill_files(spill_dir) == []
    assert spilled_rows >= sent_during_outage // 2
    # In order: spill sequence numbers 1..K without gaps (bronze files and their manifest
    # entries, interleaved), uploaded once each, in that order...
    spilled_seqs = [o.spill_seq for o in spilled]
    assert uploaded_log == list(range(1, len(uploaded_log) + 1))
    assert spilled_seqs == sorted(set(spilled_seqs)) and set(spilled_seqs) <= set(uploaded_log)
    # ...every bronze file named by exactly one manifest entry, entries without gaps...
    entries = list_manifest(minio.client(), BUCKET, PREFIX)
    assert len({e.writer for e in entries}) == 1  # one ingest process
    assert [e.seq for e in entries] == list(range(len(entries)))
    named = [f"{PREFIX}/{f.path}" for e in entries for f in e.files]
    assert sorted(named) == sorted(reader.objects) and len(set(named)) == len(named)
    assert sum(f.rows for e in entries for f in e.files) == rows
    # ...arriving in MinIO in that order, which is the order the writer produced them...
    arrivals = [o.last_modified for o in spilled]
    assert arrivals == sorted(arrivals)
    stamps = [PART_STAMP.search(o.name).group(1) for o in spilled]  # type: ignore[union-attr]
    assert stamps == sorted(stamps)
    # ...and no direct write overtook the spill while it drained.
    first, last = arrivals[0], arrivals[-1]
    direct = [o for o in reader.objects.values() if o.spill_seq is None]
    assert not [o.name for o in direct if first < o.last_modified < last]
