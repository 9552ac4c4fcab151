"""``workbench bench enrich``: bronze → silver with rules, against the same rules written by hand.

The bronze lake (:mod:`workbench.bench.enrich_data`: ``records`` readings from five sensor kinds
with mixed key spellings, files of 20,000 rows in the ingest writer's layout) is generated once per
size and cached under ``<home>/bench/``. Each run hard-links it into a fresh lake in a temporary
directory, with a fresh SQLite catalog holding the seeded default normalization rules plus
:data:`NORMALIZATION_RULES` (10) and :data:`VALUE_RULES` (5: two filters, one convert, two
validates), and the five datasets registered as devices.

One Spark session (``build_session(settings)``, the engine's own settings) is warmed up: a full
read of the bronze files (the OS cache), then the three measured paths once each on a small lake
of the first file of each dataset (:data:`WARMUP_FILES_PER_DATASET`), so that no path is timed
while the JVM compiles its code (a running engine is warm too). Then, in this order, each into a
fresh table:

(a) copy: ``spark.read.schema(BRONZE_READ_SCHEMA).parquet(bronze)`` →
    ``write.format("delta").mode("append")``, the cost of moving the rows at all;
(b) by hand: :func:`workbench.bench.enrich_by_hand.enrich_by_hand`, the same normalization and
    value rules written as plain PySpark for these datasets (``from_json``, the spellings merged
    with ``coalesce``, the rules as Column expressions, a dedupe by message id, the same
    partitioned silver append);
(c) workbench: :func:`workbench.enrichment.silver_stream.run_enrichment_once`, the rules read
    from the catalog and compiled by the engine.

Each rate is bronze rows / wall time. ``figure`` = (c); ``baseline`` = (b) and ``ratio`` =
figure / baseline: compiling rules from a catalog should cost nothing over writing them, target
≥ 1.0; ``copy_baseline`` = (a) and ``copy_ratio`` = figure / copy_baseline, how far the
enrichment is from the copy limit (no target). Target also ≥ 50,000 records/s. ``lost`` = bronze
rows − silver rows − rows the value rules drop (computed from the rule semantics on the
generated data; 0 means every reading is either in silver or was dropped by a rule). The ratio
compares like with like only if (b) wrote the same rows as (c): ``details.by_hand_rows`` and the
message ids in one table and not the other are reported, and ``targets.met`` is false when they
differ.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tqdm import tqdm

from workbench.bench.enrich_data import (
    ANOMALIES,
    KINDS,
    cache_dir,
    generate,
    link_bronze,
    load_manifest,
)
from workbench.bench.harness import result
from workbench.bench.processes import peak_rss_mb
from workbench.catalog.store import Catalog
from workbench.core.settings import Settings

log = logging.getLogger(__name__)

TARGET_RATIO = 1.0
WARMUP_FILES_PER_DATASET = 1
TARGET_RATE = 50_000

_IDS = {kind.name: kind.ingestion_id for kind in KINDS}

#: ``(raw key, canonical key, dataset kind or None for global)``, beyond the seeded defaults
#: (which already map sensor_id/deviceId, temp/Temp/Temperature, hum, ts...).
NORMALIZATION_RULES: tuple[tuple[str, str, str | None], ...] = (
    ("carbon_monoxide_ppm", "co_ppm", None),
    ("nitrogen_dioxide_ppm", "no2_ppm", None),
    ("particulate_matter_2_5_ug_m3", "pm25", None),
    ("fill_level_percent", "fill_level", None),
    ("vehicle_count", "vehicles", None),
    ("average_speed_kph", "speed_kph", None),
    ("co", "co_ppm", "air-quality"),
    ("pm2_5", "pm25", "air-quality"),
    ("fillLevel", "fill_level", "smart-bin"),
    ("powerKw", "power_kw", "energy"),
)

#: ``(name, kind, canonical field, config, dataset kind or None, priority)``; each rule is
#: scoped to the dataset whose field it checks, so other kinds' rows never reach it.
VALUE_RULES: tuple[tuple[str, str, str, dict[str, Any], str | None, int], ...] = (
    ("vehicles-not-negative", "filter", "vehicles", {"op": "ge", "value": 0}, "traffic", 10),
    ("power-positive", "filter", "power_kw", {"op": "gt", "value": 0}, "energy", 20),
    (
        "speed-in-mps",
        "convert",
        "speed_kph",
        {"op": "div", "value": 3.6, "target": "speed_mps"},
        "traffic",
        30,
    ),
    (
        "temperature-plausible",
        "validate",
        "temperature",
        {"check": "range", "min": -40, "max": 60, "on_fail": "drop"},
        "temperature",
        40,
    ),
    (
        "pm25-not-negative",
        "validate",
        "pm25",
        {"check": "range", "min": 0, "max": 1000, "on_fail": "flag"},
        "air-quality",
        50,
    ),
)


def prepare_bronze(settings: Settings, records: int, bar: tqdm) -> tuple[Path, dict[str, Any]]:
    """The cached bronze lake of ``records`` readings, generating it first if needed."""
    directory = cache_dir(Path(settings.home), records)
    manifest = load_manifest(directory)
    if manifest is not None:
        bar.set_description("bronze: cached")
        bar.update(records)
        return directory, manifest
    bar.set_description("bronze: generating")
    manifest = generate(
        directory, records, time_fields=settings.ingest.time_fields, progress=bar.update
    )
    return directory, manifest


def seed_catalog(catalog: Catalog) -> dict[str, Any]:
    """Add the benchmark's rules and devices; returns what was added (for ``params``).

    Value rules and devices are added only if this catalog has them (they are being built);
    without value rules no reading is dropped, and the expected drop count says so.
    """
    for raw, canonical, kind in NORMALIZATION_RULES:
        catalog.add_rule(raw, canonical, ingestion_id=_IDS[kind] if kind else None)
    added: dict[str, Any] = {
        "normalization_rules": len(NORMALIZATION_RULES),
        "default_rules": len(catalog.list_rules()) - len(NORMALIZATION_RULES),
        "value_rules": [],
        "devices": 0,
    }
    add_value_rule = getattr(catalog, "add_value_rule", None)
    if add_value_rule is not None:
        for name, kind, field, config, dataset, priority in VALUE_RULES:
            add_value_rule(
                name=name,
                kind=kind,
                field=field,
                config=config,
                ingestion_id=_IDS[dataset] if dataset else None,
                priority=priority,
            )
            added["value_rules"].append(name)
    save_device = getattr(catalog, "save_device", None)
    if save_device is not None:
        from workbench.catalog.records import Device

        for kind_name, iid in _IDS.items():
            save_device(Device(ingestion_id=iid, name=f"bench {kind_name}"))
            added["devices"] += 1
    return added


def expected_drops(manifest: dict[str, Any], value_rules: list[str]) -> int:
    """Readings the seeded value rules drop, from the generator's anomaly counts."""
    if not value_rules:
        return 0
    return sum(int(n) for kind, n in manifest["anomalies"]["drop"].items() if kind in ANOMALIES)


class StepLog(logging.Handler):
    """Sums the batch processor's per-step seconds from its ``enrichment batch`` log lines.

    The profiler's numbers (``step_duration_seconds``) without passing engine metrics, so the
    measured call stays exactly ``run_enrichment_once(spark, settings, catalog)``.
    """

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.steps: dict[str, float] = {}
        self.batches = 0

    def emit(self, record: logging.LogRecord) -> None:
        """Add one batch's ``steps={...}`` (the last argument of the line) to the sums."""
        args = record.args if isinstance(record.args, tuple) else ()
        if not str(record.msg).startswith("enrichment batch") or not args:
            return
        if isinstance(args[-1], dict):
            self.batches += 1
            for step, seconds in args[-1].items():
                self.steps[step] = round(self.steps.get(step, 0.0) + float(seconds), 2)


@contextmanager
def _timed(out: dict[str, float], key: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        out[key] = time.perf_counter() - started


def measure(
    settings: Settings, warm: Settings, dropped_ids: list[str], bar: tqdm
) -> tuple[dict[str, Any], dict[str, int]]:
    """Warm-up, then the copy, the job by hand and the enrichment on one session.

    Returns timings and row counts. ``warm`` is the warm-up lake and catalog (every path runs
    there once first). ``dropped_ids`` are the readings the value rules must drop: how many of
    them still reached silver is counted too (0 when the rules work).
    """
    from pyspark.sql import functions as F

    from workbench.bench.enrich_by_hand import enrich_by_hand
    from workbench.enrichment.bronze_schema import BRONZE_READ_SCHEMA
    from workbench.enrichment.silver_stream import run_enrichment_once
    from workbench.spark.session import build_session

    lake = Path(settings.lake.root)
    times: dict[str, Any] = {}
    bar.set_description("spark: starting")
    with _timed(times, "session_start"):
        spark = build_session(settings, app_name="workbench-bench-enrich")

    def copy(bronze: str, table: Path) -> None:
        (
            spark.read.schema(BRONZE_READ_SCHEMA)
            .parquet(bronze)
            .write.format("delta")
            .mode("append")
            .save(str(table))
        )

    try:
        bar.set_description("spark: warm-up")
        with _timed(times, "warmup"):
            # Pages the bronze files into the OS cache, for every path alike.
            spark.read.schema(BRONZE_READ_SCHEMA).parquet(settings.lake.bronze).count()
            copy(warm.lake.bronze, Path(warm.lake.root) / "copy")
            enrich_by_hand(spark, warm.lake.bronze, str(Path(warm.lake.root) / "by-hand"))
            warm_catalog = Catalog(warm.catalog.url)
            try:
                run_enrichment_once(spark, warm, warm_catalog)
            finally:
                warm_catalog.close()
        bar.update(1)
        bar.set_description("copy: read → Delta append")
        with _timed(times, "copy"):
            copy(settings.lake.bronze, lake / "copy")
        bar.update(1)
        bar.set_description("by hand: the rules in PySpark")
        with _timed(times, "by_hand"):
            enrich_by_hand(spark, settings.lake.bronze, str(lake / "by-hand"))
        bar.update(1)
        catalog = Catalog(settings.catalog.url)
        steps = StepLog()
        processor_log = logging.getLogger("workbench.enrichment")
        level = processor_log.level
        processor_log.addHandler(steps)
        processor_log.setLevel(min(level or logging.INFO, logging.INFO))
        try:
            bar.set_description("enrichment: run_enrichment_once")
            with _timed(times, "enrichment"):
                run_enrichment_once(spark, settings, catalog)
        finally:
            processor_log.removeHandler(steps)
            processor_log.setLevel(level)
            catalog.close()
        bar.update(1)
        bar.set_description("counting")
        copy_rows = spark.read.format("delta").load(str(lake / "copy")).count()
        silver = spark.read.format("delta").load(settings.lake.silver_readings)
        row = silver.agg(
            F.count(F.lit(1)).alias("rows"), F.countDistinct("message_id").alias("ids")
        ).first()
        must_drop = spark.createDataFrame([(i,) for i in dropped_ids], "message_id string")
        kept_bad = silver.join(must_drop, "message_id", "left_semi").count()
        by_hand = spark.read.format("delta").load(str(lake / "by-hand"))
        by_hand_rows = by_hand.count()
        ids, hand_ids = silver.select("message_id"), by_hand.select("message_id")
        only_by_hand = hand_ids.join(ids, "message_id", "left_anti").count()
        only_silver = ids.join(hand_ids, "message_id", "left_anti").count()
        bar.update(1)
        times["jvm_peak_rss_mb"] = _jvm_peak_rss_mb(spark)
        times["steps"] = {"batches": steps.batches, "seconds": steps.steps}
    finally:
        spark.stop()
    counts = {
        "copy_rows": int(copy_rows),
        "silver_rows": int(row["rows"]) if row else 0,
        "silver_ids": int(row["ids"]) if row else 0,
        "kept_bad": int(kept_bad),
        "by_hand_rows": int(by_hand_rows),
        "only_by_hand": int(only_by_hand),
        "only_silver": int(only_silver),
    }
    return times, counts


def run(settings: Settings, *, records: int = 1_000_000, **_: Any) -> dict[str, Any]:
    """Generate (or reuse) the bronze lake, measure both sides, return the result object."""
    with tempfile.TemporaryDirectory(prefix="wb-bench-enrich-") as tmp:
        home = Path(tmp)
        bench = settings.model_copy(
            update={
                "lake": settings.lake.model_copy(update={"root": str(home / "lake")}),
                "catalog": settings.catalog.model_copy(
                    update={"url": f"sqlite:///{home / 'cat.db'}"}
                ),
            }
        )
        with tqdm(total=records, unit="rec", file=sys.stderr) as bar:
            cached, manifest = prepare_bronze(settings, records, bar)
        files = link_bronze(cached, home / "lake")
        warm = bench.model_copy(
            update={
                "lake": settings.lake.model_copy(update={"root": str(home / "warm-lake")}),
                "catalog": settings.catalog.model_copy(
                    update={"url": f"sqlite:///{home / 'warm.db'}"}
                ),
            }
        )
        link_bronze(cached, home / "warm-lake", per_dataset=WARMUP_FILES_PER_DATASET)
        for cat_settings in (warm, bench):
            catalog = Catalog(cat_settings.catalog.url)
            try:
                seeded = seed_catalog(catalog)
            finally:
                catalog.close()
        bronze_rows = sum(d["rows"] for d in manifest["datasets"].values())
        with tqdm(total=5, unit="step", file=sys.stderr) as bar:
            load_before = os.getloadavg()[0]
            times, counts = measure(bench, warm, manifest["dropped_ids"], bar)
            load_after = os.getloadavg()[0]
    dropped = expected_drops(manifest, seeded["value_rules"])
    figure = bronze_rows / times["enrichment"]
    baseline = bronze_rows / times["by_hand"]
    copy_rate = bronze_rows / times["copy"]
    same_rows = (
        counts["by_hand_rows"] == counts["silver_rows"]
        and counts["only_by_hand"] == 0
        and counts["only_silver"] == 0
    )
    if not same_rows:
        log.warning(
            "the job by hand wrote other rows than the enrichment: %s rows against %s "
            "(%s ids only by hand, %s only in silver); the ratio compares unlike jobs",
            counts["by_hand_rows"],
            counts["silver_rows"],
            counts["only_by_hand"],
            counts["only_silver"],
        )
    out = result(
        "enrich",
        figure=figure,
        unit="records/s",
        baseline=baseline,
        lost=bronze_rows - counts["silver_rows"] - dropped,
        peak_rss_mb=times["jvm_peak_rss_mb"],
        params={
            "records": records,
            "datasets": len(manifest["datasets"]),
            "bronze_files": files,
            "bronze_bytes": sum(d["bytes"] for d in manifest["datasets"].values()),
            "normalization_rules": seeded["normalization_rules"],
            "default_rules_kept": seeded["default_rules"],
            "value_rules": seeded["value_rules"],
            "devices_registered": seeded["devices"],
            "spark_master": bench.spark.master,
            "driver_memory": bench.spark.driver_memory,
            "shuffle_partitions": bench.spark.shuffle_partitions,
            "max_files_per_trigger": bench.engine.max_files_per_trigger,
        },
        details={
            "bronze_rows": bronze_rows,
            "silver_rows": counts["silver_rows"],
            "silver_duplicates": counts["silver_rows"] - counts["silver_ids"],
            "dropped_by_rules": dropped,
            "must_drop_rows_in_silver": counts["kept_bad"] if seeded["value_rules"] else None,
            "flagged_expected": sum(manifest["anomalies"]["flag"].values()),
            "by_hand_rows": counts["by_hand_rows"],
            # Message ids in one of the two silver tables and not in the other (0 and 0).
            "by_hand_ids_not_in_silver": counts["only_by_hand"],
            "silver_ids_not_by_hand": counts["only_silver"],
            "by_hand_same_rows": same_rows,
            "copy_rows": counts["copy_rows"],
            "measured_order": ["copy", "by_hand", "enrichment"],
            "copy_seconds": round(times["copy"], 2),
            "by_hand_seconds": round(times["by_hand"], 2),
            "enrichment_seconds": round(times["enrichment"], 2),
            "session_start_seconds": round(times["session_start"], 2),
            "warmup_seconds": round(times["warmup"], 2),
            "processor_steps": times["steps"],
            # The 2 cores are shared; a high load average means other work competed.
            "load_avg_1m": [round(load_before, 2), round(load_after, 2)],
            "targets": {
                "ratio": TARGET_RATIO,
                "records_per_s": TARGET_RATE,
                "same_rows": True,
                "met": figure / baseline >= TARGET_RATIO and figure >= TARGET_RATE and same_rows,
            },
        },
        extra_versions=_spark_versions(),
    )
    out.update({"copy_baseline": round(copy_rate, 1), "copy_ratio": round(figure / copy_rate, 3)})
    return out


def _jvm_peak_rss_mb(spark: Any) -> float:
    """Peak RSS of the driver JVM (the ``spark-submit`` child of this process), 0 if unknown."""
    proc = getattr(getattr(spark.sparkContext, "_gateway", None), "proc", None)
    return peak_rss_mb(proc.pid) if proc is not None else 0.0


def _spark_versions() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for dist in ("pyspark", "delta-spark"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return out
