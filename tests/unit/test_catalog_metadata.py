"""The metadata API's Python twin on both catalog databases."""

import pytest

from tests.unit.test_catalog_evolution import T0, observe
from workbench.catalog.metadata import spark_ddl
from workbench.catalog.store import Catalog
from workbench.core.errors import NotFoundError
from workbench.core.ids import ingestion_id


def test_topics_totals_and_merged_schema(catalog: Catalog) -> None:
    iid = catalog.save_source("air", "mqtt", {"topic": "sensors/air/#"})
    observe(catalog, T0, {"t": 1, "ok": True, "loc": {"x": 1}}, {"t": 2}, iid=iid)
    observe(catalog, T0, {"t": "2026-11-26T10:00:00Z", "ok": False, "loc": "n/a"}, iid="bins")
    assert iid == ingestion_id("air", "mqtt")
    topics = {t.ingestion_id: t for t in catalog.topics_summary()}
    assert topics[iid].source == "air" and topics[iid].topic == "sensors/air/#"
    assert (topics[iid].records, topics[iid].fields) == (2, 3)
    assert topics["bins"].source is None and topics["bins"].first_seen == T0
    totals = catalog.totals()
    assert (totals.datasets, totals.records, totals.bytes) == (2, 3, 30)
    assert (totals.field_paths, totals.sources, totals.schema_events) == (4, 1, 6)
    schema = catalog.enrichment_schema()
    fields = {f["path"]: (f["type"], f["spark_type"], f["datasets"]) for f in schema["fields"]}
    assert fields == {
        "loc": ("string", "STRING", 1),
        "loc.x": ("integer", "STRING", 1),
        "ok": ("boolean", "BOOLEAN", 2),
        "t": ("string", "STRING", 2),  # integer in one, timestamp in the other
    }
    # "loc" is an object in one dataset and a value in the other: a STRING keeps both.
    assert schema["ddl"] == "`loc` STRING, `ok` BOOLEAN, `t` STRING"


def test_unknown_dataset_is_not_found(catalog: Catalog) -> None:
    for call in (catalog.get_dataset, catalog.dataset_schema, catalog.schema_evolution):
        with pytest.raises(NotFoundError, match="no dataset 'nope'"):
            call("nope")
    assert catalog.totals().records == 0 and catalog.enrichment_schema()["ddl"] == ""


def test_spark_ddl_nests_and_quotes() -> None:
    ddl = spark_ddl({"a.b.c": "STRING", "a.d": "BOOLEAN", "we`ird": "STRING"})
    assert ddl == "`we``ird` STRING, `a` STRUCT<`d`: BOOLEAN, `b`: STRUCT<`c`: STRING>>"
