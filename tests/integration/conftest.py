"""A real Mosquitto and a real ingest process per test."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from tests.fixtures.services import Broker, IngestProcess
from workbench.core.settings import Settings


@pytest.fixture
def broker(settings: Settings) -> Iterator[Broker]:
    b = Broker(settings)
    b.start()
    yield b
    b.stop()


@pytest.fixture
def ingest(settings: Settings, broker: Broker) -> Iterator[IngestProcess]:
    proc = IngestProcess(settings)
    proc.start()
    yield proc
    proc.stop()


def read_bronze(settings: Settings) -> pa.Table:
    root = Path(settings.lake.bronze)
    if not any(root.rglob("*.parquet")):
        return pa.table({"message_id": pa.array([], pa.string())})
    return ds.dataset(root, format="parquet", partitioning="hive").to_table()


def wait_for(predicate: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    """Poll ``predicate`` until true; fails the test with ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
