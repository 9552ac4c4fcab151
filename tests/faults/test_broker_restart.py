"""The broker restarts (persistence on) under load: nothing is lost."""

from __future__ import annotations

import pytest

from tests.faults.load import SteadyPublisher, seqs
from tests.fixtures.services import Broker, IngestProcess
from tests.integration.conftest import read_bronze, wait_for
from workbench.core.settings import Settings

pytestmark = pytest.mark.fault


def test_broker_restart_mid_stream_loses_nothing(
    settings: Settings, broker: Broker, ingest: IngestProcess
) -> None:
    publisher = SteadyPublisher(settings, rate=500, topic="sensors/r2/1", client_id="r2-pub")
    publisher.start()
    publisher.wait_sent(1500)
    broker.stop()  # SIGTERM: mosquitto saves its persistence file
    publisher.wait_sent(2000)  # queued by the publisher while the broker is away
    broker.start()
    publisher.wait_sent(4000)
    publisher.stop()
    sent = publisher.sent
    wait_for(lambda: len(seqs(settings)) >= sent, timeout=120, what=f"{sent} in bronze")
    got = seqs(settings)
    rows = read_bronze(settings).num_rows
    print(f"broker restart: published={sent} in_bronze={len(got)} duplicate_rows={rows - len(got)}")
    assert got == set(range(sent))
    assert ingest.proc is not None and ingest.proc.poll() is None  # it rode it out
