"""Load for fault tests: a steady QoS 1 publisher that survives broker restarts."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tests.integration.conftest import read_bronze, wait_for
from workbench.core.settings import Settings


class SteadyPublisher:
    """Publishes ``{"seq": n, ...}`` readings with QoS 1 at ``rate`` per second.

    Each reading is stamped now, or, with ``history_start``, a replay of old hourly readings:
    reading ``n`` is stamped ``n`` hours after it.

    A persistent session (``clean_session=False``) and paho's unbounded outgoing queue mean a
    message published while the broker is away is sent, and an unacknowledged one resent, once
    it is back: what a well-behaved sensor gateway does.
    """

    def __init__(
        self,
        settings: Settings,
        rate: int,
        topic: str,
        client_id: str,
        *,
        history_start: datetime | None = None,
    ) -> None:
        self.rate, self.topic = rate, topic
        self.history_start = history_start
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False
        )
        self.client.max_inflight_messages_set(200)
        self.client.reconnect_delay_set(0.2, 2)
        self.client.on_publish = self._on_publish
        self.client.connect(settings.mqtt.host, settings.mqtt.port)
        self.sent = 0
        self.acked = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="publisher", daemon=True)

    def _on_publish(self, *_args: object) -> None:
        with self._lock:
            self.acked += 1

    def start(self) -> None:
        self.client.loop_start()
        self._thread.start()

    def wait_sent(self, count: int, timeout: float = 60) -> None:
        """Until ``count`` messages were handed to paho."""
        wait_for(lambda: self.sent >= count, timeout=timeout, what=f"{count} publishes")

    def _run(self) -> None:
        start = time.monotonic()
        while not self._stop.is_set():
            delay = start + self.sent / self.rate - time.monotonic()
            if delay > 0 and self._stop.wait(delay):  # pacing, not waiting for a result
                return
            reading = {
                "seq": self.sent,
                "sensor_id": "load-1",  # one sensor: seq is its gap-free sequence
                "temperature": 20 + self.sent % 7,
                "timestamp": self._stamp(self.sent),
            }
            self.client.publish(self.topic, json.dumps(reading), qos=1)
            self.sent += 1

    def _stamp(self, seq: int) -> str:
        if self.history_start is None:
            return datetime.now(UTC).isoformat()
        return (self.history_start + timedelta(hours=seq)).isoformat()

    def stop(self, ack_timeout: float = 120) -> None:
        """Stop publishing; wait until the broker acknowledged every message."""
        self._stop.set()
        self._thread.join(timeout=10)
        wait_for(
            lambda: self.acked >= self.sent,
            timeout=ack_timeout,
            what="broker acks of every publish",
        )
        self.client.disconnect()
        self.client.loop_stop()


def seqs(settings: Settings) -> set[int]:
    """The distinct ``seq`` numbers in the local bronze lake."""
    return {json.loads(p)["seq"] for p in read_bronze(settings)["payload"].to_pylist()}
