"""Simulators against a real Mosquitto: shapes on the wire, sequence numbers across restarts,
the on-disk edge buffer while the broker is down, replay order, and the REST API simulator
over real HTTP (and through the CLI)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.fixtures.services import ROOT, Broker, child_env, free_port
from tests.integration.conftest import wait_for
from workbench.core.settings import Settings
from workbench.simulators.launcher import read_edge_stats, run_simulator, with_overrides
from workbench.simulators.replay import read_recording, replay_topic
from workbench.simulators.rest_api import build_rest_api_server


class Subscriber:
    """A QoS 1 subscriber with a persistent session: it misses nothing while it is away."""

    def __init__(self, settings: Settings, topic: str = "sensors/#") -> None:
        self.settings, self.topic = settings, topic
        self.messages: list[tuple[str, dict[str, Any]]] = []
        self._connected = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id="test-subscriber", clean_session=False
        )
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message

    def _on_connect(self, client: mqtt.Client, *_: Any) -> None:
        client.subscribe(self.topic, qos=1)
        self._connected.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        self.messages.append((message.topic, json.loads(message.payload)))

    def connect(self) -> None:
        self._connected.clear()
        self.client.connect(self.settings.mqtt.host, self.settings.mqtt.port)
        self.client.loop_start()
        wait_for(self._connected.is_set, 10, "subscriber connected")

    def disconnect(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def sim_settings(settings: Settings) -> Settings:
    return with_overrides(
        settings,
        {
            "sensors": 3,
            "interval_seconds": 0.05,
            "sequence_numbers": True,
            "reconnect_max_delay_seconds": 1,
            "drain_timeout_seconds": 10,
        },
    )


@pytest.fixture
def subscriber(sim_settings: Settings, broker: Broker) -> Iterator[Subscriber]:
    sub = Subscriber(sim_settings)
    sub.connect()
    yield sub
    sub.disconnect()


def by_sensor(messages: list[tuple[str, dict[str, Any]]]) -> dict[str, list[int]]:
    seqs: dict[str, list[int]] = {}
    for _, payload in messages:
        seqs.setdefault(payload["sensor_id"], []).append(payload["seq"])
    return seqs


def test_every_kind_publishes_its_shape_with_stable_ids_and_continuing_sequences(
    sim_settings: Settings, subscriber: Subscriber
) -> None:
    fields = {
        "air-quality": {"carbon_monoxide_ppm", "nitrogen_dioxide_ppm", "location"},
        "smart-bin": {"fill_level_percent", "status", "location"},
        "traffic": {"road_segment", "vehicle_count", "average_speed_kph", "congestion"},
    }
    for kind in fields:
        assert run_simulator(sim_settings, kind=kind, count=2) == 6
        assert run_simulator(sim_settings, kind=kind, count=2) == 6  # a restart
    wait_for(lambda: len(subscriber.messages) == 36, 20, "36 readings")
    for kind, keys in fields.items():
        got = [(t, p) for t, p in subscriber.messages if t.split("/")[1] == kind]
        assert all(keys | {"sensor_id", "timestamp", "seq"} <= p.keys() for _, p in got)
        assert all(t == f"sensors/{kind}/{p['sensor_id']}" for t, p in got)
        prefix = {"air-quality": "air", "smart-bin": "bin", "traffic": "traffic"}[kind]
        assert by_sensor(got) == {f"{prefix}-00{n}": [1, 2, 3, 4] for n in (1, 2, 3)}


def test_edge_buffer_holds_messages_while_the_broker_is_down_and_replays_them_in_order(
    sim_settings: Settings, broker: Broker, subscriber: Subscriber
) -> None:
    subscriber.disconnect()
    broker.stop()
    stop = threading.Event()
    result: list[int] = []
    sim = threading.Thread(
        target=lambda: result.append(run_simulator(sim_settings, kind="traffic", stop=stop))
    )
    sim.start()
    try:
        wait_for(lambda: read_edge_stats(sim_settings, "traffic").pending >= 60, 20, "60 buffered")
        broker.start()
        subscriber.connect()
        wait_for(lambda: len(subscriber.messages) >= 90, 30, "buffered and new readings")
    finally:
        stop.set()
        sim.join(30)
    stats = read_edge_stats(sim_settings, "traffic")
    assert stats.pending == 0 and stats.dropped_total == 0
    wait_for(lambda: len(subscriber.messages) == result[0], 20, "every generated reading")
    seqs = by_sensor(subscriber.messages)
    assert seqs == {s: list(range(1, result[0] // 3 + 1)) for s in seqs}
    assert len(seqs) == 3


def test_a_full_buffer_drops_the_oldest_reports_it_and_survives_a_restart(
    sim_settings: Settings, broker: Broker, subscriber: Subscriber
) -> None:
    subscriber.disconnect()
    broker.stop()
    small = with_overrides(
        sim_settings, {"edge_buffer_max_messages": 9, "drain_timeout_seconds": 0.2}
    )
    assert run_simulator(small, kind="smart-bin", count=5) == 15
    stats = read_edge_stats(small, "smart-bin")
    assert (stats.pending, stats.dropped_total) == (9, 6)
    broker.start()
    subscriber.connect()
    run_simulator(small, kind="smart-bin", count=0)  # a restart: drains what is on disk
    wait_for(lambda: len(subscriber.messages) == 9, 20, "the 9 newest readings")
    assert by_sensor(subscriber.messages) == {f"bin-00{n}": [3, 4, 5] for n in (1, 2, 3)}
    assert read_edge_stats(small, "smart-bin").pending == 0


def test_replay_publishes_the_recording_in_original_order(
    sim_settings: Settings, subscriber: Subscriber
) -> None:
    records = read_recording()[:120]
    fast = with_overrides(
        sim_settings,
        {"replay_speed": 0, "replay_shift_timestamps": False, "sequence_numbers": False},
    )
    assert run_simulator(fast, kind="replay", count=120) == 120
    wait_for(lambda: len(subscriber.messages) == 120, 20, "120 replayed messages")
    assert subscriber.messages == [(replay_topic(r.topic, "sensors"), r.payload) for r in records]


def test_replay_keeps_the_recorded_timing_scaled_and_shifts_timestamps(
    sim_settings: Settings, subscriber: Subscriber
) -> None:
    records = read_recording()[:40]
    span = records[-1].offset_seconds
    timed = with_overrides(sim_settings, {"replay_speed": 4, "sequence_numbers": False})
    started = time.monotonic()
    run_simulator(timed, kind="replay", count=40)
    assert time.monotonic() - started >= span / 4
    wait_for(lambda: len(subscriber.messages) == 40, 20, "40 replayed messages")
    first = subscriber.messages[0][1]
    assert first.get("timestamp", first.get("ts")) != records[0].payload.get(
        "timestamp", records[0].payload.get("ts")
    )
    assert [t for t, _ in subscriber.messages] == [
        replay_topic(r.topic, "sensors") for r in records
    ]


def test_rest_api_simulator_over_http_serves_etags_and_requires_its_token(
    settings: Settings,
) -> None:
    port = free_port()
    secured = with_overrides(settings, {"rest_token": "t0ken", "interval_seconds": 0.2})
    server = build_rest_api_server(secured, port)
    thread = threading.Thread(target=server.run)
    thread.start()
    try:
        wait_for(lambda: server.started, 10, "REST API simulator up")
        url = f"http://127.0.0.1:{port}/api/parking"
        auth = {"Authorization": "Bearer t0ken"}
        assert httpx.get(url).status_code == 401
        first = httpx.get(url, headers=auth)
        body = first.json()
        assert body["status"] == "ok" and body["count"] == len(body["data"]) >= 5
        etag = first.headers["etag"]
        assert httpx.get(url, headers={**auth, "If-None-Match": etag}).status_code in (200, 304)
        wait_for(
            lambda: httpx.get(url, headers={**auth, "If-None-Match": etag}).status_code == 200,
            10,
            "new readings change the ETag",
        )
    finally:
        server.should_exit = True
        thread.join(10)


def test_cli_runs_the_rest_api_simulator_on_the_given_port(settings: Settings) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "workbench", "simulate", "--kind", "rest-api", "--port", str(port)],
        env=child_env(settings),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def answers() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/api/energy").status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(answers, 30, "the CLI's REST API simulator")
    finally:
        proc.terminate()
        proc.wait(10)
    assert Path(settings.home).exists()
