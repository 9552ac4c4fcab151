"""Devices, value rules, alert rules and stream computations in the catalog."""

import threading

import pytest
from sqlalchemy import delete, inspect

from workbench.catalog import tables as t
from workbench.catalog.migrations import migrate
from workbench.catalog.records import AlertRule, Device, RuleOutcome, StreamComputation, ValueRule
from workbench.catalog.store import Catalog
from workbench.core.errors import ConfigError, NotFoundError
from workbench.ingest.loss import LossCounts


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
    with pytest.raises(TypeError, match="rows_affected"):
        catalog.update_value_rule(late, rows_affected=5)
    with pytest.raises(NotFoundError):
        catalog.update_value_rule(99999, priority=1)

    catalog.record_value_rule_status(
        {late: RuleOutcome.ok(10), early: RuleOutcome.failed("bad cast")}
    )
    catalog.record_value_rule_status({late: RuleOutcome.ok(5)})
    status = {r.id: r for r in catalog.value_rule_status()}
    assert status[late].rows_affected == 15 and status[late].status == "ok"
    assert status[early].status == "failed" and status[early].last_error == "bad cast"
    assert status[late].last_applied_at is not None and status[late].rule.field == "temperature"
    with pytest.raises(ConfigError, match="unknown value rule status"):
        catalog.record_value_rule_status({late: RuleOutcome("meh", 1)})

    catalog.update_value_rule(late, enabled=False, ingestion_id="ds2")
    assert [r.id for r in catalog.list_value_rules()] == [early]
    [disabled] = [r for r in catalog.list_value_rules(include_disabled=True) if r.id == late]
    assert disabled.ingestion_id == "ds2" and not disabled.enabled
    catalog.update_value_rule(late, ingestion_id=None)  # None: global, not "unchanged"
    [moved] = [r for r in catalog.list_value_rules(include_disabled=True) if r.id == late]
    assert moved == ValueRule(
        late, "cap", "validate", "temperature", disabled.config, None, 100, False
    )
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


def test_stream_computations_crud_and_versions(catalog: Catalog) -> None:
    first = catalog.save_stream_computation(StreamComputation("hot", "SELECT 1", "v1 text"))
    assert (first.version, first.enabled, first.description) == (1, True, "v1 text")
    assert first.id > 0 and first.created_at is not None and first.updated_at is not None
    other = catalog.save_stream_computation(StreamComputation("cold", "SELECT 2", enabled=False))
    assert [c.name for c in catalog.list_stream_computations()] == ["cold", "hot"]
    assert [c.name for c in catalog.list_stream_computations(include_disabled=False)] == ["hot"]

    # Same SQL: the version stays (the running query is kept); new SQL: it rises.
    same = catalog.save_stream_computation(StreamComputation("hot", "SELECT 1", "new text"))
    assert (same.id, same.version, same.description) == (first.id, 1, "new text")
    changed = catalog.save_stream_computation(StreamComputation("hot", "SELECT 3", version=9))
    assert (changed.id, changed.version, changed.sql) == (first.id, 2, "SELECT 3")
    assert changed.created_at == first.created_at
    assert catalog.get_stream_computation("hot") == changed

    with pytest.raises(
        NotFoundError, match=r"no stream computation named 'nope'; known: cold, hot"
    ):
        catalog.get_stream_computation("nope")
    catalog.delete_stream_computation("hot")
    with pytest.raises(NotFoundError):
        catalog.delete_stream_computation("hot")
    again = catalog.save_stream_computation(StreamComputation("hot", "SELECT 1"))
    assert again.version == 1 and again.id not in {first.id, other.id}  # ids are never reused


@pytest.mark.parametrize("name", ["", "1x", "has-dash", "a b", "x" * 65, "ok\n"])
def test_stream_computation_name_must_name_a_table(catalog: Catalog, name: str) -> None:
    with pytest.raises(ConfigError, match=r"cannot name the table gold\.<name>"):
        catalog.save_stream_computation(StreamComputation(name, "SELECT 1"))
    with pytest.raises(ConfigError, match="has no SQL"):
        catalog.save_stream_computation(StreamComputation("fine", "  "))
    assert catalog.list_stream_computations() == []


def test_concurrent_saves_of_one_stream_computation_bump_the_version_once_each(
    catalog: Catalog,
) -> None:
    catalog.save_stream_computation(StreamComputation("c", "SELECT 0"))
    errors: list[BaseException] = []

    def save(i: int) -> None:
        try:
            catalog.save_stream_computation(StreamComputation("c", f"SELECT {i}"))
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=save, args=(i,)) for i in range(1, 7)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert catalog.get_stream_computation("c").version == 7


def test_migration_6_adds_stream_computations_to_a_version_5_catalog(catalog: Catalog) -> None:
    with catalog.engine.begin() as conn:  # back to what version 5 had
        t.stream_computations.drop(conn)
        conn.execute(delete(t.schema_migrations).where(t.schema_migrations.c.version == 6))
    migrate(catalog.engine)
    with catalog.engine.begin() as conn:
        assert inspect(conn).has_table("stream_computations")
    assert catalog.save_stream_computation(StreamComputation("x", "SELECT 1")).version == 1


def test_rule_usage_counts_a_replayed_batch_once(catalog: Catalog) -> None:
    rule = catalog.add_rule("tmp", "temperature")
    catalog.record_rule_usage({rule.id: 7}, batch_key="q1:4")
    catalog.record_rule_usage({rule.id: 7}, batch_key="q1:4")  # the replay
    catalog.record_rule_usage({rule.id: 2}, batch_key="q1:5")
    catalog.record_rule_usage({rule.id: 1})  # no key: always counted
    [row] = [r for r in catalog.rule_usage() if r.id == rule.id]
    assert row.rows_affected == 10


def test_sources_and_loss_upserts(catalog: Catalog) -> None:
    iid = catalog.save_source("s", "mqtt", {"topic": "a"})
    catalog.set_source_enabled("s", False)
    assert catalog.save_source("s", "mqtt", {"topic": "b"}) == iid
    [src] = catalog.list_sources()
    assert src["config"] == {"topic": "b"} and src["enabled"] is False  # replace keeps state
    catalog.add_loss_counts({"ds": LossCounts(received=3, written=2)})
    catalog.add_loss_counts({"ds": LossCounts(received=1, gaps=4)})
    [loss] = catalog.loss_accounting()
    assert (loss.ingestion_id, loss.received, loss.written, loss.gaps) == ("ds", 4, 2, 4)
    assert loss.updated_at is not None
