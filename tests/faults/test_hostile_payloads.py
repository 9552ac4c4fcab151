"""10,000 hostile payloads: no crash, each in bronze with a reason, catalog counts exact."""

from __future__ import annotations

import json
import random
from collections import Counter

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.fixtures.services import IngestProcess
from tests.integration.conftest import read_bronze, wait_for
from workbench.client.credentials import auth_headers
from workbench.core.settings import Settings

pytestmark = pytest.mark.fault

TOTAL = 10_000


def nested(depth: int) -> dict:
    value: dict = {"leaf": 1}
    for level in range(depth):
        value = {f"l{level}": value}
    return value


def hostile(i: int, rng: random.Random) -> tuple[bytes, int]:
    """Payload ``i`` and how many bronze rows it must become."""
    kind = i % 10
    if kind == 0:
        return b"\x00\xff not json at all " + bytes([rng.randrange(256)]), 1
    if kind == 1:
        n = rng.randrange(0, 5)
        items = [{"sensor_id": f"a{j}", "v": j} for j in range(n)] + ([7] if i % 20 == 1 else [])
        return json.dumps(items).encode(), max(1, len(items))
    if kind == 2:
        return json.dumps(nested(50)).encode(), 1
    if kind == 3 and i % 500 == 3:  # 20 bodies of 1 MB
        return json.dumps({"sensor_id": "big", "blob": "x" * 1_000_000}).encode(), 1
    if kind == 4:
        return json.dumps(
            {"": 1, "ключ": "значение", "😀": [1, 2], "a.b": {"c": None}, "sensor id": i}
        ).encode(), 1
    if kind == 5:  # one field flips type between number, string, object, bool, null
        flip = [i, str(i), {"x": i}, True, None][(i // 10) % 5]
        return json.dumps({"sensor_id": "flip", "value": flip}).encode(), 1
    if kind == 6:
        return rng.choice([b"", b"null", b"42", b'"str"', b"[]", b"{", b"\xc3\x28"]), 1
    if kind == 7:
        return json.dumps(
            {
                "sensor_id": "t",
                "timestamp": rng.choice(["yesterday", "", "2026-13-45T99:99:99", -1, 1e300, True]),
            }
        ).encode(), 1
    return json.dumps({"sensor_id": f"ok-{i % 7}", "temperature": i % 40}).encode(), 1


def test_hostile_payloads_are_all_accounted_for(settings: Settings, ingest: IngestProcess) -> None:
    rng = random.Random(5)
    payloads = [hostile(i, rng) for i in range(TOTAL)]
    expected_rows = sum(rows for _, rows in payloads)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="r5-pub")
    client.max_inflight_messages_set(500)
    client.connect(settings.mqtt.host, settings.mqtt.port)
    client.loop_start()
    infos = [
        client.publish(f"sensors/r5/{i % 3}", body, qos=1) for i, (body, _) in enumerate(payloads)
    ]
    for info in infos:
        info.wait_for_publish(timeout=120)
    client.disconnect()
    client.loop_stop()

    wait_for(
        lambda: read_bronze(settings).num_rows >= expected_rows,
        timeout=180,
        what=f"{expected_rows} bronze rows",
    )
    table = read_bronze(settings)
    assert table.num_rows == expected_rows
    kinds = Counter(table["payload_kind"].to_pylist())
    rows = table.select(["payload_kind", "error"]).to_pylist()
    assert all(r["error"] for r in rows if r["payload_kind"] != "object")  # a reason each
    print(f"hostile payloads: messages={TOTAL} rows={table.num_rows} kinds={dict(kinds)}")

    auth = auth_headers(settings)
    health = httpx.get(f"{ingest.url}/health").json()
    assert health["status"] == "ok" and ingest.proc is not None and ingest.proc.poll() is None
    wait_for(
        lambda: sum(
            d["record_count"]
            for d in httpx.get(f"{ingest.url}/api/metadata/datasets", headers=auth).json()
        )
        == expected_rows,
        timeout=60,
        what="catalog counts",
    )
    [dataset] = httpx.get(f"{ingest.url}/api/metadata/datasets", headers=auth).json()
    types = {f["path"]: f["type"] for f in dataset["fields"]}
    assert types["value"] == "string"  # number/string/object/bool flips widened, never crashed
    assert "l49.l48.l47" in "".join(types)  # 50 levels deep became a dot path
