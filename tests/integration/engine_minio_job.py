"""The engine on an ``s3a://`` lake, run in a process of its own by ``test_engine_minio.py``.

A JVM's S3A settings are fixed when it starts, so this scenario cannot share the test run's
Spark session: it builds its own with :func:`workbench.spark.session.build_session`, runs the
enrichment and gold streams to completion, tries a bucket whose endpoint is down, runs the
``workbench maintain`` job, and writes what it saw as JSON for the test to check.

Usage: ``python -m tests.integration.engine_minio_job SETTINGS_JSON REPORT_JSON``; the S3
credentials come from ``WORKBENCH__S3__ACCESS_KEY``/``SECRET_KEY`` like in production.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

from tests.fixtures.services import free_port
from workbench.catalog.store import Catalog
from workbench.core.settings import load_settings
from workbench.enrichment.silver_stream import run_enrichment_once
from workbench.gold.averages import TABLE
from workbench.gold.gold_stream import run_gold_once
from workbench.maintenance.runner import run_maintenance_job
from workbench.spark.session import build_session

#: A bucket whose endpoint nobody listens on: the store is down for it.
DOWN_BUCKET = "down"


def _silver(spark: Any, path: str) -> list[dict[str, Any]]:
    rows = spark.read.format("delta").load(path).collect()
    return [
        {
            "message_id": r.message_id,
            "ingestion_id": r.ingestion_id,
            "sensor_id": r.sensor_id,
            "date": r.date.isoformat(),
            "event_time": r.event_time.isoformat() if r.event_time else None,
            "fields": dict(r.fields or {}),
            "numeric": dict(r.numeric or {}),
            "payload_kind": r.payload_kind,
        }
        for r in rows
    ]


def _gold(spark: Any, path: str) -> list[dict[str, Any]]:
    rows = spark.read.format("delta").load(path).collect()
    return [
        {
            "window_start": r.window_start.isoformat(),
            "sensor_id": r.sensor_id,
            "field": r.field,
            "avg": r.avg_value,
            "min": r.min_value,
            "max": r.max_value,
            "count": r["count"],
        }
        for r in rows
    ]


def _in_command_lines(secret: Any) -> bool:
    """Whether any process's command line (which every local user can read) holds ``secret``
    (the JVM of this session included)."""
    value = secret.get_secret_value().encode()
    for path in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if value in path.read_bytes():
                return True
        except OSError:
            continue
    return False


def _down_store(spark: Any) -> dict[str, Any]:
    """List a bucket whose endpoint refuses connections, and time the failure.

    A per-bucket endpoint changes where that bucket lives, nothing else: the timeouts and
    retries are the session's.
    """
    jvm, hadoop = spark.sparkContext._jvm, spark.sparkContext._jsc.hadoopConfiguration()
    hadoop.set(f"fs.s3a.bucket.{DOWN_BUCKET}.endpoint", f"http://127.0.0.1:{free_port()}")
    path = jvm.org.apache.hadoop.fs.Path(f"s3a://{DOWN_BUCKET}/lake/bronze")
    started = time.monotonic()
    try:
        path.getFileSystem(hadoop).listStatus(path)
    except Exception as err:  # noqa: BLE001 - the failure itself is what is reported
        return {"seconds": time.monotonic() - started, "error": str(err)[:2000]}
    return {"seconds": time.monotonic() - started, "error": None}


def main(settings_file: str, report_file: str) -> None:
    settings = load_settings(**json.loads(Path(settings_file).read_text()))
    report: dict[str, Any] = {}
    spark = build_session(settings, app_name="workbench-engine-minio")
    conf = spark.sparkContext.getConf()
    report["conf"] = {
        key: conf.get(key, None)
        for key in (
            "spark.hadoop.fs.s3a.endpoint",
            "spark.hadoop.fs.s3a.path.style.access",
            "spark.delta.logStore.s3a.impl",
        )
    }
    catalog = Catalog(settings.catalog.url)
    try:
        started = time.monotonic()
        run_enrichment_once(spark, settings, catalog)
        run_gold_once(spark, settings, catalog)
        report["streams_seconds"] = time.monotonic() - started
    finally:
        catalog.close()
    report["silver"] = _silver(spark, settings.lake.silver_readings)
    report["gold"] = _gold(spark, settings.lake.gold(TABLE))
    report["down"] = _down_store(spark)
    report["secret_in_command_lines"] = _in_command_lines(settings.s3.secret_key)
    # The `workbench maintain` job: it builds its session through the same factory (getting
    # this one) and stops it when done.
    results = run_maintenance_job(settings)
    report["maintenance"] = [dataclasses.asdict(r) for r in results]
    Path(report_file).write_text(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
