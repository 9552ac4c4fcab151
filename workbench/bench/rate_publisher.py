"""The latency benchmark's publisher: QoS 1 readings at a steady rate, each stamped when sent.

Run as ``python -m workbench.bench.rate_publisher --port P --rate R --seconds S``. Prints ``ready``
once connected, then ``{"published": n, "acked": m}`` progress lines about twice a second, and a
last JSON line (also when SIGTERM ends the run early): ``published`` (every one acknowledged
by the broker), ``first``, ``last``, ``last_ack`` (wall times). Each payload carries its own
event time (``timestamp``, ISO 8601 with milliseconds, taken right before the publish) and a
sequence number ``seq``.
"""

from __future__ import annotations

import argparse
import collections
import json
import signal
import sys
import threading
import time
from datetime import UTC, datetime

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

SENSORS = 50
#: Publishes are paced in slots of this many seconds (10 per slot at 1,000 msg/s).
SLOT = 0.01
PROGRESS_EVERY = 0.5


def reading(seq: int, now: float, prefix: str = "lat") -> bytes:
    """One temperature reading stamped ``now`` (epoch seconds), ~130 bytes."""
    stamp = datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds")
    return (
        f'{{"sensor_id":"{prefix}-{seq % SENSORS:03d}","seq":{seq},'
        f'"timestamp":"{stamp.replace("+00:00", "Z")}",'
        f'"temperature":{15 + (seq % 2000) / 100:.2f},"humidity":{40 + (seq % 5000) / 100:.2f}}}'
    ).encode()


def run_publisher(
    host: str, port: int, *, rate: float, seconds: float, prefix: str = "lat"
) -> dict[str, float]:
    """Publish ``rate`` msg/s for ``seconds`` from sensors ``<prefix>-000``..., then wait for
    every acknowledgement."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"bench-rate-publisher-{prefix}-{port}",
        protocol=MQTTProtocolVersion.MQTTv5,
    )
    client.max_inflight_messages_set(65535)
    client.max_queued_messages_set(0)
    client.connect(host, port, keepalive=60)
    client.loop_start()
    print("ready", flush=True)
    pending: collections.deque[mqtt.MQTTMessageInfo] = collections.deque()
    sent, acked = 0, 0
    first = time.time()
    start = time.monotonic()
    next_progress = start
    last = first
    total = int(seconds * rate)
    stopping = threading.Event()
    # SIGTERM ends the run early (a benchmark that runs it until something else is done): what
    # was published is still acknowledged and summed up.
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    while sent < total and not stopping.is_set():
        elapsed = time.monotonic() - start
        # Catch up to where the schedule says we should be: a steady rate, never a burst
        # larger than one slot unless the process was starved. The last slot sends the rest,
        # so exactly rate × seconds readings go out.
        due = total if elapsed >= seconds else min(int(elapsed * rate) + 1, total)
        while sent < due:
            last = time.time()
            pending.append(
                client.publish(
                    f"sensors/latency/{prefix}-{sent % SENSORS:03d}",
                    reading(sent, last, prefix),
                    qos=1,
                )
            )
            sent += 1
        while pending and pending[0].is_published():
            pending.popleft()
            acked += 1
        if time.monotonic() >= next_progress:
            print(json.dumps({"published": sent, "acked": acked}), flush=True)
            next_progress += PROGRESS_EVERY
        time.sleep(SLOT)
    while pending:
        pending.popleft().wait_for_publish(timeout=60)
        acked += 1
    last_ack = time.time()
    client.disconnect()
    client.loop_stop()
    return {"published": sent, "first": first, "last": last, "last_ack": last_ack}


def main() -> int:
    """Parse arguments, publish, print the JSON summary."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--prefix", default="lat", help="sensor ids are <prefix>-000...")
    args = parser.parse_args()
    summary = run_publisher(
        args.host, args.port, rate=args.rate, seconds=args.seconds, prefix=args.prefix
    )
    sys.stdout.write(json.dumps(summary) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
