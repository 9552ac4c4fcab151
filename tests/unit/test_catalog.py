import threading

import pytest

from workbench.catalog.migrations import MIGRATIONS
from workbench.catalog.records import Computation, NormalizationRule
from workbench.catalog.schemas import (
    MAX_PATH_DEPTH,
    DatasetObservation,
    flatten,
    infer_type,
    widen,
)
from workbench.catalog.store import Catalog
from workbench.core.clock import utcnow
from workbench.core.errors import CatalogError, NotFoundError


def test_lattice_widens_never_fails() -> None:
    assert widen("integer", "double") == "double"
    assert widen("null", "boolean") == "boolean"
    assert widen("boolean", "integer") == "integer"
    assert widen("double", "timestamp") == "string"
    assert widen("array", "integer") == "string"
    assert infer_type("2026-11-26T10:00:00Z") == "timestamp"
    assert infer_type(True) == "boolean"
    assert flatten({"a": {"b": {"c": 1}}, "d": {}}) == {"a.b.c": 1, "d": {}}


def test_flatten_stops_at_the_path_depth_the_stream_reads() -> None:
    deep: dict = {"leaf": 1}
    for _ in range(MAX_PATH_DEPTH + 3):
        deep = {"k": deep}
    (path, value), *rest = flatten({"top": deep}).items()
    assert rest == [] and path.count(".") + 1 == MAX_PATH_DEPTH and isinstance(value, dict)


def test_migrations_run_once_even_concurrently(catalog_url: str) -> None:
    url = catalog_url
    errors: list[BaseException] = []

    def open_catalog() -> None:
        try:
            Catalog(url).close()
        except BaseException as err:  # noqa: BLE001 - report any failure of the thread
            errors.append(err)

    threads = [threading.Thread(target=open_catalog) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    c = Catalog(url)
    assert c.schema_version == MIGRATIONS[-1].version
    assert len([r for r in c.list_rules() if r.canonical_key == "temperature"]) == 4  # seeded once


def test_rules_scope_and_errors(catalog: Catalog) -> None:
    rule = catalog.add_rule("tmp", "temperature", ingestion_id="ds1", priority=5)
    assert rule.ingestion_id == "ds1"
    with pytest.raises(CatalogError, match="already has a rule"):
        catalog.add_rule("tmp", "other", ingestion_id="ds1")
    catalog.add_rule("tmp", "temperature")  # the same raw key globally is a different scope
    catalog.record_rule_usage({rule.id: 7})
    catalog.record_rule_usage({rule.id: 3})
    usage = {r.id: r for r in catalog.rule_usage()}
    assert usage[rule.id].rows_affected == 10 and usage[rule.id].last_applied is not None
    catalog.update_rule(rule.id, enabled=False)
    assert rule.id not in {r.id for r in catalog.list_rules()}
    catalog.update_rule(rule.id, priority=1)  # the other options are kept
    [changed] = [r.rule for r in catalog.rule_usage() if r.id == rule.id]
    assert changed == NormalizationRule(rule.id, "tmp", "temperature", "ds1", 1, enabled=False)
    with pytest.raises(NotFoundError):
        catalog.update_rule(99999, priority=1)


def test_computations(catalog: Catalog) -> None:
    seeded = catalog.get_computation("sensor_averages")
    assert seeded.tile_type == "timeseries" and "gold.sensor_averages" in seeded.sql
    catalog.save_computation(Computation("n", "SELECT 1", tile_type="stat"))
    assert catalog.get_computation("n").sql == "SELECT 1"
    # The error lists what exists: the new one and the seeded examples.
    with pytest.raises(NotFoundError, match=r"known: .*\bn, readings_by_device, .*sensor_averages"):
        catalog.get_computation("missing")


def test_observations_merge_and_version_schema(catalog: Catalog) -> None:
    first = DatasetObservation("ds", "mqtt")
    first.add({"v": 1, "loc": {"x": 1}}, 10, utcnow())
    first.add(None, 5, utcnow())  # a non-object payload still counts
    catalog.record_observations([first])
    again = DatasetObservation("ds", "mqtt")
    again.add({"v": 2.5}, 10, utcnow())
    catalog.record_observations([again])
    same = DatasetObservation("ds", "mqtt")
    same.add({"v": 3.5}, 10, utcnow())
    catalog.record_observations([same])
    ds = catalog.get_dataset("ds")
    fields = {f.path: f for f in ds.fields}
    assert ds.record_count == 4 and ds.bytes == 35
    assert fields["v"].type == "double" and fields["v"].min == 1 and fields["v"].max == 3.5
    assert fields["loc.x"].nullable
    assert ds.schema_version == 2  # created, then widened; the third batch changed nothing
