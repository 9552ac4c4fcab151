"""Simulators without a broker: payload functions, the edge buffer on disk, replay parsing and
the REST API app."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from workbench.core.errors import ConfigError
from workbench.core.settings import Settings
from workbench.simulators.edge_buffer import EdgeBuffer, OutgoingMessage
from workbench.simulators.kinds import build_mqtt_kinds, build_rest_kinds, sensor_ids
from workbench.simulators.launcher import known_kinds, run_simulator, with_overrides
from workbench.simulators.replay import read_recording, replay_topic, shift_timestamps
from workbench.simulators.rest_api import build_rest_api
from workbench.simulators.smart_bin import fill_cycle_seconds

NOON = datetime(2025, 3, 4, 12, 0, tzinfo=UTC)


def readings(kind: str, *, rounds: int = 50, seed: int = 1) -> list[dict[str, object]]:
    sensor_kind = build_rest_kinds().get(kind) if kind in ("parking", "energy") else None
    sensor_kind = sensor_kind or build_mqtt_kinds().get(kind)
    rng = random.Random(seed)
    ids = sensor_ids(4, sensor_kind.id_prefix)
    return [
        sensor_kind.make_reading(i, s, NOON + timedelta(minutes=17 * r), rng)
        for r in range(rounds)
        for i, s in enumerate(ids)
    ]


def test_every_kind_is_listed_and_unknown_kinds_are_refused_with_the_known_ones() -> None:
    assert known_kinds() == [
        "temperature", "air-quality", "smart-bin", "traffic", "replay", "rest-api"
    ]  # fmt: skip
    with pytest.raises(ConfigError, match="known: temperature, air-quality"):
        run_simulator(Settings(), kind="humidity")


def test_sensor_ids_are_stable_and_kinds_accept_either_spelling() -> None:
    assert sensor_ids(3, "air") == ["air-001", "air-002", "air-003"]
    assert sensor_ids(3, "air") == sensor_ids(3, "air")
    assert build_mqtt_kinds().get("air_quality").name == "air-quality"


def test_payloads_are_deterministic_for_a_seed() -> None:
    for kind in ("temperature", "air-quality", "smart-bin", "traffic", "parking", "energy"):
        assert readings(kind, seed=7) == readings(kind, seed=7)
        assert readings(kind, seed=7) != readings(kind, seed=8) or kind == "smart-bin"


def test_air_quality_shape_and_ranges() -> None:
    for r in readings("air-quality"):
        assert {"sensor_id", "timestamp", "location"} <= r.keys()
        assert 0.1 <= r["carbon_monoxide_ppm"] <= 9  # type: ignore[operator]
        assert 0.005 <= r["nitrogen_dioxide_ppm"] <= 0.25  # type: ignore[operator]
        assert 2 <= r["particulate_matter_2_5_ug_m3"] <= 120  # type: ignore[operator]


def test_traffic_shape_ranges_and_derived_congestion() -> None:
    rows = readings("traffic")
    for r in rows:
        assert isinstance(r["road_segment"], str) and r["sensor_id"] and r["timestamp"]
        assert 5 <= r["vehicle_count"] <= 200  # type: ignore[operator]
        assert 10 <= r["average_speed_kph"] <= 60  # type: ignore[operator]
        assert r["congestion"] in ("low", "moderate", "high")
    assert {r["congestion"] for r in rows} >= {"low", "high"}


def test_smart_bin_fills_up_needs_collection_above_85_then_is_emptied() -> None:
    kind = build_mqtt_kinds().get("smart-bin")
    rng = random.Random(0)
    cycle = fill_cycle_seconds(0)
    levels = []
    for second in range(0, 2 * cycle, 10):
        r = kind.make_reading(0, "bin-001", NOON + timedelta(seconds=second), rng)
        assert 0 <= r["fill_level_percent"] <= 100
        assert r["status"] == ("needs_collection" if r["fill_level_percent"] > 85 else "ok")
        assert r["location"]["name"]
        levels.append(r["fill_level_percent"])
    rises = sum(b > a for a, b in pairwise(levels))
    emptied = sum(b < a - 50 for a, b in pairwise(levels))
    assert rises > len(levels) * 0.7 and emptied >= 1


def test_temperature_and_rest_only_kinds_have_their_fields() -> None:
    for r in readings("temperature"):
        assert ("sensor_id" in r and "timestamp" in r) or ("deviceId" in r and "ts" in r)
    for r in readings("parking"):
        assert r["occupied_spaces"] + r["available_spaces"] == r["total_spaces"]  # type: ignore[operator]
    for r in readings("energy"):
        assert r["power_kw"] > 0 and r["energy_kwh_today"] >= 0  # type: ignore[operator]


def message(n: int, sensor: str = "s-1") -> OutgoingMessage:
    return OutgoingMessage(sensor, f"t/{sensor}", {"n": n})


def test_edge_buffer_keeps_order_deletes_only_acked_and_survives_reopen(tmp_path: Path) -> None:
    buffer = EdgeBuffer(tmp_path)
    buffer.append([message(n) for n in range(5)])
    taken = buffer.take(3)
    assert [m.payload for m in taken] == [b'{"n":0}', b'{"n":1}', b'{"n":2}']
    buffer.ack([taken[1].id])
    buffer.close()
    reopened = EdgeBuffer(tmp_path)
    assert reopened.pending == 4
    assert [m.payload for m in reopened.take(10)] == [b'{"n":%d}' % n for n in (0, 2, 3, 4)]
    reopened.close()


def test_edge_buffer_is_exclusive_to_one_simulator(tmp_path: Path) -> None:
    buffer = EdgeBuffer(tmp_path)
    with pytest.raises(ConfigError, match="another simulator"):
        EdgeBuffer(tmp_path)
    buffer.close()


def test_full_buffer_drops_oldest_not_in_flight_and_counts_across_restarts(tmp_path: Path) -> None:
    buffer = EdgeBuffer(tmp_path, max_messages=4)
    buffer.append([message(n) for n in range(3)])
    in_flight = buffer.take(1)
    assert buffer.append([message(n) for n in range(3, 6)]) == 2
    assert buffer.stats().dropped_total == 2
    assert [m.payload for m in buffer.take(10)] == [b'{"n":3}', b'{"n":4}', b'{"n":5}']
    buffer.ack([in_flight[0].id])
    buffer.close()
    reopened = EdgeBuffer(tmp_path, max_messages=4)
    assert reopened.append([message(n) for n in range(6, 12)]) == 2 + 3
    assert reopened.stats().dropped_total == 7
    assert [m.payload for m in reopened.take(10)] == [b'{"n":%d}' % n for n in range(8, 12)]
    reopened.close()


def test_full_buffer_can_drop_newest_instead(tmp_path: Path) -> None:
    buffer = EdgeBuffer(tmp_path, max_messages=3, drop="newest")
    assert buffer.append([message(n) for n in range(5)]) == 2
    assert [m.payload for m in buffer.take(10)] == [b'{"n":0}', b'{"n":1}', b'{"n":2}']
    buffer.close()


def test_sequence_numbers_start_at_one_per_sensor_and_continue_after_reopen(
    tmp_path: Path,
) -> None:
    buffer = EdgeBuffer(tmp_path)
    buffer.append([message(0, "a"), message(1, "b"), message(2, "a")], number=True)
    buffer.close()
    buffer = EdgeBuffer(tmp_path)
    buffer.append([message(3, "a")], number=True)
    seqs = [m.payload for m in buffer.take(10)]
    assert seqs == [
        b'{"n":0,"seq":1}', b'{"n":1,"seq":1}', b'{"n":2,"seq":2}', b'{"n":3,"seq":3}'
    ]  # fmt: skip
    assert buffer.stats().sequences == {"a": 3, "b": 1}
    buffer.close()


def test_packaged_recording_is_ordered_and_timestamps_shift(tmp_path: Path) -> None:
    records = read_recording()
    assert len(records) >= 300
    offsets = [r.offset_seconds for r in records]
    assert offsets == sorted(offsets)
    assert {r.topic.split("/")[1] for r in records} == {
        "temperature", "air-quality", "smart-bin", "traffic"
    }  # fmt: skip
    shifted = shift_timestamps(
        {"timestamp": "2025-01-01T00:00:00Z", "ts": 1_000, "x": 1}, timedelta(hours=1)
    )
    assert shifted == {"timestamp": "2025-01-01T01:00:00Z", "ts": 3_601_000, "x": 1}
    assert replay_topic("sensors/traffic/traffic-001", "demo") == "demo/traffic/traffic-001"
    bad = tmp_path / "bad.ndjson"
    bad.write_text('{"topic": "t"}\n')
    with pytest.raises(ConfigError, match="line 1"):
        read_recording(bad)


def test_options_are_validated_as_settings() -> None:
    settings = with_overrides(Settings(), {"replay_speed": 3, "rest_port": None})
    assert settings.simulator.replay_speed == 3
    with pytest.raises(ConfigError, match="replay_speed"):
        with_overrides(Settings(), {"replay_speed": -1})


def rest_client(settings: Settings, **simulator: object) -> TestClient:
    changed = with_overrides(settings, simulator)
    return TestClient(build_rest_api(changed))


def test_rest_api_wraps_readings_and_honours_limit(settings: Settings) -> None:
    client = rest_client(settings, sensors=3)
    for kind in ("temperature", "air-quality", "traffic", "parking", "energy"):
        body = client.get(f"/api/{kind}").json()
        assert body["status"] == "ok" and body["timestamp"].endswith("Z")
        assert body["count"] == len(body["data"]) == 3
        prefix = build_rest_kinds().get(kind).id_prefix
        ids = {r.get("sensor_id") or r.get("deviceId") for r in body["data"]}
        assert ids == {f"{prefix}-00{n}" for n in (1, 2, 3)}
    assert client.get("/api/traffic", params={"limit": 2}).json()["count"] == 2
    assert client.get("/api/nope").status_code == 404
    assert client.get("/api/traffic", params={"limit": 0}).status_code == 422


def test_rest_api_conditional_requests_give_304_until_new_data(settings: Settings) -> None:
    client = rest_client(settings, interval_seconds=3600)
    first = client.get("/api/energy")
    etag, modified = first.headers["etag"], first.headers["last-modified"]
    assert client.get("/api/energy", headers={"If-None-Match": etag}).status_code == 304
    assert client.get("/api/energy", headers={"If-Modified-Since": modified}).status_code == 304
    assert client.get("/api/energy", headers={"If-None-Match": '"other"'}).status_code == 200
    other_query = client.get("/api/energy", params={"limit": 1}, headers={"If-None-Match": etag})
    assert other_query.status_code == 200


def test_rest_api_requires_the_bearer_token_when_configured(settings: Settings) -> None:
    client = rest_client(settings, rest_token="s3cret")
    denied = client.get("/api/traffic")
    assert denied.status_code == 401 and denied.headers["www-authenticate"] == "Bearer"
    wrong = client.get("/api/traffic", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    ok = client.get("/api/traffic", headers={"Authorization": "Bearer s3cret"})
    assert ok.status_code == 200
    health = client.get("/health")  # open without the token: a probe needs no secret
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
