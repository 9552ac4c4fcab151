"""The walking skeleton end to end: MQTT → bronze → silver → gold → a computation over Connect.

Real Mosquitto, the real ingest process, the real engine process (Spark + Delta + Spark Connect).
Silver and gold are read back with the independent ``deltalake`` reader.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator

import pytest
from deltalake import DeltaTable

from tests.fixtures.engine import start_engine, stop_engine
from tests.fixtures.services import IngestProcess
from tests.integration.conftest import read_bronze, wait_for
from tests.integration.test_ingest import publish
from workbench.core.settings import Settings

pytestmark = pytest.mark.spark

SENSORS = ["e2e-1", "e2e-2", "e2e-3"]


def mixed_spelling_readings() -> tuple[list[bytes], dict[tuple[str, str], float]]:
    """60 readings over two minutes in three spellings; expected per-minute averages."""
    payloads, values = [], defaultdict(list)
    for i in range(60):
        sensor = SENSORS[i % 3]
        minute, second = divmod(i, 30)
        value = round(10 + i * 0.5, 2)
        ts = f"2026-11-26T10:0{minute}:{second:02d}Z"
        shape = i % 3
        if shape == 0:
            body = {"sensor_id": sensor, "temperature": value, "timestamp": ts}
        elif shape == 1:
            body = {"deviceId": sensor, "Temp": value, "time": ts}
        else:
            body = {"SENSOR": sensor, "temp_c": value, "humidity": 40, "ts": ts}
        payloads.append(json.dumps(body).encode())
        values[(sensor, f"10:0{minute}")].append(value)
    return payloads, {k: sum(v) / len(v) for k, v in values.items()}


@pytest.fixture
def engine(settings: Settings, ingest: IngestProcess) -> Iterator[None]:
    proc = start_engine(settings)
    yield
    stop_engine(proc)


def test_readings_travel_from_mqtt_to_gold(
    settings: Settings, ingest: IngestProcess, engine: None
) -> None:
    payloads, expected = mixed_spelling_readings()
    publish(settings, payloads, topic="sensors/temperature/e2e")
    wait_for(lambda: read_bronze(settings).num_rows >= 60, what="60 bronze rows")
    assert read_bronze(settings).num_rows == 60

    def silver_rows() -> list[dict]:
        try:
            return DeltaTable(settings.lake.silver_readings).to_pyarrow_table().to_pylist()
        except Exception:  # noqa: BLE001 - no first commit yet
            return []

    wait_for(lambda: len(silver_rows()) >= 60, timeout=120, what="60 silver rows")
    silver = silver_rows()
    assert len(silver) == 60
    assert len({r["message_id"] for r in silver}) == 60
    assert {r["sensor_id"] for r in silver} == set(SENSORS)
    for row in silver:
        fields = dict(row["fields"])
        assert "temperature" in fields and "sensorId" in fields  # canonical names applied
        assert not {"Temp", "temp_c", "deviceId", "SENSOR"} & set(fields)
        assert row["event_time"] is not None

    gold_path = settings.lake.gold("sensor_averages")

    def gold() -> dict[tuple[str, str], tuple[float, int]]:
        rows = DeltaTable(gold_path).to_pyarrow_table().to_pylist()
        return {
            (r["sensor_id"], r["window_start"].strftime("%H:%M")): (r["avg_value"], r["count"])
            for r in rows
            if r["field"] == "temperature"
        }

    wait_for(
        lambda: sum(c for _, c in gold().values()) == 60,
        timeout=120,
        what="gold windows covering all 60 readings",
    )
    got = gold()
    assert set(got) == set(expected)
    for key, average in expected.items():
        assert got[key][0] == pytest.approx(average), key
