"""``workbench bench ingest-mqtt``: QoS 1 into durable bronze against a bare paho subscriber.

Two runs on the same machine, each with a fresh Mosquitto (persistence on, no inflight or queue
limit) and the same publisher process publishing ~150-byte readings for ``seconds``:

(a) baseline: a bare paho QoS 1 subscriber that only counts (:mod:`workbench.bench.subscriber`),
    rate = messages / (last received − first received);
(b) the ingest service, rate = distinct messages in bronze / (newest bronze file − first
    publish), i.e. until every message is durable (and acknowledged).

``figure`` = (b), ``baseline`` = (a), ``lost`` = published − distinct message ids in bronze.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

from workbench.bench.harness import (
    IngestService,
    bronze_counts,
    follow,
    free_port,
    isolated_settings,
    last_json_line,
    mosquitto_version,
    read_line,
    result,
    spawn,
)
from workbench.core.settings import Settings
from workbench.stack.broker import mosquitto_binary, wait_for_port, write_config
from workbench.stack.process import stop_process

log = logging.getLogger(__name__)

#: Added to the stack's broker config so the broker is never what limits the rate.
BENCH_BROKER_CONFIG = """
max_inflight_messages 0
max_inflight_bytes 0
"""


def start_bench_broker(directory: Path, port: int) -> subprocess.Popen[bytes]:
    """The stack's persistent Mosquitto config plus no inflight limits, on loopback ``port``."""
    config = write_config(directory, "127.0.0.1", port)
    with open(config, "a") as handle:
        handle.write(BENCH_BROKER_CONFIG)
    proc = subprocess.Popen(
        [mosquitto_binary(), "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    wait_for_port("127.0.0.1", port, 10.0, proc=proc, what="mosquitto")
    return proc


def _publish(port: int, seconds: float, log_path: Path, bar: tqdm) -> dict[str, Any]:
    """Run the publisher to completion, advancing ``bar`` by elapsed seconds."""
    proc = spawn(
        ["-m", "workbench.bench.qos1_publisher", "--port", str(port), "--seconds", str(seconds)],
        log_path=log_path,
    )
    try:
        read_line(proc, "ready", 30)
    except BaseException:
        stop_process(proc)
        raise
    return follow(proc, seconds, bar, 30)


def _baseline(home: Path, seconds: float, bar: tqdm) -> tuple[dict[str, Any], dict[str, Any]]:
    port = free_port()
    broker = start_bench_broker(home / "broker-baseline", port)
    subscriber = None
    try:
        subscriber = spawn(
            ["-m", "workbench.bench.subscriber", "--port", str(port), "--idle", "2"],
            log_path=home / "subscriber.log",
        )
        read_line(subscriber, "ready", 30)
        bar.set_description("baseline: bare paho subscriber")
        published = _publish(port, seconds, home / "publisher.log", bar)
        received = last_json_line(subscriber, seconds + 120)
        return published, received
    finally:
        stop_process(subscriber)
        stop_process(broker)


def _ingest(settings: Settings, seconds: float, bar: tqdm) -> tuple[dict[str, Any], dict[str, Any]]:
    broker = start_bench_broker(Path(settings.home) / "broker", settings.mqtt.port)
    service = IngestService(settings, profile_name="ingest-mqtt")
    try:
        service.start(need_mqtt=True)
        bar.set_description("ingest service")
        published = _publish(
            settings.mqtt.port, seconds, Path(settings.home) / "publisher.log", bar
        )
        target = published["published"]
        bar.set_description("ingest: waiting until durable")
        done, last_change, last_seen = 0.0, time.monotonic(), -1.0
        while time.monotonic() - last_change < 30:
            done = service.metric("ingestor_messages_processed_total")
            if done >= target:
                break
            if done != last_seen:
                last_seen, last_change = done, time.monotonic()
            time.sleep(0.1)
        peak = service.peak_rss_mb()
    finally:
        service.stop()
        stop_process(broker)
    rows, distinct, newest = bronze_counts(settings.lake.root)
    return published, {"rows": rows, "distinct": distinct, "newest": newest, "peak_rss_mb": peak}


def run(settings: Settings, *, seconds: float = 20.0) -> dict[str, Any]:
    """Run both halves and return the result object (see module docstring)."""
    with tempfile.TemporaryDirectory(prefix="wb-bench-mqtt-") as tmp:
        home = Path(tmp)
        with tqdm(total=int(seconds) * 2, unit="s", file=sys.stderr) as bar:
            pub_a, sub_a = _baseline(home, seconds, bar)
            bench = isolated_settings(settings, home / "ingest", client_id="bench-ingest")
            pub_b, bronze = _ingest(bench, seconds, bar)
    base_span = max(sub_a["last"] - sub_a["first"], 1e-6)
    baseline = sub_a["received"] / base_span
    durable_span = max(bronze["newest"] - pub_b["first"], 1e-6)
    figure = min(bronze["distinct"], pub_b["published"]) / durable_span
    return result(
        "ingest-mqtt",
        figure=figure,
        unit="msg/s",
        baseline=baseline,
        lost=pub_b["published"] - bronze["distinct"],
        peak_rss_mb=bronze["peak_rss_mb"],
        params={
            "seconds": seconds,
            "qos": 1,
            "payload_bytes": "~150",
            "flush_seconds": bench.ingest.flush_seconds,
            "flush_rows": bench.ingest.flush_rows,
        },
        details={
            "baseline_published": pub_a["published"],
            "baseline_received": sub_a["received"],
            "baseline_lost": pub_a["published"] - sub_a["received"],
            "baseline_publish_rate": round(
                pub_a["published"] / max(pub_a["last_ack"] - pub_a["first"], 1e-6), 1
            ),
            "published": pub_b["published"],
            "publish_rate": round(
                pub_b["published"] / max(pub_b["last_ack"] - pub_b["first"], 1e-6), 1
            ),
            "bronze_rows": bronze["rows"],
            "duplicates": bronze["rows"] - bronze["distinct"],
            "durable_seconds": round(durable_span, 2),
        },
        extra_versions={"mosquitto": mosquitto_version()},
    )
