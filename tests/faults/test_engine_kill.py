"""``kill -9`` of the engine mid-batch under load, restart: silver and gold exactly once, for
live readings and for a backfill of old ones.

Readings with gap-free sequence numbers flow through the real broker and ingest into bronze
while the engine runs; the engine is killed while an enrichment batch executes, restarted, and
after the load stops and bronze is fully processed, silver and gold are read with ``deltalake``
(an independent reader) and compared with bronze itself.
"""

from __future__ import annotations

import json
import signal
import socket
import time
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import httpx
import psutil
import pytest

from tests.faults.load import SteadyPublisher, seqs
from tests.fixtures.engine import start_engine, stop_engine
from tests.fixtures.services import IngestProcess
from tests.integration.conftest import read_bronze, wait_for
from workbench.client.credentials import auth_headers
from workbench.core.settings import Settings
from workbench.gold import averages

pytestmark = pytest.mark.fault

RATE = 300  # readings per second
BACKFILL_RATE = 1000
ENRICHMENT = "enrichment"


def _status(settings: Settings) -> dict[str, dict[str, Any]]:
    url = f"http://{settings.engine.host}:{settings.engine.port}/status"
    return {
        q["name"]: q
        for q in httpx.get(url, timeout=10, headers=auth_headers(settings)).json()["queries"]
    }


def _silver_rows(settings: Settings) -> int:
    from deltalake import DeltaTable

    return int(DeltaTable(settings.lake.silver_readings).to_pyarrow_dataset().count_rows())


def _kill_9(proc: Any, settings: Settings) -> None:
    """SIGKILL the engine; wait until its JVM is gone too (it exits when its parent does)."""
    children = psutil.Process(proc.pid).children(recursive=True)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    psutil.wait_procs(children, timeout=30)
    for port in (settings.engine.port, settings.engine.connect_port):
        with socket.socket() as sock:
            assert sock.connect_ex((settings.engine.host, port)) != 0, f"port {port} still open"


def _window(ts: datetime) -> datetime:
    return ts.replace(second=0, microsecond=0)


#: Live readings at a steady rate, or a backfill: a replay of hourly readings from a year ago,
#: many days a second, each reading late for gold's watermark.
LOADS = {
    "live": (RATE, None),
    "backfill": (BACKFILL_RATE, datetime(2025, 1, 1, tzinfo=UTC)),
}


@pytest.mark.parametrize("load", sorted(LOADS))
def test_kill_9_mid_batch_keeps_silver_and_gold_exact(
    settings: Settings, ingest: IngestProcess, load: str
) -> None:
    from deltalake import DeltaTable

    rate, history = LOADS[load]
    t0 = time.monotonic()
    engine = start_engine(settings)
    publisher = SteadyPublisher(
        settings, rate=rate, topic="sensors/r4/1", client_id="r4-pub", history_start=history
    )
    publisher.start()
    try:
        # Mid-batch: silver has rows and the enrichment query is executing a batch right now.
        wait_for(lambda: _silver_rows(settings) > 0, timeout=120, what="rows in silver")
        at_kill: dict[str, Any] = {}

        def batch_running() -> bool:
            at_kill.update(_status(settings)[ENRICHMENT])
            return bool(at_kill["batch_running"])

        wait_for(batch_running, timeout=90, what="an enrichment batch running")
        before = _silver_rows(settings)
        _kill_9(engine, settings)
        killed_at = publisher.sent
        engine = start_engine(settings)
        publisher.wait_sent(killed_at + 2 * rate)  # load keeps flowing into the restarted engine
        publisher.stop()
        sent = publisher.sent
        wait_for(lambda: len(seqs(settings)) >= sent, timeout=60, what=f"{sent} in bronze")

        last: dict[str, Any] = {}

        def drained() -> bool:  # every query (enrichment, gold) has read all of its input
            last.update(_status(settings))
            return all(q["lag"]["pending"] == 0 for q in last.values() if q["lag"])

        try:
            wait_for(drained, timeout=180, what="bronze fully processed into silver and gold")
        except AssertionError:
            print(f"engine killed: status at the timeout: {json.dumps(last, indent=1)}")
            raise
        restarts = {name: q["restarts"] for name, q in _status(settings).items()}
    finally:
        stop_engine(engine)

    bronze = read_bronze(settings).to_pylist()
    bronze_ids = {r["message_id"] for r in bronze}
    silver = (
        DeltaTable(settings.lake.silver_readings)
        .to_pyarrow_table(columns=["message_id", "sensor_id", "raw"])
        .to_pylist()
    )
    silver_ids = [r["message_id"] for r in silver]
    silver_seqs = sorted(int(dict(r["raw"])["seq"]) for r in silver)
    print(
        f"engine killed ({load}): published={sent} bronze_rows={len(bronze)} "
        f"bronze_ids={len(bronze_ids)} "
        f"killed_in_batch={at_kill['last_batch_id']}+1 silver_before_kill={before} "
        f"silver_rows={len(silver)} "
        f"silver_ids={len(set(silver_ids))} restarts_after={restarts} "
        f"elapsed_s={time.monotonic() - t0:.0f}"
    )
    assert len(silver) == len(set(silver_ids)) == len(bronze_ids)  # exactly once
    assert set(silver_ids) == bronze_ids
    assert silver_seqs == list(range(sent))  # no gaps, per the one load sensor
    assert {r["sensor_id"] for r in silver} == {"load-1"}

    # Gold per window and field, against the same aggregation done on bronze directly.
    expected: dict[tuple[datetime, str], list[float]] = defaultdict(lambda: [0, 0.0])
    for row in bronze:
        payload = json.loads(row["payload"])
        window = _window(row["event_time"].astimezone(UTC))
        for field in ("seq", "temperature"):
            expected[(window, field)][0] += 1
            expected[(window, field)][1] += float(payload[field])
    gold = DeltaTable(settings.lake.gold(averages.TABLE)).to_pyarrow_table().to_pylist()
    got: dict[tuple[datetime, str], list[float]] = {}
    for row in gold:
        if row["field"] in ("seq", "temperature"):
            assert row["sensor_id"] == "load-1"
            key = (row["window_start"].replace(tzinfo=UTC), row["field"])
            assert key not in got, f"two gold rows for {key}"
            total = row.get("sum_value")
            got[key] = [row["count"], row["avg_value"] * row["count"] if total is None else total]
    print(f"engine killed: gold windows={len(got) // 2} bronze windows={len(expected) // 2}")
    assert got.keys() == expected.keys()
    for key, (count, total) in expected.items():
        assert got[key][0] == count, key
        assert got[key][1] == pytest.approx(total, rel=1e-9), key
