"""One local Spark session for the whole test run, and bronze files written per the contract."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.fixtures.services import make_settings
from workbench.core.settings import Settings
from workbench.enrichment.bronze_schema import BRONZE_ARROW_SCHEMA
from workbench.lake.manifest import ManifestFile, ManifestWriter
from workbench.lake.storage import LocalStorage

WriteBronze = Callable[..., Path]


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A ``local[2]`` Delta session built by the production factory (UI off, 2 partitions)."""
    from workbench.spark.session import build_session

    home = tmp_path_factory.mktemp("spark-home")
    settings = make_settings(home, spark={"master": "local[2]", "shuffle_partitions": 2})
    session = build_session(settings, app_name="workbench-tests")
    yield session
    session.stop()


@pytest.fixture
def lake_settings(tmp_path: Path) -> Settings:
    """Settings with a fresh lake and catalog for one test (the session is shared)."""
    return make_settings(tmp_path)


def bronze_row(
    message_id: str,
    payload: Any,
    *,
    received_at: datetime | None = None,
    event_time: datetime | None = None,
    kind: str | None = None,
) -> dict[str, Any]:
    """One bronze record; dict payloads become their JSON text, like the ingest writer does."""
    text = payload if isinstance(payload, str) else json.dumps(payload)
    return {
        "message_id": message_id,
        "source_type": "mqtt",
        "topic": "sensors/test",
        "received_at": received_at or datetime(2026, 11, 26, 10, 5, tzinfo=UTC),
        "event_time": event_time,
        "event_time_raw": None,
        "payload": text,
        "payload_kind": kind or ("object" if isinstance(payload, dict) else "non_json"),
        "error": None,
        "meta": "{}",
    }


@pytest.fixture
def write_bronze() -> WriteBronze:
    """Write rows as one bronze file, atomically (hidden temp name, then rename), and name it
    in the lake's bronze manifest as the ingest writer does (one writer per lake)."""
    writers: dict[str, ManifestWriter] = {}

    def _write(
        settings: Settings,
        ingestion_id: str,
        rows: list[dict[str, Any]],
        *,
        hour: str = "10",
        manifest: bool = True,
    ) -> Path:
        folder = Path(settings.lake.bronze) / f"ingestion_id={ingestion_id}"
        folder = folder / "date=2026-11-26" / f"hour={hour}"
        folder.mkdir(parents=True, exist_ok=True)
        name = f"part-{uuid.uuid4().hex}.parquet"
        tmp = folder / f".{name}.tmp"
        table = pa.Table.from_pylist(rows, schema=BRONZE_ARROW_SCHEMA)
        pq.write_table(table, tmp, compression="zstd")  # as the ingest writer does
        os.replace(tmp, folder / name)
        if not manifest:  # as ingest wrote bronze before the manifest existed
            return folder / name
        root = settings.lake.root
        writer = writers.setdefault(root, ManifestWriter(LocalStorage(root)))
        relative = (folder / name).relative_to(root).as_posix()
        writer.record([ManifestFile(relative, len(rows), (folder / name).stat().st_size)])
        return folder / name

    return _write
