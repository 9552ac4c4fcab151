"""MQTT and REST into bronze through a real Mosquitto and a real ingest process."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tests.fixtures.services import IngestProcess
from tests.integration.conftest import read_bronze, wait_for
from workbench.client.credentials import auth_headers
from workbench.core.settings import Settings


def publish(settings: Settings, payloads: list[bytes], topic: str = "sensors/t/1") -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="test-publisher")
    client.connect(settings.mqtt.host, settings.mqtt.port)
    client.loop_start()
    infos = [client.publish(topic, p, qos=1) for p in payloads]
    for info in infos:
        info.wait_for_publish(timeout=30)
    client.disconnect()
    client.loop_stop()


def readings(n: int, offset: int = 0) -> list[bytes]:
    return [
        json.dumps(
            {
                "sensor_id": f"s{i % 4}",
                "temperature": 20 + i % 7,
                "timestamp": f"2026-11-26T10:{(i // 60) % 60:02d}:{i % 60:02d}Z",
            }
        ).encode()
        for i in range(offset, offset + n)
    ]


def test_every_published_reading_lands_in_bronze_once(
    settings: Settings, ingest: IngestProcess
) -> None:
    sent = readings(500)
    publish(settings, sent)
    wait_for(lambda: read_bronze(settings).num_rows >= 500, what="500 bronze rows")
    table = read_bronze(settings)
    assert table.num_rows == 500
    assert sorted(table["payload"].to_pylist()) == sorted(p.decode() for p in sent)
    assert len(set(table["message_id"].to_pylist())) == 500
    # Partitioned by the hour they arrived; the event time is a column.
    now = datetime.now(UTC)
    assert set(table["hour"].to_pylist()) <= {now.hour, (now - timedelta(hours=1)).hour}
    assert {t.hour for t in table["event_time"].to_pylist()} == {10}
    auth = auth_headers(settings)
    assert httpx.get(f"{ingest.url}/health").json() == {"status": "ok"}
    health = httpx.get(f"{ingest.url}/api/health", headers=auth).json()
    assert health["status"] == "ok" and health["buffer"]["rows"] == 0
    ready = httpx.get(f"{ingest.url}/api/ready", headers=auth).json()
    assert ready == {"ready": True, "waiting_for": []}
    [loss] = httpx.get(f"{ingest.url}/api/loss", headers=auth).json()
    assert (loss["received"], loss["written"], loss["duplicates"], loss["gaps"]) == (500, 500, 0, 0)


def test_messages_published_while_ingest_is_down_arrive_after_restart(
    settings: Settings, ingest: IngestProcess
) -> None:
    publish(settings, readings(10))
    wait_for(lambda: read_bronze(settings).num_rows == 10, what="first 10 rows")
    ingest.stop()
    publish(settings, readings(20, offset=10))  # the broker keeps them for our persistent session
    ingest.start()
    wait_for(lambda: read_bronze(settings).num_rows >= 30, what="30 rows after restart")
    assert read_bronze(settings).num_rows == 30


def test_rest_push_answers_once_records_are_durable(
    settings: Settings, ingest: IngestProcess
) -> None:
    body = json.dumps(
        [{"sensor_id": "r1", "temperature": 1.5}, {"sensor_id": "r2", "temperature": 2}]
    )
    auth = auth_headers(settings)
    response = httpx.post(
        f"{ingest.url}/api/push/http",
        content=body,
        headers={**auth, "content-type": "application/json"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 2
    assert read_bronze(settings).num_rows == 2  # durable before the answer, no waiting
    ndjson = b'{"sensor_id": "r3"}\n{"sensor_id": "r4"}\n'
    response = httpx.post(
        f"{ingest.url}/api/push/http",
        content=ndjson,
        headers={**auth, "content-type": "application/x-ndjson"},
    )
    assert response.json()["accepted"] == 2
    assert read_bronze(settings).num_rows == 4
    missing = httpx.post(f"{ingest.url}/api/push/nope", content=b"{}", headers=auth)
    assert missing.status_code == 404 and "known: http" in missing.json()["message"]
    big = httpx.post(
        f"{ingest.url}/api/push/http",
        content=b"x" * (settings.ingest.max_body_bytes + 1),
        headers=auth,
    )
    assert big.status_code == 413


def test_bad_payloads_are_accounted_for_and_never_crash(
    settings: Settings, ingest: IngestProcess
) -> None:
    bad = [
        b"not json at all",
        b'[{"sensor_id": "a1", "temperature": 1}, {"sensor_id": "a2"}, 5]',
        b"\xff\xfe\x00",
        b"",
        b'{"timestamp": "soon", "temperature": 3}',
    ]
    publish(settings, bad)
    wait_for(lambda: read_bronze(settings).num_rows >= 7, what="7 rows from 5 bad messages")
    rows = read_bronze(settings).to_pylist()
    assert len(rows) == 7
    kinds = sorted(r["payload_kind"] for r in rows)
    assert kinds == ["invalid_utf8", "non_json", "non_json", "object", "object", "object", "scalar"]
    assert all(r["error"] for r in rows if r["payload_kind"] != "object")
    assert [r["event_time_raw"] for r in rows if r["event_time_raw"]] == ["soon"]
    auth = auth_headers(settings)
    assert httpx.get(f"{ingest.url}/health").json()["status"] == "ok"
    metrics = httpx.get(f"{ingest.url}/metrics", headers=auth).text
    assert 'error_type="non_json"' in metrics and 'error_type="unparsable_time"' in metrics
    wait_for(
        lambda: sum(
            d["record_count"]
            for d in httpx.get(f"{ingest.url}/api/metadata/datasets", headers=auth).json()
        )
        == 7,
        what="metadata counts",
        timeout=settings.ingest.metadata_batch_seconds + 10,
    )
    [dataset] = httpx.get(f"{ingest.url}/api/metadata/datasets", headers=auth).json()
    types = {f["path"]: f["type"] for f in dataset["fields"]}
    assert types == {"sensor_id": "string", "temperature": "integer", "timestamp": "string"}
