"""Schema evolution log, schema versions and field counts."""

import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, inspect, text

from tests.fixtures.catalog import run_writers
from workbench.catalog import tables as t
from workbench.catalog.extraction import FULL_INFERENCE_RECORDS, SAMPLE_STRIDE, MetadataExtractor
from workbench.catalog.migrations import migrate
from workbench.catalog.schemas import DatasetObservation
from workbench.catalog.store import Catalog
from workbench.connectors.envelope import Envelope

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def observe(catalog: Catalog, at: datetime, *records: dict, iid: str = "ds") -> None:
    obs = DatasetObservation(iid, "mqtt")
    for record in records:
        obs.add(record, 10, at)
    catalog.record_observations([obs])


def test_added_and_widened_are_logged_one_version_per_merge(catalog: Catalog) -> None:
    observe(catalog, T0, {"v": 1, "loc": {"x": 1}})
    observe(catalog, T0 + timedelta(minutes=1), {"v": 2, "w": True})  # w added
    observe(catalog, T0 + timedelta(minutes=2), {"v": 2.5, "w": 3, "z": "a"})  # 2 widen + add
    observe(catalog, T0 + timedelta(minutes=3), {"v": 7, "w": 1})  # nothing new
    assert catalog.get_dataset("ds").schema_version == 3
    log = [
        (e.kind, e.path, e.old_type, e.new_type, e.schema_version)
        for e in catalog.schema_evolution("ds")
    ]
    assert log == [
        ("added", "v", None, "integer", 1),
        ("added", "loc.x", None, "integer", 1),
        ("added", "w", None, "boolean", 2),
        ("widened", "v", "integer", "double", 3),
        ("widened", "w", "boolean", "integer", 3),
        ("added", "z", None, "string", 3),
    ]
    widened = [e for e in catalog.schema_evolution("ds") if e.kind == "widened"]
    assert {e.path: e.sample for e in widened} == {"v": 2.5, "w": 3}  # the widening values
    assert all(e.at == T0 + timedelta(minutes=2) for e in widened)


def test_field_counts_exact_without_sampling(catalog: Catalog) -> None:
    observe(catalog, T0, {"a": 1, "b": None}, {"a": 2}, {"c": 1})
    observe(catalog, T0, {"a": 3})
    counts = {f.path: f.count for f in catalog.dataset_schema("ds")}
    assert counts == {"a": 3, "b": 1, "c": 1}


def test_not_seen_once_then_rearmed(catalog: Catalog) -> None:
    day = timedelta(days=1)
    observe(catalog, T0, {"a": 1, "gone": 1})
    observe(catalog, T0, {"a": 1}, iid="silent")
    observe(catalog, T0 + 2 * day, {"a": 2})  # ds keeps arriving without "gone"
    assert catalog.sweep_stale_fields(T0 + 2 * day, day) == 1  # "silent" went quiet as a whole
    assert catalog.sweep_stale_fields(T0 + 3 * day, day) == 0  # logged once
    [event] = [e for e in catalog.schema_evolution() if e.kind == "not_seen"]
    assert (event.ingestion_id, event.path, event.old_type, event.sample) == (
        "ds",
        "gone",
        "integer",
        1,
    )
    assert {f.path: f.stale for f in catalog.dataset_schema("ds")} == {"a": False, "gone": True}
    observe(catalog, T0 + 4 * day, {"a": 3, "gone": 5})  # back: re-armed, not a new version
    assert not any(f.stale for f in catalog.dataset_schema("ds"))
    observe(catalog, T0 + 6 * day, {"a": 4})
    assert catalog.sweep_stale_fields(T0 + 6 * day, day) == 1
    assert [e.kind for e in catalog.schema_evolution("ds")].count("not_seen") == 2
    assert catalog.get_dataset("ds").schema_version == 1


def envelope(i: int, record: dict) -> Envelope:
    return Envelope(
        message_id=str(i),
        ingestion_id="ds",
        source_type="mqtt",
        topic="t",
        received_at=T0,
        event_time=None,
        event_time_raw=None,
        payload=json.dumps(record),
        payload_kind="object",
        record=record,
    )


def test_extractor_counts_exact_and_field_counts_scaled_when_sampling(catalog: Catalog) -> None:
    n = FULL_INFERENCE_RECORDS + 50 * SAMPLE_STRIDE
    extractor = MetadataExtractor(catalog, batch_size=10**9, batch_seconds=3600, stale_seconds=60)
    extractor.observe([envelope(i, {"a": i, "b": i} if i % 2 else {"a": i}) for i in range(n)])
    extractor.write_pending()
    ds = catalog.get_dataset("ds")
    counts = {f.path: f.count for f in ds.fields}
    assert ds.record_count == n  # exact
    assert counts["a"] == n  # every record carries it: scaling is exact here
    assert abs(counts["b"] - n / 2) <= n * 0.05  # sampled, scaled: an estimate
    extractor.sweep_stale()  # nothing is stale yet, and the sweep must not fail
    assert not [e for e in catalog.schema_evolution("ds") if e.kind == "not_seen"]


def test_migration_5_upgrades_a_version_4_catalog(catalog: Catalog) -> None:
    with catalog.engine.begin() as conn:  # back to what version 4 had
        conn.execute(text("ALTER TABLE fields DROP COLUMN records"))
        conn.execute(text("ALTER TABLE fields DROP COLUMN stale"))
        t.schema_events.drop(conn)
        conn.execute(delete(t.schema_migrations).where(t.schema_migrations.c.version == 5))
    migrate(catalog.engine)
    with catalog.engine.begin() as conn:
        assert {"records", "stale"} <= {c["name"] for c in inspect(conn).get_columns("fields")}
    observe(catalog, T0, {"a": 1})
    assert catalog.dataset_schema("ds")[0].count == 1
    assert [e.kind for e in catalog.schema_evolution("ds")] == ["added"]


def test_concurrent_merges_of_one_dataset_lose_nothing(catalog_url: str) -> None:
    # Several ingest hosts writing the same dataset: the merge locks the dataset row.
    def write(cat: Catalog, i: int) -> None:
        for j in range(10):
            observe(cat, T0 + timedelta(seconds=j), {"v": 1.5 if i == 3 else j, f"k{i}": j})

    run_writers(catalog_url, write)
    catalog = Catalog(catalog_url)
    ds = catalog.get_dataset("ds")
    assert ds.record_count == 40
    assert {f.path: (f.type, f.count) for f in ds.fields} == {
        "v": ("double", 40),
        **{f"k{i}": ("integer", 10) for i in range(4)},
    }
    kinds = [(e.kind, e.path) for e in catalog.schema_evolution("ds")]
    assert sorted(p for k, p in kinds if k == "added") == ["k0", "k1", "k2", "k3", "v"]
    assert ds.schema_version == len({e.schema_version for e in catalog.schema_evolution("ds")})
    catalog.close()
