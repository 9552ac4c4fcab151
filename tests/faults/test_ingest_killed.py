"""``kill -9`` of the ingest service under load, restart: no published message is lost."""

from __future__ import annotations

import signal
from collections import Counter

import httpx
import pytest

from tests.faults.load import SteadyPublisher, seqs
from tests.fixtures.services import IngestProcess
from tests.integration.conftest import read_bronze, wait_for
from workbench.client.credentials import auth_headers
from workbench.core.settings import Settings

pytestmark = pytest.mark.fault


def test_kill_9_mid_stream_loses_nothing(settings: Settings, ingest: IngestProcess) -> None:
    publisher = SteadyPublisher(settings, rate=500, topic="sensors/r1/1", client_id="r1-pub")
    publisher.start()
    publisher.wait_sent(1500)
    assert ingest.proc is not None
    ingest.proc.send_signal(signal.SIGKILL)  # no flush, no goodbye
    ingest.proc.wait()
    publisher.wait_sent(2500)  # the broker keeps these for the ingest's persistent session
    ingest.start()
    publisher.wait_sent(5000)
    publisher.stop()
    sent = publisher.sent
    wait_for(lambda: len(seqs(settings)) >= sent, timeout=120, what=f"{sent} in bronze")
    table = read_bronze(settings)
    got = seqs(settings)
    duplicates = table.num_rows - len(got)
    print(f"ingest killed: published={sent} in_bronze={len(got)} duplicate_rows={duplicates}")
    assert got == set(range(sent))
    # A duplicate is a redelivery of a message written but not yet acked at the kill: it
    # carries the same message id, so silver can drop it.
    ids = Counter(table["message_id"].to_pylist())
    assert sum(n - 1 for n in ids.values()) == duplicates
    [loss] = httpx.get(f"{ingest.url}/api/loss", headers=auth_headers(settings)).json()
    # The counters of the last few seconds before a kill -9 die with the process (they are
    # written to the catalog every metadata batch); they never overcount.
    print(f"ingest killed: loss accounting after restart: {loss}")
    assert 0 < loss["written"] <= table.num_rows and loss["gaps"] == 0
