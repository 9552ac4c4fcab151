"""``workbench bench backfill``: a year of hourly readings replayed while live sensors publish.

The replay (:class:`workbench.bench.qos1_publisher.History`): ``sensors`` sensors, one reading
an hour each for ``hours`` hours (23 × 8,760 = 201,480 messages by default), in time order,
published over MQTT QoS 1 as fast as the publisher goes. Two runs, each on a fresh stack on
loopback ports in a temporary directory:

(a) baseline: Mosquitto and ``workbench ingest`` only; rate = messages / (newest bronze file −
    first publish), i.e. until every message is durable in bronze: the ingest-only rate;
(b) the whole stack (Mosquitto, ingest, engine) with 50 live sensors publishing 100 readings a
    second (:mod:`workbench.bench.rate_publisher`) from before the replay until it is done;
    rate = messages / (the moment every replayed reading is in silver and covered by gold −
    first publish).

``figure`` = (b), ``baseline`` = (a). ``live_silver_p95_s`` is the sensor → silver p95 of the
live readings stamped while the replay ran (:mod:`workbench.bench.delta_watch`, from outside
the engine). ``bronze_files_per_flush`` is the most files one dataset got in one manifest entry
(one flush). ``details.cpu_s`` and ``details.baseline_cpu_s``: CPU seconds of the ingest
service, the engine (its JVM included) and the broker while each run's figure was measured,
and ``machine``, every core's busy seconds (publishers and anything else running included):
where the backfill's time goes. ``lost`` = replayed + live readings published − those in
silver. Targets: ratio ≥ 0.8, live p95 ≤ 5 s, lost 0, at most 2 bronze files per dataset per
flush.
"""

from __future__ import annotations

import collections
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

from workbench.bench.delta_watch import GoldWatch, SilverWatch, percentile
from workbench.bench.harness import (
    IngestService,
    isolated_settings,
    last_json_line,
    mosquitto_version,
    read_line,
    result,
    spawn,
)
from workbench.bench.processes import CpuMeter
from workbench.bench.sensor_latency import (
    FIELD,
    EngineService,
    PublisherProcess,
    batch_profile,
    bench_settings,
    register_devices,
)
from workbench.core.settings import Settings, ensure_local_dirs
from workbench.lake.manifest import bronze_partition
from workbench.lake.manifest_reader import ManifestReader
from workbench.lake.storage import LocalStorage
from workbench.stack.broker import start_broker
from workbench.stack.process import stop_process

TARGETS = {"ratio": 0.8, "live_silver_p95_s": 5.0, "lost": 0, "bronze_files_per_flush": 2}
HISTORY_PREFIX = "hist-"
LIVE_PREFIX = "live-"
LIVE_RATE = 100
WARMUP_SECONDS = 2.0
POLL_SECONDS = 0.5
#: How long to wait without progress for the replay to reach silver and gold.
IDLE_SECONDS = 120.0
#: The live publisher's run: longer than any replay; it is stopped once the replay is done.
LIVE_SECONDS = 3600.0


def _replay(settings: Settings, sensors: int, hours: int) -> Any:
    """Start the replay publisher; returns the process once it is connected."""
    proc = spawn(
        [
            "-m",
            "workbench.bench.qos1_publisher",
            "--port",
            str(settings.mqtt.port),
            "--count",
            str(sensors * hours),
            "--history-sensors",
            str(sensors),
        ],
        log_path=Path(settings.home) / "replay.log",
    )
    try:
        read_line(proc, "ready", 30)
    except BaseException:
        stop_process(proc)
        raise
    return proc


def _ingest_only(settings: Settings, sensors: int, hours: int, bar: tqdm) -> dict[str, Any]:
    """Run (a): the replay into ingest alone, until every message is durable in bronze."""
    broker = start_broker(Path(settings.home) / "broker", settings.mqtt.host, settings.mqtt.port)
    service = IngestService(settings, profile_name="backfill-ingest")
    try:
        service.start(need_mqtt=True)
        bar.set_description("baseline: replay into ingest alone")
        replay = _replay(settings, sensors, hours)
        assert service.proc is not None
        meter = CpuMeter({"ingest": service.proc.pid, "broker": broker.pid})
        meter.start()
        summary = last_json_line(replay, 3600)
        target = int(summary["published"])
        done, last_change, seen = 0.0, time.monotonic(), -1.0
        while time.monotonic() - last_change < 30:
            done = service.metric("ingestor_messages_processed_total")
            if done >= target:
                break
            if done != seen:
                seen, last_change = done, time.monotonic()
            time.sleep(0.1)
        durable = time.time()
        cpu = meter.spent()
    finally:
        service.stop()
        stop_process(broker)
    newest = max(
        (p.stat().st_mtime for p in Path(settings.lake.bronze).rglob("part-*.parquet")),
        default=durable,
    )
    span = max(newest - float(summary["first"]), 1e-6)
    return {
        "published": target,
        "durable": int(done),
        "seconds": span,
        "rate": done / span,
        "cpu_s": cpu,
    }


def _with_engine(settings: Settings, sensors: int, hours: int, bar: tqdm) -> dict[str, Any]:
    """Run (b): live sensors, then the replay, until the replay is in silver and gold."""
    home = Path(settings.home)
    broker = start_broker(home / "broker", settings.mqtt.host, settings.mqtt.port)
    ingest = IngestService(settings, profile_name="backfill-stack")
    engine = EngineService(settings)
    live: PublisherProcess | None = None
    replay = None
    try:
        bar.set_description("starting ingest and engine")
        ingest.start(need_mqtt=True)
        engine.start()
        silver = SilverWatch(settings.lake.silver_readings)
        gold = GoldWatch(settings.lake.gold("sensor_averages"), FIELD)
        live = PublisherProcess(settings, rate=LIVE_RATE, seconds=LIVE_SECONDS, prefix=LIVE_PREFIX)
        live.start()
        # The live sensors flow through both streams first (the JVM compiles the batch code).
        deadline = time.monotonic() + 300
        while silver.count(LIVE_PREFIX) < WARMUP_SECONDS * LIVE_RATE:
            if time.monotonic() > deadline:
                raise RuntimeError("live readings did not reach silver in 300 s")
            silver.poll()
            time.sleep(POLL_SECONDS)
        bar.set_description("replaying a year while live sensors publish")
        started = time.time()
        replay = _replay(settings, sensors, hours)
        assert ingest.proc is not None and engine.proc is not None
        meter = CpuMeter(
            {"ingest": ingest.proc.pid, "engine": engine.proc.pid, "broker": broker.pid}
        )
        meter.start()
        target = sensors * hours
        last_change, seen, replay_summary = time.monotonic(), (-1, -1), None
        while time.monotonic() - last_change < IDLE_SECONDS:
            silver.poll()
            gold.poll()
            now = (silver.count(HISTORY_PREFIX), gold.covered(HISTORY_PREFIX))
            bar.n = min(now)
            bar.set_postfix(silver=now[0], gold=now[1], live=silver.count(LIVE_PREFIX))
            bar.refresh()
            if replay_summary is None and replay.poll() is not None:
                replay_summary = last_json_line(replay, 60)
                target = int(replay_summary["published"])
            if replay_summary is not None and min(now) >= target:
                break
            if now != seen:
                seen, last_change = now, time.monotonic()
            time.sleep(POLL_SECONDS)
        done = time.time()
        cpu = meter.spent()
        live.stop()  # SIGTERM: it stops publishing, waits for its acks and sums up
        live_published = int(
            (live.wait(timeout=60) if live.summary is None else live.summary)["published"]
        )
        bar.set_description("draining the live readings into silver")
        last_change, count = time.monotonic(), -1
        while time.monotonic() - last_change < 60 and silver.count(LIVE_PREFIX) < live_published:
            silver.poll()
            if silver.count(LIVE_PREFIX) != count:
                count, last_change = silver.count(LIVE_PREFIX), time.monotonic()
            time.sleep(POLL_SECONDS)
        jvm_peak = engine.jvm_peak_rss_mb()
    finally:
        if replay is not None:
            stop_process(replay)
        if live is not None:
            live.stop()
        engine.stop()
        ingest.stop()
        stop_process(broker)
    first = float(replay_summary["first"]) if replay_summary else started
    live_lat = [
        r.committed - r.event_time
        for r in silver.records.values()
        if (r.sensor_id or "").startswith(LIVE_PREFIX) and first <= r.event_time <= done
    ]
    return {
        "published": int(replay_summary["published"]) if replay_summary else 0,
        "live_published": live_published,
        "silver": silver.count(HISTORY_PREFIX),
        "gold": gold.covered(HISTORY_PREFIX),
        "live_silver": silver.count(LIVE_PREFIX),
        "seconds": max(done - first, 1e-6),
        "live_latencies": live_lat,
        "jvm_peak_rss_mb": jvm_peak,
        "profile": batch_profile(engine.log),
        "cpu_s": cpu,
    }


def bronze_files_per_flush(lake_root: str) -> tuple[int, int]:
    """``(most files of one dataset in one manifest entry, entries)`` of a local lake."""
    reader = ManifestReader(LocalStorage(lake_root))
    most, entries = 0, reader.between({}, reader.end())
    for entry in entries:
        per_dataset = collections.Counter(
            (bronze_partition(f.path) or ("?",))[0] for f in entry.files
        )
        most = max(most, *per_dataset.values(), 0)
    return most, len(entries)


def run(settings: Settings, *, sensors: int = 23, hours: int = 8760, **_: Any) -> dict[str, Any]:
    """Run the baseline and the backfill; return the result object."""
    load = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory(prefix="wb-bench-backfill-") as tmp:
        home = Path(tmp)
        with tqdm(total=sensors * hours, unit="readings", file=sys.stderr) as bar:
            base_settings = isolated_settings(settings, home / "baseline", client_id="bf-ingest")
            ensure_local_dirs(base_settings)
            base = _ingest_only(base_settings, sensors, hours, bar)
            bar.reset()
            bench = bench_settings(settings, home / "stack")
            ensure_local_dirs(bench)
            devices = register_devices(bench)
            run_b = _with_engine(bench, sensors, hours, bar)
        files_per_flush, entries = bronze_files_per_flush(bench.lake.root)
    load.append(os.getloadavg()[0])
    figure = min(run_b["silver"], run_b["gold"], run_b["published"]) / run_b["seconds"]
    live_p95 = percentile(run_b["live_latencies"], 95)
    lost = (run_b["published"] - run_b["silver"]) + (run_b["live_published"] - run_b["live_silver"])
    ratio = figure / base["rate"] if base["rate"] else 0.0
    met = (
        ratio >= TARGETS["ratio"]
        and live_p95 is not None
        and live_p95 <= TARGETS["live_silver_p95_s"]
        and lost == 0
        and files_per_flush <= TARGETS["bronze_files_per_flush"]
    )
    out = result(
        "backfill",
        figure=figure,
        unit="readings/s (into silver and gold)",
        baseline=base["rate"],
        lost=lost,
        peak_rss_mb=run_b["jvm_peak_rss_mb"],
        params={
            "sensors": sensors,
            "hours": hours,
            "live_sensors": 50,
            "live_rate": LIVE_RATE,
            "qos": 1,
            "max_files_per_trigger": bench.engine.max_files_per_trigger,
            "enrichment_trigger_seconds": bench.engine.enrichment_trigger_seconds,
            "ingest_flush_seconds": bench.ingest.flush_seconds,
            "spark_master": bench.spark.master,
            "devices_registered": devices,
        },
        details={
            "baseline_published": base["published"],
            "baseline_durable": base["durable"],
            "baseline_seconds": round(base["seconds"], 2),
            "published": run_b["published"],
            "silver": run_b["silver"],
            "gold_covered": run_b["gold"],
            "seconds": round(run_b["seconds"], 2),
            "live_published": run_b["live_published"],
            "live_silver": run_b["live_silver"],
            "live_measured": len(run_b["live_latencies"]),
            "manifest_entries": entries,
            "load_avg_1m": [round(x, 2) for x in load],
            "batch_profile": run_b["profile"],
            "baseline_cpu_s": base["cpu_s"],
            "cpu_s": run_b["cpu_s"],
            "targets": {**TARGETS, "met": met},
        },
        extra_versions={"mosquitto": mosquitto_version()},
    )
    out["live_silver_p95_s"] = None if live_p95 is None else round(live_p95, 3)
    out["bronze_files_per_flush"] = files_per_flush
    return out
