"""Rule preview equals what the stream writes; the rule editor widget previews and saves."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from tests.spark.conftest import WriteBronze, bronze_row
from workbench.catalog.records import Device
from workbench.catalog.store import Catalog
from workbench.core.settings import Settings
from workbench.enrichment.normalization import SILVER_SCHEMA
from workbench.enrichment.preview import preview_rules
from workbench.enrichment.silver_stream import run_enrichment_once
from workbench.widgets.rule_editor import DRAFT_ID, build_rule_editor

pytestmark = pytest.mark.spark


def _seed(settings: Settings, write_bronze: WriteBronze) -> None:
    write_bronze(
        settings,
        "ds",
        [
            bronze_row("a", {"SensorId": "s1", "Temp": 21.5, "ts": "2026-11-26T10:00:00Z"}),
            bronze_row("b", {"device_id": "s2", "temp_c": "99", "ts": "2026-11-26T10:00:01Z"}),
            bronze_row("c", {"sensor": "s3", "temperature": "n/a", "lux": 300}),
            bronze_row("d", "not json"),
        ],
    )


def test_preview_shows_exactly_what_the_stream_writes(
    spark: Any, lake_settings: Settings, write_bronze: WriteBronze
) -> None:
    catalog = Catalog(lake_settings.catalog.url)
    catalog.add_value_rule(
        "plausible", "validate", "temperature", {"check": "range", "max": 60, "on_fail": "drop"}
    )
    catalog.add_value_rule("as_float", "convert", "temperature", {"to": "float"}, priority=200)
    # Flags (does not drop) the kept readings above 20 degrees, after the conversion.
    catalog.add_value_rule(
        "warm", "validate", "temperature", {"check": "range", "max": 20}, priority=300
    )
    _seed(lake_settings, write_bronze)
    write_bronze(
        lake_settings,
        "ds",
        [
            bronze_row("e", {"sensor": "s4", "temperature": 15, "ts": "2026-11-26T10:00:02Z"}),
            bronze_row("f", {"sensor": "s5", "temperature": 25, "ts": "2026-11-26T10:00:03Z"}),
            bronze_row(
                "g",
                {
                    "device": {"id": "s6"},
                    "data": {"Temperature": 12, "extra": {"lux": 5}},
                    "ts": "2026-11-26T10:00:04Z",
                },
            ),
        ],
    )
    # Nested fields by path (the catalog's dot paths).
    catalog.add_rule("device.id", "sensorId")
    catalog.add_rule("data.temperature", "temperature")

    preview = preview_rules(spark, lake_settings, catalog, ingestion_id="ds")
    run_enrichment_once(spark, lake_settings, catalog)
    silver = {
        r.message_id: r.asDict(recursive=True)
        for r in spark.read.format("delta").load(lake_settings.lake.silver_readings).collect()
    }

    assert sorted(preview.dropped_ids) == ["b", "c"]  # 99 > 60, and "n/a" is not a number
    kept = ["a", "d", "e", "f", "g"]
    assert sorted(silver) == sorted(r["message_id"] for r in preview.after) == kept
    # Every silver column but ``enriched_at``: the time the rows were transformed (the
    # preview's query time, the stream's batch time). ``sensitivity`` comes from the device
    # registry in both ("ds" auto-registered as ``internal``).
    differ = {"enriched_at"}
    compared = [c.name for c in SILVER_SCHEMA.fields if c.name not in differ]
    assert len(compared) == 16
    assert preview.held_datasets == []
    assert {r["sensitivity"] for r in preview.after} == {"internal"}
    for row in preview.after:
        written = silver[row["message_id"]]
        assert set(row) == set(written) == {c.name for c in SILVER_SCHEMA.fields}
        assert {c: row[c] for c in compared} == {c: written[c] for c in compared}
    assert silver["a"]["event_time"] == datetime(2026, 11, 26, 10, 0)  # from the payload
    assert silver["d"]["raw"] is None and silver["d"]["event_time"] is None
    assert (silver["g"]["sensor_id"], silver["g"]["numeric"]) == (
        "s6",
        {"temperature": 12.0, "data.extra.lux": 5.0},
    )

    outcomes = {o.name: o for o in preview.outcomes}
    assert (outcomes["plausible"].affected, outcomes["plausible"].dropped) == (2, 2)
    assert outcomes["as_float"].affected == 4
    # The flag counts, recounted from the rows: those carrying the flag, and those whose
    # temperature is above the rule's max (no flagged row is dropped later in the chain).
    warm = outcomes["warm"]
    carrying = [r["message_id"] for r in preview.after if "validate:warm" in r["flags"]]
    above = [
        r["message_id"]
        for r in preview.after
        if "temperature" in r["fields"] and float(r["fields"]["temperature"]) > 20
    ]
    assert sorted(carrying) == sorted(above) == ["a", "f"]
    assert (warm.kind, warm.affected, warm.flagged, warm.dropped) == ("validate", 2, 2, 0)
    assert [m for m in kept if "validate:warm" in silver[m]["flags"]] == ["a", "f"]
    assert preview.unmapped_keys == {"lux": 1, "data.extra.lux": 1}

    # A disabled device: previewed, but reported as held and without a sensitivity.
    catalog.save_device(Device("ds", name="ds", sensitivity="restricted", enabled=False))
    held = preview_rules(spark, lake_settings, catalog, ingestion_id="ds")
    assert held.held_datasets == ["ds"]
    assert {r["sensitivity"] for r in held.after} == {None}
    catalog.close()


def test_rule_editor_previews_a_draft_reports_errors_and_saves(
    spark: Any, lake_settings: Settings, write_bronze: WriteBronze
) -> None:
    catalog = Catalog(lake_settings.catalog.url)
    _seed(lake_settings, write_bronze)
    editor = build_rule_editor(catalog, lambda: spark, lake_settings)

    editor.config.value = "{not json"
    assert editor.preview() is None and "not valid JSON" in editor.message
    # Patterns are Spark's (Java's): a Python-only group is refused, a Java one accepted.
    editor.kind.value = "validate"
    editor.config.value = '{"check": "regex", "pattern": "(?P<u>[CF])"}'
    assert editor.preview() is None and "Java" in editor.message
    editor.config.value = '{"check": "regex", "pattern": "(?<u>[CF])"}'
    assert editor.draft().config["pattern"] == "(?<u>[CF])"

    editor.kind.value = "filter"
    editor.name.value = "warm"
    editor.field.value = "temperature"
    editor.config.value = '{"op": "gt", "value": 25}'
    result = editor.preview()
    assert result is not None and editor.message == ""
    draft = next(o for o in result.outcomes if o.rule_id == DRAFT_ID)
    assert (draft.name, draft.dropped) == ("warm", 2)  # 21.5 and "n/a"
    assert "warm (draft)" in editor.outcomes_html.value
    assert catalog.list_value_rules() == []  # previewing stores nothing

    rule_id = editor.save()
    assert rule_id is not None
    assert [(r.id, r.name, r.config) for r in catalog.list_value_rules()] == [
        (rule_id, "warm", {"op": "gt", "value": 25})
    ]
    catalog.close()
