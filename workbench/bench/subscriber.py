"""The baseline: a bare paho QoS 1 subscriber that only counts.

Run as ``python -m workbench.bench.subscriber --port P``. Same session shape as the ingest service's
MQTT connector (MQTT v5, persistent session, receive maximum 65535) but paho acknowledges each
message itself and nothing else happens. Prints ``ready`` once subscribed, then exits when no
message arrived for ``--idle`` seconds (after at least one) and prints ``received``, ``first``
and ``last`` (wall times of the first and last message) as one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties


class Counter:
    """Counts messages and remembers when the first and the last arrived."""

    def __init__(self) -> None:
        self.received = 0
        self.first = 0.0
        self.last = 0.0
        self.subscribed = threading.Event()

    def on_connect(self, client: mqtt.Client, *_args: Any) -> None:
        client.subscribe("sensors/#", qos=1)

    def on_subscribe(self, *_args: Any) -> None:
        self.subscribed.set()

    def on_message(self, _client: mqtt.Client, _userdata: Any, _msg: mqtt.MQTTMessage) -> None:
        now = time.time()
        if not self.received:
            self.first = now
        self.last = now
        self.received += 1


def run_subscriber(host: str, port: int, *, idle: float, limit: float) -> dict[str, float]:
    """Count until ``idle`` seconds pass without a message (or ``limit`` seconds in all)."""
    counter = Counter()
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"bench-baseline-{port}",
        protocol=MQTTProtocolVersion.MQTTv5,
    )
    client.on_connect = counter.on_connect
    client.on_subscribe = counter.on_subscribe
    client.on_message = counter.on_message
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    props.ReceiveMaximum = 65535
    client.connect(host, port, keepalive=60, clean_start=False, properties=props)
    client.loop_start()
    if not counter.subscribed.wait(30):
        raise SystemExit("not subscribed within 30 s")
    print("ready", flush=True)
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        time.sleep(0.2)
        if counter.received and time.time() - counter.last > idle:
            break
    client.disconnect()
    client.loop_stop()
    return {"received": counter.received, "first": counter.first, "last": counter.last}


def main() -> int:
    """Parse arguments, count, print the JSON summary."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--idle", type=float, default=3.0)
    parser.add_argument("--limit", type=float, default=600.0)
    args = parser.parse_args()
    summary = run_subscriber(args.host, args.port, idle=args.idle, limit=args.limit)
    sys.stdout.write(json.dumps(summary) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
