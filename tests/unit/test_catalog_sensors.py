"""Distinct sensors per dataset, stored as a sketch, on SQLite and PostgreSQL."""

import json
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import delete, inspect, select, text

from tests.fixtures.catalog import run_writers
from tests.unit.test_catalog_evolution import T0, observe
from workbench.catalog import migrations
from workbench.catalog import tables as t
from workbench.catalog.extraction import SAMPLE_STRIDE, MetadataExtractor
from workbench.catalog.schemas import DatasetObservation
from workbench.catalog.sketch import DistinctSketch
from workbench.catalog.store import Catalog
from workbench.connectors.envelope import Envelope


def envelope(i: int, record: dict[str, Any], iid: str = "ds") -> Envelope:
    return Envelope(
        message_id=str(i),
        ingestion_id=iid,
        source_type="mqtt",
        topic="t",
        received_at=T0 + timedelta(seconds=i),
        event_time=None,
        event_time_raw=None,
        payload=json.dumps(record),
        payload_kind="object",
        record=record,
    )


def observe_sensors(catalog: Catalog, ids: list[str], iid: str = "ds") -> None:
    obs = DatasetObservation(iid, "mqtt")
    obs.add({"v": 1}, 10, T0)
    obs.sensors.update(ids)
    catalog.record_observations([obs])


def stored_sketch(catalog: Catalog, iid: str = "ds") -> bytes:
    with catalog.engine.begin() as conn:
        query = select(t.datasets.c.sensor_sketch).where(t.datasets.c.ingestion_id == iid)
        return bytes(conn.execute(query).scalar_one())


def test_extractor_counts_sensors_exactly_as_the_rules_name_them(catalog: Catalog) -> None:
    catalog.add_rule("Serial", "sensorId", ingestion_id="meters")
    extractor = MetadataExtractor(catalog, batch_size=10**9, batch_seconds=3600)
    extractor.refresh_sensor_rules()
    spellings = ["sensor_id", "DeviceId", "sensorId"]  # seed rules, case-insensitive
    records = [{spellings[i % 3]: f"s{i % 3}", "v": i} for i in range(3 * SAMPLE_STRIDE * 20)]
    records += [{"v": 1}, {"sensor_id": None}]  # no sensor id: not counted
    extractor.observe([envelope(i, r) for i, r in enumerate(records)])
    extractor.observe(
        [envelope(i, {"serial": f"m{i % 2}", "id": "msg"}, "meters") for i in range(50)]
        + [envelope(0, {"id": 7}, "other")]
    )
    extractor.write_pending()
    counts = {d.ingestion_id: d.distinct_sensors for d in catalog.list_datasets()}
    assert counts == {"ds": 3, "meters": 2, "other": 1}  # "Serial" comes before "id" there
    extractor.observe([envelope(0, {"sensorId": "s9"}), envelope(1, {"SENSOR_ID": "s0"})])
    extractor.write_pending()
    ds = catalog.get_dataset("ds")
    assert (ds.distinct_sensors, ds.record_count) == (4, len(records) + 2)
    topics = {row.ingestion_id: row.distinct_sensors for row in catalog.topics_summary()}
    assert topics == {"ds": 4, "meters": 2, "other": 1}
    assert catalog.totals().distinct_sensors == 7  # the union: s0-s2, s9, m0, m1, 7

    # A new rule is picked up at the next refresh, not per record.
    catalog.add_rule("node", "sensorId")
    extractor.observe([envelope(0, {"node": "n1"})])
    extractor.refresh_sensor_rules()
    extractor.observe([envelope(1, {"node": "n2"})])
    extractor.write_pending()
    assert catalog.get_dataset("ds").distinct_sensors == 5


def test_sketch_round_trip_past_the_switch(catalog: Catalog) -> None:
    first = [f"sensor-{i}" for i in range(60_000)]
    second = [f"sensor-{i}" for i in range(40_000, 100_000)]
    observe_sensors(catalog, first)
    observe_sensors(catalog, second)
    union = DistinctSketch()
    union.update(first + second)
    assert stored_sketch(catalog) == union.to_bytes()
    estimate = catalog.get_dataset("ds").distinct_sensors
    assert estimate == union.estimate() and abs(estimate - 100_000) <= 3_000
    observe_sensors(catalog, first[:5_000])  # known sensors: the sketch does not change
    assert stored_sketch(catalog) == union.to_bytes()
    assert catalog.get_dataset("ds").record_count == 3
    observe(catalog, T0, {"v": 1}, iid="quiet")  # no sensor ids: nothing stored
    quiet = catalog.get_dataset("quiet")
    assert quiet.distinct_sensors == 0
    assert catalog.totals().distinct_sensors == estimate


def test_concurrent_merges_lose_no_sensor(catalog_url: str) -> None:
    # Several ingest hosts on one catalog: each merge reads, merges and writes the sketch under
    # the dataset row's lock, so the result is exactly the sketch of every id written.
    def write(cat: Catalog, i: int) -> None:
        for j in range(10):
            observe_sensors(cat, [f"w{i}-b{j}-{k}" for k in range(30)])

    run_writers(catalog_url, write)
    union = DistinctSketch()
    union.update([f"w{i}-b{j}-{k}" for i in range(4) for j in range(10) for k in range(30)])
    assert not union.exact  # 1,200 ids: the writers crossed the switch while racing
    catalog = Catalog(catalog_url)
    assert stored_sketch(catalog) == union.to_bytes()
    assert catalog.get_dataset("ds").distinct_sensors == union.estimate()
    catalog.close()


def test_migration_7_upgrades_an_older_catalog(catalog: Catalog) -> None:
    observe(catalog, T0, {"v": 1})
    with catalog.engine.begin() as conn:  # back to what version 6 had
        conn.execute(text("ALTER TABLE datasets DROP COLUMN sensor_sketch"))
        conn.execute(text("ALTER TABLE datasets DROP COLUMN distinct_sensors"))
        conn.execute(delete(t.schema_migrations).where(t.schema_migrations.c.version == 7))
    assert migrations.migrate(catalog.engine) == migrations.MIGRATIONS[-1].version
    with catalog.engine.begin() as conn:
        applied = set(conn.execute(select(t.schema_migrations.c.version)).scalars())
        columns = {c["name"] for c in inspect(conn).get_columns("datasets")}
    assert 7 in applied
    assert {"sensor_sketch", "distinct_sensors"} <= columns
    assert catalog.get_dataset("ds").distinct_sensors == 0  # counted from now on
    observe_sensors(catalog, ["a", "b"])
    assert catalog.get_dataset("ds").distinct_sensors == 2


def test_migrations_apply_by_number_whatever_their_order_in_the_list(
    catalog_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    shuffled = list(reversed(migrations.MIGRATIONS))
    monkeypatch.setattr(migrations, "MIGRATIONS", shuffled)
    catalog = Catalog(catalog_url)
    with catalog.engine.begin() as conn:
        applied = conn.execute(
            select(t.schema_migrations.c.version).order_by(t.schema_migrations.c.applied_at)
        ).scalars()
        assert list(applied) == sorted(m.version for m in shuffled)
    assert catalog.schema_version == max(m.version for m in shuffled)
    observe_sensors(catalog, ["a"])
    assert catalog.get_dataset("ds").distinct_sensors == 1
    catalog.close()


def test_extractor_counts_sensor_ids_nested_under_a_path_rule(catalog: Catalog) -> None:
    """A rule on a nested path (``device.id``) names the sensor id for every record, not only
    for the few scanned per batch (known spellings are top-level keys)."""
    catalog.add_rule("device.ID", "sensorId", ingestion_id="lora")
    extractor = MetadataExtractor(catalog, batch_size=10**9, batch_seconds=3600)
    extractor.refresh_sensor_rules()
    records = [{"Device": {"id": f"d{i % 5}"}, "sensor_id": "gw"} for i in range(200)]
    extractor.observe([envelope(i, r, "lora") for i, r in enumerate(records)])
    extractor.write_pending()
    assert catalog.get_dataset("lora").distinct_sensors == 5  # the own rule ranks first
