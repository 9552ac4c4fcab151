"""Which key holds a record's sensor id (for the distinct-sensor count), as silver reads it."""

import pytest

from workbench.catalog.migrations import DEFAULT_RULES
from workbench.catalog.records import NormalizationRule
from workbench.catalog.sensor_ids import (
    SENSOR_KEY,
    SensorIdReader,
    SensorKeys,
    as_text,
    sensor_key_order,
)
from workbench.enrichment.normalization import plan_rules


def seed_rules() -> list[NormalizationRule]:
    rules, priority = [], 0
    for canonical, raw_keys in DEFAULT_RULES.items():
        for raw in raw_keys:
            priority += 10
            rules.append(NormalizationRule(priority, raw, canonical, None, priority))
    return rules


RULE_SETS = {
    "seed": seed_rules(),
    "own rule first, global id remapped": [
        *seed_rules(),
        NormalizationRule(100, "Serial", SENSOR_KEY, "ds", priority=1),
        NormalizationRule(101, "id", "messageId", "ds", priority=1),  # per-source wins
    ],
    "disabled and other canonical keys": [
        NormalizationRule(1, "dev", SENSOR_KEY, None, 5, enabled=False),
        NormalizationRule(2, "node", SENSOR_KEY, None, 7),
        NormalizationRule(3, "sensorId", "legacyId", "ds", 1),  # the own name is taken
    ],
}


@pytest.mark.parametrize("name", sorted(RULE_SETS))
def test_key_order_is_the_enrichment_coalescing_order(name: str) -> None:
    rules = RULE_SETS[name]
    global_plan, per_source = plan_rules(rules)
    for iid, plan in [(None, global_plan), *per_source.items()]:
        expected = [c.raw_key for c in plan.candidates.get(SENSOR_KEY, [])]
        assert sensor_key_order(rules, iid) == expected, iid
    keys = SensorKeys.from_rules(rules)
    assert keys.order("unknown") == keys.global_order


def test_seed_order_and_per_dataset_rules() -> None:
    keys = SensorKeys.from_rules(RULE_SETS["own rule first, global id remapped"])
    assert keys.global_order == tuple(DEFAULT_RULES[SENSOR_KEY])  # "sensorid" is a seed key
    assert keys.order("ds") == ("serial", *DEFAULT_RULES[SENSOR_KEY][:-1])  # "id" is not
    other = SensorKeys.from_rules([NormalizationRule(1, "node", SENSOR_KEY)])
    assert other.global_order == ("node", "sensorid")  # the canonical spelling, last


def test_reader_is_case_insensitive_first_wins_and_learns_spellings() -> None:
    reader = SensorIdReader(SensorKeys.from_rules(seed_rules()).global_order)
    assert reader.read({"DeviceId": "d-1", "temp": 1}) == "d-1"
    assert reader.read({"id": 7, "Sensor_ID": "s-1"}) == "s-1"  # sensor_id ranks before id
    assert reader.read({"sensor_id": None, "id": 7}) == "7"  # first non-null wins
    assert reader.read({"SENSORID": True}) == "true"
    assert reader.read({"temp": 1}) is None
    assert reader.spellings == ("Sensor_ID", "sensor_id", "SENSORID", "DeviceId", "id")
    # Without a scan only known spellings are looked up (plain dictionary look-ups).
    assert reader.read({"DeviceId": "d-2"}, scan=False) == "d-2"
    assert reader.read({"deviceID": "d-3"}, scan=False) is None
    assert reader.read({"sensorId": 1.5, "loc": {}}, scan=True) == "1.5"


def test_values_as_silver_text() -> None:
    assert [as_text(v) for v in (12, 1.5, False, {"a": [1, 2]})] == [
        "12",
        "1.5",
        "false",
        '{"a":[1,2]}',
    ]


def test_records_without_a_known_spelling_are_scanned_within_a_budget() -> None:
    reader = SensorIdReader(("sensor_id", "id"))
    reader.scans_left = 2
    assert reader.read_unknown({"v": 1}) is None  # no sensor id: costs one scan
    assert reader.read_unknown({"SENSOR_ID": "a"}) == "a"
    assert reader.spellings == ("SENSOR_ID",)
    assert reader.read_unknown({"Id": "b"}) is None  # budget spent: left for the next batch
    assert reader.read({"Id": "b"}, scan=False) is None


def test_nested_paths_are_read_like_the_enrichment_reads_them() -> None:
    rules = [
        *seed_rules(),
        NormalizationRule(100, "meta.device.ID", SENSOR_KEY, "ds", priority=1),
    ]
    reader = SensorIdReader(SensorKeys.from_rules(rules).order("ds"))
    assert reader.nested and not SensorIdReader(SensorKeys.from_rules(rules).global_order).nested
    record = {"sensor_id": "top", "Meta": {"device": {"id": 42}}}
    assert reader.read(record) == "42"  # the dataset's own rule ranks first
    assert reader.read(record, scan=False) == "42"  # nested paths are always scanned
    assert reader.read({"sensor_id": "top", "meta": {"device": {}}}) == "top"
    assert reader.read({"meta": {"device": None}}) is None
