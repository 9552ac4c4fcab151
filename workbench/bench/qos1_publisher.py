"""The benchmark publisher: QoS 1 sensor readings as fast as the broker acknowledges them.

Run as ``python -m workbench.bench.qos1_publisher --port P [--seconds S | --count N]``;
``--history-sensors K`` replays old hourly readings of K sensors instead (:class:`History`).
Prints ``ready`` once connected, then one JSON line at the end: ``published`` (every one
acknowledged by the broker), ``first`` (wall time of the first publish) and ``last_ack``. The same
program feeds every subscriber a benchmark compares, so the load is identical.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

#: Unacknowledged publishes in flight: enough that a round trip never idles the pipe.
WINDOW = 2000
SENSORS = 200


def reading(seq: int, stamp: str) -> bytes:
    """One ~150-byte temperature reading; ``seq`` makes every payload (and id) distinct."""
    sensor = seq % SENSORS
    return (
        f'{{"sensor_id":"temp-{sensor:04d}","kind":"temperature","seq":{seq},'
        f'"timestamp":"{stamp}","temperature":{15 + (seq % 2000) / 100:.2f},'
        f'"humidity":{40 + (seq % 5000) / 100:.2f},"battery_v":3.{seq % 90 + 10},'
        f'"unit":"celsius"}}'
    ).encode()


@dataclass(frozen=True)
class History:
    """A replay of old readings: ``sensors`` sensors, one reading an hour each from ``start``.

    Message ``seq`` is sensor ``seq % sensors`` at hour ``seq // sensors``, in time order.
    """

    sensors: int
    start: datetime
    prefix: str = "hist"

    def topic(self, seq: int) -> str:
        return f"sensors/history/{self.prefix}-{seq % self.sensors:03d}"

    def reading(self, seq: int) -> bytes:
        """One hourly reading of the replay, ~130 bytes, stamped with its own (old) hour."""
        stamp = self.start + timedelta(hours=seq // self.sensors)
        return (
            f'{{"sensor_id":"{self.prefix}-{seq % self.sensors:03d}","seq":{seq},'
            f'"timestamp":"{stamp.isoformat().replace("+00:00", "Z")}",'
            f'"temperature":{15 + (seq % 2000) / 100:.2f}}}'
        ).encode()


def run_publisher(
    host: str,
    port: int,
    *,
    seconds: float,
    count: int | None,
    history: History | None = None,
) -> dict[str, float]:
    """Publish until ``seconds`` pass or ``count`` messages are sent; wait for every ack.

    With ``history``, the messages are that replay's old readings instead of live ones.
    """
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"bench-publisher-{port}",
        protocol=MQTTProtocolVersion.MQTTv5,
    )
    client.max_inflight_messages_set(WINDOW)
    client.max_queued_messages_set(0)
    client.connect(host, port, keepalive=60)
    client.loop_start()
    print("ready", flush=True)
    pending: collections.deque[mqtt.MQTTMessageInfo] = collections.deque()
    sent = 0
    first = time.time()
    deadline = time.monotonic() + seconds
    stamp = ""
    while (count is None or sent < count) and (count is not None or time.monotonic() < deadline):
        if sent % 256 == 0:
            stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        if history is None:
            topic, payload = f"sensors/temperature/temp-{sent % SENSORS:04d}", reading(sent, stamp)
        else:
            topic, payload = history.topic(sent), history.reading(sent)
        info = client.publish(topic, payload, qos=1)
        pending.append(info)
        sent += 1
        if len(pending) >= WINDOW:
            pending.popleft().wait_for_publish(timeout=60)
    while pending:
        pending.popleft().wait_for_publish(timeout=60)
    last_ack = time.time()
    client.disconnect()
    client.loop_stop()
    return {"published": sent, "first": first, "last_ack": last_ack}


def main() -> int:
    """Parse arguments, publish, print the JSON summary."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--count", type=int, default=None)
    parser.add_argument(
        "--history-sensors",
        type=int,
        default=None,
        help="replay old hourly readings of this many sensors instead of live ones",
    )
    parser.add_argument(
        "--history-start", default="2025-01-01T00:00:00+00:00", help="the replay's first hour"
    )
    args = parser.parse_args()
    history = (
        History(args.history_sensors, datetime.fromisoformat(args.history_start))
        if args.history_sensors
        else None
    )
    summary = run_publisher(
        args.host, args.port, seconds=args.seconds, count=args.count, history=history
    )
    sys.stdout.write(json.dumps(summary) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
