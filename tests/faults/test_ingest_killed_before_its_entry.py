"""``kill -9`` of the ingest service after a bronze file is durable and before the manifest
entry naming it: the file is an orphan no reader sees, its messages come again, and silver holds
every published reading exactly once.

The manifest is made unwritable mid-stream (the writer's entry directory replaced by a plain
file), so each flush writes its Parquet file and then fails its entry, and is retried; ingest is
killed while it is in that state. The stream's own de-duplication is off, so an orphan read by
the enrichment would show as extra silver rows.
"""

from __future__ import annotations

import json
import shutil
import signal
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds
import pytest
from deltalake import DeltaTable

from tests.faults.load import SteadyPublisher
from tests.fixtures.services import IngestProcess, make_settings
from tests.integration.conftest import wait_for
from tests.spark.conftest import spark  # noqa: F401
from workbench.catalog.store import Catalog
from workbench.core.settings import Settings
from workbench.enrichment.silver_stream import run_enrichment_once
from workbench.lake.manifest import MANIFEST_DIR
from workbench.lake.manifest_reader import ManifestReader
from workbench.lake.storage import LocalStorage

pytestmark = [pytest.mark.fault, pytest.mark.spark]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """A stack without the enrichment's de-duplication (every bronze row read is a silver row)."""
    return make_settings(tmp_path, engine={"dedupe_minutes": 0})


def named_files(root: str) -> set[str]:
    reader = ManifestReader(LocalStorage(root))
    end = reader.end()
    return {f.path for entry in reader.between({}, end) for f in entry.files}


def bronze_files(root: str) -> set[str]:
    return {p.relative_to(root).as_posix() for p in Path(root, "bronze").rglob("part-*.parquet")}


def named_seqs(root: str) -> set[int]:
    paths = sorted(named_files(root))
    if not paths:
        return set()
    table = ds.dataset([f"{root}/{p}" for p in paths], format="parquet").to_table(["payload"])
    return {json.loads(p)["seq"] for p in table.column("payload").to_pylist()}


def rows_in(root: str, paths: set[str]) -> int:
    if not paths:
        return 0
    return ds.dataset([f"{root}/{p}" for p in sorted(paths)], format="parquet").count_rows()


def test_a_file_without_its_entry_is_never_read(
    spark: Any,  # noqa: F811
    settings: Settings,
    ingest: IngestProcess,
) -> None:
    root = settings.lake.root
    publisher = SteadyPublisher(settings, rate=300, topic="sensors/o1/1", client_id="o1-pub")
    publisher.start()
    publisher.wait_sent(900)
    wait_for(lambda: bool(named_files(root)), timeout=60, what="a first manifest entry")
    [writer_dir] = Path(root, MANIFEST_DIR).iterdir()
    segment = writer_dir / "00000000"
    aside = writer_dir.parent.parent / "aside"
    shutil.move(segment, aside)
    segment.write_text("not a directory")  # the next entry cannot be written
    before = bronze_files(root)
    wait_for(
        lambda: len(bronze_files(root) - before) >= 2, timeout=60, what="files whose entry failed"
    )
    assert ingest.proc is not None
    ingest.proc.send_signal(signal.SIGKILL)
    ingest.proc.wait()
    segment.unlink()
    shutil.move(aside, segment)
    orphans = bronze_files(root) - named_files(root)
    assert len(orphans) >= 2 and rows_in(root, orphans) > 0

    publisher.wait_sent(1500)  # kept by the broker for the ingest's persistent session
    ingest.start()
    publisher.wait_sent(2400)
    publisher.stop()
    sent = publisher.sent
    wait_for(
        lambda: len(named_seqs(root)) >= sent, timeout=120, what=f"{sent} in named bronze files"
    )
    named = named_files(root)
    assert orphans.isdisjoint(named)

    run_enrichment_once(spark, settings, Catalog(settings.catalog.url))

    silver = DeltaTable(settings.lake.silver_readings).to_pyarrow_table(columns=["message_id"])
    ids = silver.column("message_id").to_pylist()
    print(
        f"ingest killed before its entry: published={sent} orphans={len(orphans)} "
        f"orphan_rows={rows_in(root, orphans)} silver_rows={len(ids)}"
    )
    # Exactly the rows of the named files (redeliveries of acknowledged-late messages
    # included); none of the orphans' rows.
    assert len(ids) == rows_in(root, named)
    assert len(set(ids)) == sent
