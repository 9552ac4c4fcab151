"""The schema browser widget on a real catalog: what it shows and the "Map to…" button."""

from datetime import timedelta

from tests.unit.test_catalog_evolution import T0, observe
from workbench.catalog.schemas import DatasetObservation
from workbench.catalog.store import Catalog
from workbench.widgets.schema_browser import build_schema_browser


def test_browser_shows_fields_evolution_and_maps_an_unmapped_key(catalog: Catalog) -> None:
    observe(catalog, T0, {"temp": 20, "battery_v": 3.7}, iid="air")
    observe(catalog, T0 + timedelta(minutes=1), {"temp": 20.5, "Battery-V": 3.6}, iid="air")
    observe(catalog, T0, {"fill": 10}, iid="bins")
    widget = build_schema_browser(catalog)

    assert widget.datasets.value == "air" and len(widget.datasets.options) == 2
    assert {f.path: f.count for f in widget.fields} == {"Battery-V": 1, "battery_v": 1, "temp": 2}
    assert "battery_v" in widget.fields_html.value and "3.7" in widget.fields_html.value
    assert [(e.kind, e.path) for e in widget.events][-2:] == [
        ("widened", "temp"),
        ("added", "Battery-V"),
    ]
    assert "integer → double" in widget.evolution_html.value
    widget.datasets.value = "bins"
    assert [f.path for f in widget.fields] == ["fill"]

    inbox = {(r.key.ingestion_id, r.key.raw_key): r for r in widget.unmapped_rows}
    assert set(inbox) == {("air", "battery_v"), ("air", "Battery-V"), ("bins", "fill")}
    row = inbox[("air", "battery_v")]
    assert row.canonical.value == "batteryV" and "3.7" in row.info.value
    row.canonical.value = "batteryVoltage"
    row.button.click()
    assert widget.message == ""
    [rule] = [r for r in catalog.list_rules() if r.raw_key == "battery_v"]
    assert (rule.canonical_key, rule.ingestion_id) == ("batteryVoltage", "air")
    left = {(r.key.ingestion_id, r.key.raw_key) for r in widget.unmapped_rows}
    assert left == {("air", "Battery-V"), ("bins", "fill")}
    assert widget.tabs.get_title(1) == "Unmapped keys (2)"
    # "Battery-V" now suggests the canonical key just created, via its raw spelling.
    [other] = [r for r in widget.unmapped_rows if r.key.raw_key == "Battery-V"]
    assert other.canonical.value == "batteryVoltage"
    other.scope.value = ""  # all datasets
    other.button.click()
    other_rule = [r for r in catalog.list_rules() if r.raw_key == "Battery-V"]
    assert other_rule and other_rule[0].ingestion_id is None

    # A failing action is shown, not raised: the same raw key twice in one scope.
    [fill] = [r for r in widget.unmapped_rows if r.key.raw_key == "fill"]
    catalog.add_rule("fill", "fillLevel", ingestion_id="bins")
    fill.button.click()
    assert "already has a rule" in widget.message and "already has a rule" in widget.status.value


def test_browser_shows_distinct_sensors(catalog: Catalog) -> None:
    obs = DatasetObservation("air", "mqtt")
    for i in range(6):
        obs.add({"sensor_id": f"s{i % 3}", "temp": i}, 10, T0)
    obs.sensors.update([f"s{i % 3}" for i in range(6)])
    catalog.record_observations([obs])
    widget = build_schema_browser(catalog)
    assert widget.dataset is not None and widget.dataset.distinct_sensors == 3
    assert "6 records, 3 sensors" in widget.datasets.options[0][0]
    assert "3 distinct sensors" in widget.summary_html.value
    assert "(est.)" not in widget.summary_html.value  # exact at this size
