"""A real Mosquitto and a real ingest process per test."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds

from workbench.core.settings import Settings


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
