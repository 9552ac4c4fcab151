"""Source lifecycle, the REST poller and shared subscriptions against real processes."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from tests.fixtures.services import Broker, IngestProcess, make_settings
from tests.integration.conftest import read_bronze, wait_for
from tests.integration.test_ingest import publish, readings
from workbench.client.credentials import auth_headers
from workbench.client.ingest_client import IngestClient
from workbench.core.errors import CatalogError, ConfigError, NotFoundError
from workbench.core.settings import Settings


class FakeApi(BaseHTTPRequestHandler):
    """A loopback HTTP API with ETags: a real server, standing in for a vendor's."""

    records: ClassVar[list[dict]] = []
    hits: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        etag = f'"v{len(self.records)}"'
        self.hits.append(self.headers.get("If-None-Match") or "")
        if self.headers.get("Authorization") != "Bearer s3cret-token-0123456789":
            self.send_response(401)
            self.end_headers()
            return
        if self.headers.get("If-None-Match") == etag:
            self.send_response(304)
            self.end_headers()
            return
        body = json.dumps({"status": "ok", "data": {"items": self.records}}).encode()
        self.send_response(200)
        self.send_header("ETag", etag)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def api() -> Iterator[str]:
    FakeApi.records = [{"id": i, "temperature": 20 + i} for i in range(3)]
    FakeApi.hits = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeApi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/readings"
    server.shutdown()


@pytest.fixture
def client(settings: Settings, ingest: IngestProcess) -> Iterator[IngestClient]:
    c = IngestClient(settings)
    yield c
    c.close()


def test_poller_lands_each_record_once(settings: Settings, client: IngestClient, api: str) -> None:
    config = {
        "url": api,
        "records_path": "data.items",
        "record_key": "id",
        "interval_seconds": 0.2,
        "allow_private": True,
        "auth": {"type": "bearer", "token": "s3cret-token-0123456789"},
    }
    created = client.create("vendor", "rest_poll", config)
    assert created["config"]["auth"]["token"] == "***"  # secrets never echoed
    wait_for(lambda: read_bronze(settings).num_rows == 3, what="first poll")
    wait_for(lambda: sum(1 for h in FakeApi.hits if h) >= 2, what="conditional re-polls")
    FakeApi.records.append({"id": 3, "temperature": 23})  # one new record, three old ones
    wait_for(lambda: read_bronze(settings).num_rows >= 4, what="the new record")
    wait_for(lambda: sum(1 for h in FakeApi.hits if h == '"v4"') >= 2, what="polls after it")
    rows = read_bronze(settings).to_pylist()
    assert sorted(json.loads(r["payload"])["id"] for r in rows) == [0, 1, 2, 3]
    health = client.health("vendor")
    assert health.connected and health.details["last_status"] == 304


def test_poller_refuses_private_targets_unless_allowed(client: IngestClient, api: str) -> None:
    with pytest.raises(ConfigError, match="allow_private"):
        client.create("sneaky", "rest_poll", {"url": api})
    assert "sneaky" not in {s["name"] for s in client.sources()}  # nothing half-created


def test_lifecycle_over_http(settings: Settings, client: IngestClient) -> None:
    with pytest.raises(ConfigError) as info:
        client.create("bad", "mqtt", {"qos": 2, "port": "x"})
    assert len(info.value.fields["problems"]) == 3  # topic missing, qos, port: all at once
    plant = client.create("plant", "mqtt", {"topic": "plant/#"})
    wait_for(lambda: client.health("plant").connected, what="plant subscribed")
    publish(settings, readings(5), topic="plant/line1")
    wait_for(lambda: read_bronze(settings).num_rows >= 5, what="rows of the new source")
    rows = read_bronze(settings).to_pylist()
    assert {r["ingestion_id"] for r in rows} == {plant["ingestion_id"]}
    assert len(rows) == 5

    client.update("plant", {"topic": "other/#"})  # restarts with the new topic
    assert client.health("plant").details["topic"] == "other/#"
    client.stop("plant")
    assert not client.health("plant").running
    assert client.start("plant").running  # start answers with the source's health
    client.delete("plant")
    with pytest.raises(NotFoundError, match="no source named 'plant'"):
        client.health("plant")
    with pytest.raises(CatalogError, match="exists"):
        client.create("mqtt", "mqtt", {"topic": "x"})


def test_push_token(settings: Settings, client: IngestClient) -> None:
    import httpx

    client.create("secure", "rest_push", {"token": "t" * 20})
    url = f"{client.url}/api/push/secure"
    assert httpx.post(url, content=b'{"a": 1}').status_code == 401
    for wrong in (f"Bearer {'t' * 19}", f"Bearer {'t' * 21}", f"bearer {'t' * 20}", "t" * 20):
        denied = httpx.post(url, content=b'{"a": 1}', headers={"Authorization": wrong})
        assert denied.status_code == 401 and denied.json()["code"] == "unauthorized"
    ok = httpx.post(url, content=b'{"a": 1}', headers={"Authorization": f"Bearer {'t' * 20}"})
    assert ok.status_code == 200 and ok.json()["accepted"] == 1
    # A source without a token of its own takes readings from an API token only.
    open_url = f"{client.url}/api/push/http"
    anonymous = httpx.post(open_url, content=b'{"a": 1}')
    assert anonymous.status_code == 401 and anonymous.json()["code"] == "unauthorized"
    admin = httpx.post(open_url, content=b'{"a": 1}', headers=auth_headers(settings))
    assert admin.status_code == 200 and admin.json()["accepted"] == 1


def received(process: IngestProcess) -> int:
    """Messages this ingest process received, from its own /metrics."""
    import httpx

    text = httpx.get(f"{process.url}/metrics", headers=auth_headers(process.settings)).text
    return int(
        sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("ingestor_messages_received_total{")
        )
    )


def test_two_ingest_processes_split_a_shared_subscription(tmp_path: Path) -> None:
    first = make_settings(tmp_path, mqtt={"shared_group": "ingest", "client_id": "ingest-a"})
    second = first.model_copy(deep=True)
    second.mqtt.client_id = "ingest-b"
    second.ingest.port = make_settings(tmp_path / "x").ingest.port
    broker = Broker(first)
    broker.start()
    processes = [IngestProcess(first), IngestProcess(second)]
    try:
        for p in processes:
            p.start()
        publish(first, readings(1000))
        wait_for(lambda: read_bronze(first).num_rows >= 1000, what="1000 rows")
        shares = [received(p) for p in processes]
        for p in processes:
            p.stop()  # flushes
        table = read_bronze(first)
        assert table.num_rows == 1000
        assert len(set(table["message_id"].to_pylist())) == 1000  # exactly once between them
        assert sum(shares) == 1000 and min(shares) > 0, shares  # both did part of the work
    finally:
        for p in processes:
            p.stop()
        broker.stop()
