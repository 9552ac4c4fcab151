"""The metadata API through a real ingest process, against its Python twin (Catalog)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fixtures.services import IngestProcess, make_settings
from tests.integration.conftest import wait_for
from tests.integration.test_ingest import publish
from workbench.catalog.store import Catalog
from workbench.client.ingest_client import IngestClient
from workbench.core.errors import NotFoundError
from workbench.core.settings import Settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(
        tmp_path,
        ingest={"flush_seconds": 0.3, "metadata_batch_seconds": 0.3},
        catalog={"url": f"sqlite:///{tmp_path / 'catalog.db'}", "field_stale_seconds": 0.5},
    )


def test_metadata_api_matches_the_catalog_and_logs_evolution(
    settings: Settings, ingest: IngestProcess
) -> None:
    client, catalog = IngestClient(settings), Catalog(settings.catalog.url)
    first = [{"sensor_id": f"s{i}", "temperature": 20 + i, "loc": {"x": i}} for i in range(5)]
    publish(settings, [json.dumps(r).encode() for r in first])
    wait_for(lambda: client.totals().records == 5, what="first batch in the catalog")
    [dataset] = client.list_datasets()
    iid = dataset.ingestion_id
    publish(settings, [json.dumps({"sensor_id": "s9", "temperature": 21.5}).encode()])
    wait_for(
        lambda: "not_seen" in [e.kind for e in client.schema_evolution(iid)],
        what="loc.x logged as not seen by the extractor's sweep",
    )
    events = [(e.kind, e.path, e.old_type, e.new_type) for e in client.schema_evolution(iid)]
    assert sorted(events) == [
        ("added", "loc.x", None, "integer"),
        ("added", "sensor_id", None, "string"),
        ("added", "temperature", None, "integer"),
        ("not_seen", "loc.x", "integer", None),
        ("widened", "temperature", "integer", "double"),
    ]
    # The HTTP API and the Python twin answer the same, record for record.
    assert client.list_datasets() == catalog.list_datasets()
    assert client.get_dataset(iid) == catalog.get_dataset(iid)
    assert client.dataset_schema(iid) == catalog.dataset_schema(iid)
    assert client.schema_evolution(iid) == catalog.schema_evolution(iid)
    assert client.topics_summary() == catalog.topics_summary()
    assert client.totals() == catalog.totals()
    schema = client.enrichment_schema()
    assert schema == catalog.enrichment_schema()
    assert schema["ddl"] == "`sensor_id` STRING, `temperature` STRING, `loc` STRUCT<`x`: STRING>"
    assert {f.path: f.count for f in client.dataset_schema(iid)} == {
        "loc.x": 5,
        "sensor_id": 6,
        "temperature": 6,
    }
    # Distinct sensors (s0-s4, then s9), through the API as in Python.
    assert client.get_dataset(iid).distinct_sensors == 6
    assert client.totals().distinct_sensors == 6
    assert [t.distinct_sensors for t in client.topics_summary()] == [6]
    with pytest.raises(NotFoundError, match="no dataset 'nope'"):
        client.dataset_schema("nope")
    client.close()
    catalog.close()
