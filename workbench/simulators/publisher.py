"""Drains an edge buffer to the broker with QoS 1, in order, deleting only after PUBACK.

The ordering rules: messages are handed to paho in buffer order, at most ``inflight`` at a time,
and only while connected. After a reconnect paho itself resends what was in flight (persistent
session); until those are acknowledged nothing new is handed over, because paho resends them only
after the ``on_connect`` callback and a new message could otherwise overtake them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from workbench.core.settings import Settings
from workbench.simulators.edge_buffer import EdgeBuffer, OutgoingMessage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SimulatorReport:
    """What one run did.

    Attributes:
        generated: messages created (readings or replayed records).
        acknowledged: messages the broker acknowledged (includes ones buffered by earlier runs).
        dropped: messages the full edge buffer dropped during this run.
        pending: messages still on disk, sent first on the next start.
    """

    generated: int
    acknowledged: int
    dropped: int
    pending: int


class EdgePublisher:
    """A paho client draining an :class:`EdgeBuffer`; use as a context manager.

    Args:
        settings: broker address, credentials and simulator settings.
        buffer: the edge buffer to drain (the publisher does not close it).
        client_id: stable MQTT client id (persistent session).
        stop: set to end :meth:`idle_until` early (signals, tests).
    """

    def __init__(
        self,
        settings: Settings,
        buffer: EdgeBuffer,
        *,
        client_id: str,
        stop: threading.Event | None = None,
    ) -> None:
        self.settings = settings
        self.buffer = buffer
        self.stop = stop or threading.Event()
        self.acknowledged = 0
        self.dropped = 0
        self._window = settings.simulator.inflight_messages
        self._wake = threading.Event()
        self._connected = threading.Event()
        # paho calls on_publish while holding its own message lock, so the callbacks only
        # append to a deque and set flags; everything else happens on the caller's thread.
        self._acked_mids: deque[int] = deque()
        self._reconnected = threading.Event()
        self._inflight: dict[int, int] = {}
        self._resyncing = False
        self._closing = False
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=False,
            protocol=mqtt.MQTTv311,
        )
        if settings.mqtt.username:
            password = settings.mqtt.password
            self._client.username_pw_set(
                settings.mqtt.username,
                password.get_secret_value() if password is not None else None,
            )
        self._client.max_inflight_messages_set(self._window)
        self._client.reconnect_delay_set(1, settings.simulator.reconnect_max_delay_seconds)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish

    def __enter__(self) -> EdgePublisher:
        mqtt_settings = self.settings.mqtt
        self._client.connect_async(
            mqtt_settings.host, mqtt_settings.port, keepalive=mqtt_settings.keepalive
        )
        self._client.loop_start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.drain(self.settings.simulator.drain_timeout_seconds)
        self._closing = True
        self._client.disconnect()
        self._client.loop_stop()
        if self.buffer.pending:
            log.warning(
                "simulator stopping with unacknowledged messages pending=%s path=%s "
                "(sent first on the next start)",
                self.buffer.pending,
                self.buffer.path,
            )

    def report(self, generated: int) -> SimulatorReport:
        """This run's counts, given how many messages the caller generated."""
        return SimulatorReport(generated, self.acknowledged, self.dropped, self.buffer.pending)

    @property
    def connected(self) -> bool:
        """Whether the broker connection is up."""
        return self._connected.is_set()

    def send(self, messages: Sequence[OutgoingMessage]) -> None:
        """Queue ``messages`` in the edge buffer and hand what fits to the broker."""
        self.dropped += self.buffer.append(
            messages, number=self.settings.simulator.sequence_numbers
        )
        self.pump()

    def pump(self) -> None:
        """Settle acknowledgements, then hand the next buffered messages to paho while connected
        and the in-flight window has room."""
        self._settle()
        if not self._connected.is_set():
            return
        if self._reconnected.is_set():
            self._reconnected.clear()
            self._resyncing = bool(self._inflight)
        if self._resyncing:
            if self._inflight:
                return
            self._resyncing = False
        room = self._window - len(self._inflight)
        for message in self.buffer.take(room):
            info = self._client.publish(message.topic, message.payload, qos=1)
            self._inflight[info.mid] = message.id

    def _settle(self) -> None:
        rows = []
        while self._acked_mids:
            row = self._inflight.pop(self._acked_mids.popleft(), None)
            if row is not None:
                rows.append(row)
        if rows:
            self.buffer.ack(rows)
            self.acknowledged += len(rows)

    def idle_until(self, deadline: float) -> None:
        """Keep draining until ``time.monotonic()`` reaches ``deadline`` or ``stop`` is set."""
        while not self.stop.is_set():
            self._wake.clear()
            self.pump()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._wake.wait(min(remaining, 0.2))

    def drain(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for every buffered message to be acknowledged."""
        deadline = time.monotonic() + timeout
        while True:
            self._wake.clear()
            self.pump()
            if not self.buffer.pending or time.monotonic() >= deadline:
                return self.buffer.pending == 0
            self._wake.wait(min(0.2, max(0.0, deadline - time.monotonic())))

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        if reason.is_failure:
            log.warning("broker refused the simulator reason=%s", reason)
            return
        self._reconnected.set()
        self._connected.set()
        self._wake.set()
        log.info(
            "simulator connected broker=%s:%s buffered=%s",
            self.settings.mqtt.host,
            self.settings.mqtt.port,
            self.buffer.pending,
        )

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        was_connected = self._connected.is_set()
        self._connected.clear()
        if was_connected and not self._closing:
            log.warning("simulator lost the broker reason=%s; buffering on disk", reason)

    def _on_publish(
        self, client: mqtt.Client, userdata: Any, mid: int, reason: Any, properties: Any
    ) -> None:
        self._acked_mids.append(mid)
        self._wake.set()
