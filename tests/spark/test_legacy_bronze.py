"""A lake from before the bronze manifest: on the first start of the manifest source, the files
the old file-source checkpoint had not read are named once, and only those reach silver."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from deltalake import DeltaTable

from tests.spark.conftest import WriteBronze, bronze_row
from workbench.catalog.store import Catalog
from workbench.core.settings import Settings
from workbench.enrichment.bronze_schema import BRONZE_READ_SCHEMA
from workbench.enrichment.legacy_bronze import LEGACY_WRITER, name_legacy_bronze
from workbench.enrichment.silver_stream import FILE_SOURCE_CHECKPOINT, run_enrichment_once
from workbench.lake.manifest_reader import ManifestReader
from workbench.lake.storage import LocalStorage
from workbench.streams.queries import checkpoint_path

DS = "mqtt_demo_0001"


def rows(tag: str) -> list[dict[str, Any]]:
    return [bronze_row(f"{tag}-{i}", {"sensor_id": "s1", "temperature": i}) for i in range(3)]


def silver_ids(settings: Settings) -> list[str]:
    table = DeltaTable(settings.lake.silver_readings).to_pyarrow_table(columns=["message_id"])
    return sorted(table.column("message_id").to_pylist())


def old_engine_read(spark: Any, settings: Settings) -> None:
    """What the engine before the manifest did: Spark's file source over bronze, checkpointed."""
    query = (
        spark.readStream.format("parquet")
        .schema(BRONZE_READ_SCHEMA)
        .load(settings.lake.bronze)
        .writeStream.format("noop")
        .option("checkpointLocation", checkpoint_path(settings.lake.checkpoints, "enrichment"))
        .trigger(availableNow=True)
        .start()
    )
    query.awaitTermination()


def test_only_unread_legacy_files_are_named_and_read_once(
    spark: Any, lake_settings: Settings, write_bronze: WriteBronze
) -> None:
    settings = lake_settings
    catalog = Catalog(settings.catalog.url)
    write_bronze(settings, DS, rows("read-before"), manifest=False)
    old_engine_read(spark, settings)
    write_bronze(settings, DS, rows("unread-a"), manifest=False)
    write_bronze(settings, DS, rows("unread-b"), manifest=False, hour="11")
    time.sleep(0.05)  # the new ingest starts after the old files were written
    write_bronze(settings, DS, rows("new"))  # by a writer of the manifest

    run_enrichment_once(spark, settings, catalog)

    expected = sorted(f"{tag}-{i}" for tag in ("unread-a", "unread-b", "new") for i in range(3))
    assert silver_ids(settings) == expected
    reader = ManifestReader(LocalStorage(settings.lake.root))
    assert reader.writers()[0] == LEGACY_WRITER
    named = [f.path for e in reader.between({}, {LEGACY_WRITER: 1}) for f in e.files]
    assert len(named) == 2 and all("/part-" in p for p in named)
    assert [len(e.files) for e in reader.between({}, {LEGACY_WRITER: 1})] == [2, 0]  # + the mark

    # Later starts do nothing more, and nothing is read twice.
    assert name_legacy_bronze(spark, settings, old_checkpoint=FILE_SOURCE_CHECKPOINT) == 0
    write_bronze(settings, DS, rows("later"))
    run_enrichment_once(spark, settings, catalog)
    assert silver_ids(settings) == sorted([*expected, *(f"later-{i}" for i in range(3))])


def test_a_lake_without_old_files_gets_only_the_mark(spark: Any, lake_settings: Settings) -> None:
    assert name_legacy_bronze(spark, lake_settings, old_checkpoint=FILE_SOURCE_CHECKPOINT) == 0
    reader = ManifestReader(LocalStorage(lake_settings.lake.root))
    assert reader.writers() == [LEGACY_WRITER]
    assert Path(lake_settings.lake.root, "bronze/_manifest").is_dir()
