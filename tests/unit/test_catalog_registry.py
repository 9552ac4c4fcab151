"""Devices, value rules and alert rules in the catalog (SPEC F17, F18, F20)."""

import pytest

from workbench.catalog.records import AlertRule, Device
from workbench.catalog.store import Catalog
from workbench.core.errors import ConfigError, NotFoundError


def test_devices_upsert_and_exact_beats_longest_wildcard(catalog: Catalog) -> None:
    catalog.save_device(Device("air-*", name="all air", sensitivity="public"))
    catalog.save_device(Device("air-north-*", name="north", retention_days=7))
    catalog.save_device(Device("air-north-3", name="three", enabled=False))
    assert catalog.device_for("air-north-3") == Device("air-north-3", "three", enabled=False)
    assert catalog.device_for("air-north-9") == Device("air-north-*", "north", retention_days=7)
    assert catalog.device_for("air-south-1") == Device("air-*", "all air", "public")
    assert catalog.device_for("bin-1") is None
    catalog.save_device(Device("air-*", name="renamed", sensitivity="restricted"))  # upsert
    assert [d.ingestion_id for d in catalog.list_devices()] == [
        "air-*",
        "air-north-*",
        "air-north-3",
    ]
    assert catalog.device_for("air-x").sensitivity == "restricted"  # type: ignore[union-attr]
    catalog.delete_device("air-north-*")
    assert catalog.device_for("air-north-9").name == "renamed"  # type: ignore[union-attr]
    with pytest.raises(NotFoundError):
        catalog.delete_device("air-north-*")


def test_device_validation(catalog: Catalog) -> None:
    with pytest.raises(ConfigError, match=r"unknown sensitivity 'secret'.*public, internal"):
        catalog.save_device(Device("d", sensitivity="secret"))
    with pytest.raises(ConfigError, match="retention_days"):
        catalog.save_device(Device("d", retention_days=0))
    with pytest.raises(ConfigError):
        catalog.save_device(Device(" "))
    assert catalog.list_devices() == []


def test_value_rules_order_scope_status(catalog: Catalog) -> None:
    late = catalog.add_value_rule("cap", "validate", "temperature", {"check": "range", "max": 60})
    early = catalog.add_value_rule(
        "f2c", "convert", "temperature", {"op": "mul", "value": 2}, ingestion_id="ds1", priority=5
    )
    rules = catalog.list_value_rules()
    assert [r.id for r in rules] == [early, late]
    assert rules[0].ingestion_id == "ds1" and rules[1].ingestion_id is None
    assert rules[1].config == {"check": "range", "max": 60}
    with pytest.raises(ConfigError, match=r"unknown value rule kind 'explode'.*filter, convert"):
        catalog.add_value_rule("x", "explode", "temperature")
    with pytest.raises(ConfigError, match="unknown value rule kind"):
        catalog.update_value_rule(late, kind="explode")
    with pytest.raises(ConfigError, match="cannot change"):
        catalog.update_value_rule(late, rows_affected=5)
    with pytest.raises(NotFoundError):
        catalog.update_value_rule(99999, priority=1)

    catalog.record_value_rule_status({late: ("ok", None, 10), early: ("failed", "bad cast", 0)})
    catalog.record_value_rule_status({late: ("ok", None, 5)})
    status = {r["id"]: r for r in catalog.value_rule_status()}
    assert status[late]["rows_affected"] == 15 and status[late]["status"] == "ok"
    assert status[early]["status"] == "failed" and status[early]["last_error"] == "bad cast"
    assert status[late]["last_applied_at"] is not None
    with pytest.raises(ConfigError, match="unknown value rule status"):
        catalog.record_value_rule_status({late: ("meh", None, 1)})

    catalog.update_value_rule(late, enabled=False, ingestion_id="ds2")
    assert [r.id for r in catalog.list_value_rules()] == [early]
    [disabled] = [r for r in catalog.list_value_rules(include_disabled=True) if r.id == late]
    assert disabled.ingestion_id == "ds2" and not disabled.enabled
    catalog.delete_value_rule(early)
    assert catalog.list_value_rules() == []


def test_alert_rules(catalog: Catalog) -> None:
    rid = catalog.add_alert_rule("hot", "temperature", "gt", 30, ingestion_id="ds1")
    other = catalog.add_alert_rule("dry", "humidity", "lt", 20.5, enabled=False)
    assert catalog.list_alert_rules() == [AlertRule(rid, "hot", "temperature", "gt", 30.0, "ds1")]
    assert [r.id for r in catalog.list_alert_rules(include_disabled=True)] == [rid, other]
    with pytest.raises(ConfigError, match="unknown alert op 'above'"):
        catalog.add_alert_rule("x", "temperature", "above", 1)
    catalog.delete_alert_rule(rid)
    assert catalog.list_alert_rules() == []


def test_rule_usage_counts_a_replayed_batch_once(catalog: Catalog) -> None:
    rule = catalog.add_rule("tmp", "temperature")
    catalog.record_rule_usage({rule.id: 7}, batch_key="q1:4")
    catalog.record_rule_usage({rule.id: 7}, batch_key="q1:4")  # the replay
    catalog.record_rule_usage({rule.id: 2}, batch_key="q1:5")
    catalog.record_rule_usage({rule.id: 1})  # no key: always counted
    [row] = [r for r in catalog.rule_usage() if r["id"] == rule.id]
    assert row["rows_affected"] == 10


def test_sources_and_loss_upserts(catalog: Catalog) -> None:
    iid = catalog.save_source("s", "mqtt", {"topic": "a"})
    catalog.set_source_enabled("s", False)
    assert catalog.save_source("s", "mqtt", {"topic": "b"}) == iid
    [src] = catalog.list_sources()
    assert src["config"] == {"topic": "b"} and src["enabled"] is False  # replace keeps state
    catalog.add_loss_counts({"ds": {"received": 3, "written": 2}})
    catalog.add_loss_counts({"ds": {"received": 1, "gaps": 4}})
    [loss] = catalog.loss_accounting()
    assert (loss["received"], loss["written"], loss["gaps"]) == (4, 2, 4)
