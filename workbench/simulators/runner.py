"""Publishes simulated readings to the broker with QoS 1 until stopped."""

from __future__ import annotations

import json
import logging
import random
import signal
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from workbench.core.clock import utcnow
from workbench.core.errors import ConfigError
from workbench.core.settings import Settings
from workbench.simulators.temperature import sensor_ids, temperature_reading

log = logging.getLogger(__name__)

KINDS = {"temperature": temperature_reading}


def run_simulator(
    settings: Settings, *, kind: str = "temperature", count: int | None = None
) -> int:
    """Publish readings of every simulated sensor each interval; returns messages published.

    Args:
        settings: broker address and simulator settings.
        kind: the sensor kind (see ``KINDS``).
        count: stop after this many readings per sensor (None: until SIGINT/SIGTERM).
    """
    if kind not in KINDS:
        raise ConfigError(f"unknown simulator {kind!r}; known: {', '.join(KINDS)}")
    make_reading = KINDS[kind]
    sim = settings.simulator
    ids = sensor_ids(sim.sensors, prefix=kind[:4])
    rng = random.Random(42)
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stop.set())

    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"wb-sim-{kind}", clean_session=False
    )
    client.reconnect_delay_set(1, 30)
    client.connect_async(settings.mqtt.host, settings.mqtt.port, keepalive=30)
    client.loop_start()
    published = 0
    rounds = 0
    log.info(
        "simulator started kind=%s sensors=%s broker=%s:%s",
        kind,
        len(ids),
        settings.mqtt.host,
        settings.mqtt.port,
    )
    try:
        while not stop.is_set() and (count is None or rounds < count):
            now = utcnow()
            for index, sensor in enumerate(ids):
                payload = json.dumps(make_reading(index, sensor, now, rng))
                # paho queues while disconnected and sends on reconnect (QoS 1).
                client.publish(f"{sim.topic_prefix}/{kind}/{sensor}", payload, qos=1)
                published += 1
            rounds += 1
            stop.wait(sim.interval_seconds)
    except KeyboardInterrupt:
        pass
    finally:
        deadline = time.monotonic() + 10
        while client.want_write() and time.monotonic() < deadline:
            time.sleep(0.05)
        client.disconnect()
        client.loop_stop()
        log.info("simulator stopped published=%s", published)
    return published
