"""The enrich benchmark's job by hand is a peer of the workbench: the same silver, row by row.

Both run on a small lake generated exactly as the benchmark generates its own (mixed key
spellings, broken readings), the workbench with the benchmark's catalog of rules and devices.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from workbench.bench.enrich import seed_catalog
from workbench.bench.enrich_by_hand import enrich_by_hand
from workbench.bench.enrich_data import generate, link_bronze
from workbench.catalog.store import Catalog
from workbench.core.settings import Settings
from workbench.enrichment.silver_stream import run_enrichment_once

pytestmark = pytest.mark.spark

#: Every silver column but ``enriched_at`` (when each job ran).
COMPARED = (
    "ingestion_id",
    "source_type",
    "topic",
    "received_at",
    "event_time",
    "event_time_raw",
    "sensor_id",
    "raw",
    "fields",
    "numeric",
    "payload_kind",
    "error",
    "flags",
    "sensitivity",
    "date",
)


def _rows(spark: Any, path: str) -> dict[str, dict[str, Any]]:
    rows = spark.read.format("delta").load(path).collect()
    return {r.message_id: {c: r[c] for c in COMPARED} for r in rows}


def test_the_job_by_hand_writes_the_workbenchs_silver_rows(
    spark: Any, lake_settings: Settings, tmp_path: Path
) -> None:
    cached = tmp_path / "cached"
    manifest = generate(cached, 5_000, time_fields=lake_settings.ingest.time_fields)
    link_bronze(cached, Path(lake_settings.lake.root))
    catalog = Catalog(lake_settings.catalog.url)
    try:
        seeded = seed_catalog(catalog)
        run_enrichment_once(spark, lake_settings, catalog)
    finally:
        catalog.close()
    by_hand = str(tmp_path / "by-hand")
    enrich_by_hand(spark, lake_settings.lake.bronze, by_hand)

    workbench = spark.read.format("delta").load(lake_settings.lake.silver_readings)
    assert spark.read.format("delta").load(by_hand).schema == workbench.schema
    expected, got = _rows(spark, lake_settings.lake.silver_readings), _rows(spark, by_hand)
    assert len(seeded["value_rules"]) == 5
    dropped = set(manifest["dropped_ids"])
    assert dropped and not dropped & set(got)  # the rules dropped what they must, by hand too
    assert len(got) == len(expected) == 5_000 - len(dropped)
    assert sorted(got) == sorted(expected)
    differing = [m for m in expected if got[m] != expected[m]]
    assert not differing, (differing[:3], [(expected[m], got[m]) for m in differing[:1]])
    # The rules had work: every spelling reached its canonical name, a reading was flagged, the
    # convert added its field.
    flagged = [m for m, r in got.items() if r["flags"] == ["validate:pm25-not-negative"]]
    assert len(flagged) == sum(manifest["anomalies"]["flag"].values()) > 0
    assert all(r["sensor_id"] and r["event_time"] and r["numeric"] for r in got.values())
    assert any("speed_mps" in r["numeric"] for r in got.values())
