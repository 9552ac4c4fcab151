"""The unmapped-keys inbox: which raw keys no rule maps, and what to map them to."""

from datetime import UTC, datetime

from tests.unit.test_catalog_evolution import T0, observe
from workbench.catalog.records import DatasetInfo, FieldInfo, NormalizationRule
from workbench.catalog.store import Catalog
from workbench.catalog.unmapped import (
    camel_case,
    find_unmapped,
    is_mapped,
    mapped_keys,
    suggest_canonical,
)

RULES = [
    NormalizationRule(1, "temp_c", "temperature", priority=10),
    NormalizationRule(2, "RH", "humidity", priority=20),
    NormalizationRule(3, "pm", "pm25", ingestion_id="air"),
    NormalizationRule(4, "wind", "windSpeed", enabled=False),
]


def field(path: str, count: int, *samples: object, day: int = 1) -> FieldInfo:
    at = datetime(2026, 11, day, tzinfo=UTC)
    return FieldInfo(path, "string", False, list(samples), None, None, at, at, count=count)


def test_mapped_keys_scope_case_and_canonical_spellings() -> None:
    assert mapped_keys(RULES, "air") == {"temp_c", "temperature", "rh", "humidity", "pm", "pm25"}
    # another dataset: the per-source rule's raw key is not mapped, its canonical name is
    assert "pm" not in mapped_keys(RULES, "bins") and "pm25" in mapped_keys(RULES, "bins")
    assert "wind" not in mapped_keys(RULES, "air")  # disabled


def test_suggestions() -> None:
    assert suggest_canonical("Temp-C", RULES) == "temperature"  # a rule's raw spelling
    assert suggest_canonical("Humidty", RULES) == "humidity"  # close to a canonical key
    assert suggest_canonical("wind_speed_kmh", RULES) == "windSpeed"  # closest existing key
    assert suggest_canonical("battery_level", RULES) == "batteryLevel"  # nothing close
    assert camel_case("PM2.5") == "pm25" and camel_case("SensorID") == "sensorId"
    assert camel_case("battery") == "battery"
    # A nested path: whole, then by its last name.
    assert suggest_canonical("data.Temp-C", RULES) == "temperature"
    assert suggest_canonical("uplink.decoded.Humidty", RULES) == "humidity"
    assert suggest_canonical("loc.lat", RULES) == "locLat"
    assert suggest_canonical("PM2.5", RULES) == "pm25"  # a dotted top-level key, whole


def test_find_unmapped_lists_field_paths_and_orders_by_count() -> None:
    air = DatasetInfo("air", "mqtt", 10, 100, None, None, 1)
    air = DatasetInfo(
        **{
            **air.__dict__,
            "fields": [
                field("PM", 10, 3),  # mapped for air, case-insensitively
                field("Temperature", 10, 20),  # spells a canonical key
                field("loc.lat", 8, 1.5, day=2),
                field("loc.lon", 9, 2.5, day=3),
                field("battery_v", 4, 3.7),
                field("pm.raw.x", 7, 1),  # inside an object a rule takes (PM)
            ],
        }
    )
    bins = DatasetInfo("bins", "mqtt", 5, 50, None, None, 1, [field("pm", 5, 1)])
    inbox = find_unmapped([air, bins], RULES)
    assert [(u.ingestion_id, u.raw_key, u.count) for u in inbox] == [
        ("air", "loc.lon", 9),
        ("air", "loc.lat", 8),
        ("bins", "pm", 5),  # the air-only rule does not cover bins
        ("air", "battery_v", 4),
    ]
    lon = inbox[0]
    assert lon.examples == [2.5] and lon.suggestion == "locLon"
    assert (lon.first_seen.day, lon.last_seen.day) == (3, 3)  # type: ignore[union-attr]
    assert inbox[2].suggestion == "pm25" and inbox[3].suggestion == "batteryV"


def test_a_rule_on_an_object_maps_the_paths_inside_it() -> None:
    mapped = {"loc", "a.b"}
    assert is_mapped("LOC.lat", mapped) and is_mapped("a.b.c.d", mapped)
    assert not is_mapped("location.lat", mapped) and not is_mapped("a.bc", mapped)
    assert not is_mapped("a", mapped)


def test_catalog_inbox_follows_rule_edits(catalog: Catalog) -> None:
    observe(catalog, T0, {"temp": 20, "battery": 3.7, "sensor_id": "a"})
    assert [u.raw_key for u in catalog.unmapped_keys()] == ["battery"]  # temp: seeded rule
    rule = catalog.add_rule("battery", "batteryVoltage", ingestion_id="ds")
    assert catalog.unmapped_keys() == []
    catalog.update_rule(rule.id, enabled=False)
    [battery] = catalog.unmapped_keys()
    assert (battery.count, battery.examples) == (1, [3.7])
