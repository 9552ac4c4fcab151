"""``workbench maintain`` as an operator runs it: a child process with its own Spark driver.

The steps themselves are tested in ``tests/spark/test_maintenance.py``; here, the command line:
its arguments, what it prints, its exit codes, and that it changes the lake it is pointed at.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from tests.fixtures.services import ROOT, make_settings
from workbench.core.settings import Settings
from workbench.enrichment.normalization import SILVER_SCHEMA
from workbench.enrichment.silver_stream import ensure_silver_table
from workbench.lake.storage import encode_parquet
from workbench.stack.process import child_env

pytestmark = pytest.mark.spark

WORKBENCH = Path(sys.executable).with_name("workbench")


def _maintain(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(WORKBENCH), "maintain", *args],
        env=child_env(settings),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _silver_rows(batch: int) -> list[tuple[Any, ...]]:
    """Two silver rows of one dataset and day (the other columns null)."""
    rows = []
    for i in range(2):
        values: dict[str, Any] = {
            "message_id": f"m{batch}-{i}",
            "ingestion_id": "ds",
            "event_time": datetime(2026, 11, 26, 10, batch, i),
            "date": date(2026, 11, 26),
        }
        rows.append(tuple(values.get(f.name) for f in SILVER_SCHEMA.fields))
    return rows


def test_maintain_compacts_silver_and_deletes_old_bronze_days(spark: Any, tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path, maintenance={"bronze_retention_days": 7, "compaction_min_files": 2}
    )
    silver = settings.lake.silver_readings
    ensure_silver_table(spark, settings)
    for batch in range(3):  # three appends: three files in one partition
        frame = spark.createDataFrame(_silver_rows(batch), SILVER_SCHEMA).coalesce(1)
        frame.write.format("delta").mode("append").save(silver)
    today = datetime.now(UTC).date()
    bronze = Path(settings.lake.bronze) / "ingestion_id=ds"
    old = bronze / f"date={today - timedelta(days=30)}" / "hour=10" / "part-old.parquet"
    new = bronze / f"date={today}" / "hour=10" / "part-new.parquet"
    for path in (old, new):
        path.parent.mkdir(parents=True)
        path.write_bytes(encode_parquet(pa.table({"message_id": ["m"]})))
    long_ago = (datetime.now(UTC) - timedelta(days=30)).timestamp()
    os.utime(old, (long_ago, long_ago))  # a day written recently is kept for the stream

    dry = _maintain(settings, "--dry-run")
    assert dry.returncode == 0, dry.stderr[-3000:]
    lines = dry.stdout.splitlines()
    assert any("bronze" in ln and "would delete" in ln and "[dry run]" in ln for ln in lines)
    assert any(ln.startswith("silver/readings") and "would compact 3 file(s)" in ln for ln in lines)
    assert old.exists() and len(DeltaTable(silver).file_uris()) == 3  # nothing changed

    compact = _maintain(settings, "compact", "--layer", "silver")
    assert compact.returncode == 0, compact.stderr[-3000:]
    assert "silver/readings" in compact.stdout and "3 -> 1 files" in compact.stdout
    assert "bronze" not in compact.stdout  # one layer, one step
    assert len(DeltaTable(silver).file_uris()) == 1
    assert spark.read.format("delta").load(silver).count() == 6  # the same rows

    retention = _maintain(settings, "retention", "--layer", "bronze")
    assert retention.returncode == 0, retention.stderr[-3000:]
    assert not old.exists() and not old.parent.parent.exists() and new.exists()

    wrong = _maintain(settings, "compact", "--layer", "platinum")
    assert wrong.returncode == 2
    assert "invalid choice: 'platinum'" in wrong.stderr and "silver" in wrong.stderr
