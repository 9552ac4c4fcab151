"""Records what a broker delivers on a topic filter into a replayable NDJSON file."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from workbench.core.clock import utcnow
from workbench.core.errors import ServiceUnavailableError
from workbench.simulators.replay import RecordedMessage


def record_messages(
    host: str, port: int, topic_filter: str, *, limit: int, timeout: float
) -> list[RecordedMessage]:
    """Subscribe (QoS 1) and collect up to ``limit`` JSON messages in arrival order.

    Raises:
        ServiceUnavailableError: the broker cannot be reached.
    """
    messages: list[RecordedMessage] = []
    done = threading.Event()
    started: list[float] = []

    def on_connect(client: mqtt.Client, *_: Any) -> None:
        client.subscribe(topic_filter, qos=1)

    def on_message(client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        if len(messages) >= limit:
            return
        now = time.monotonic()
        started[:1] = started[:1] or [now]
        try:
            payload = json.loads(message.payload)
        except ValueError:
            return  # a recording holds JSON objects only
        if isinstance(payload, dict):
            messages.append(RecordedMessage(message.topic, round(now - started[0], 3), payload))
        if len(messages) >= limit:
            done.set()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="wb-recorder")
    client.on_connect = on_connect
    client.on_message = on_message
    try:
        client.connect(host, port)
    except OSError as err:
        raise ServiceUnavailableError(f"cannot reach the broker {host}:{port}: {err}") from err
    client.loop_start()
    try:
        done.wait(timeout)
    finally:
        client.disconnect()
        client.loop_stop()
    return messages[:limit]


def write_recording(path: Path, messages: list[RecordedMessage], description: str) -> None:
    """Write ``messages`` as a recording with a header line describing it."""
    header = {
        "recording": {
            "description": description,
            "recorded_at": utcnow().isoformat().replace("+00:00", "Z"),
            "messages": len(messages),
            "format": "one JSON object per line: topic, offset_seconds, payload",
        }
    }
    lines = [json.dumps(header)]
    lines += [
        json.dumps({"topic": m.topic, "offset_seconds": m.offset_seconds, "payload": m.payload})
        for m in messages
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
