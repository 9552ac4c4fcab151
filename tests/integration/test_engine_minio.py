"""The engine on an ``s3a://`` lake on a real MinIO: streams, maintenance, an independent reader.

Bronze is written by the ingest side's own writer; the Spark part runs in a process of its own
(``engine_minio_job.py``): S3A settings are fixed when a JVM starts, and the test run's shared
session is on a local lake.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from deltalake import DeltaTable as IndependentReader

from tests.fixtures.minio import ACCESS_KEY, SECRET_KEY, MinioServer, list_bronze
from tests.fixtures.services import ROOT, make_settings
from workbench.connectors.envelope import build_envelopes
from workbench.core.settings import Settings
from workbench.ingest.bronze_writer import BronzeWriter
from workbench.lake.s3 import S3Storage
from workbench.metrics.ingestor import IngestMetrics

pytestmark = pytest.mark.spark

BUCKET, PREFIX = "engine", "lake"
DS = "temp-minio"
TODAY = datetime.now(UTC).date()
DAY = TODAY - timedelta(days=1)
OLD = TODAY - timedelta(days=40)  # past the 30 days of retention


def at(day: date, clock: str) -> str:
    return f"{day.isoformat()}T{clock}Z"


#: Four flushes of the bronze writer, one file each (bronze is partitioned by arrival): read
#: two per micro-batch, so silver's busy partition gets a file from each batch.
ROUNDS: list[list[tuple[str, dict[str, Any] | str]]] = [
    [
        ("m1", {"sensor_id": "t-1", "temperature": 20.0, "timestamp": at(DAY, "10:00:10")}),
        (
            "m2",
            {"sensor_id": "t-1", "temperature": 22.0, "humidity": 50, "ts": at(DAY, "10:00:40")},
        ),
        ("m3", {"sensor_id": "t-2", "temperature": 30, "timestamp": at(DAY, "10:00:30")}),
        ("m5", "not json at all"),
    ],
    [("m4", {"sensor_id": "t-1", "temperature": 25, "timestamp": at(DAY, "10:01:05")})],
    # A later reading in an open gold window: its row is updated by the next MERGE.
    [("m6", {"sensor_id": "t-1", "temperature": 27, "timestamp": at(DAY, "10:01:50")})],
    [("m7", {"sensor_id": "t-1", "temperature": 5.0, "timestamp": at(OLD, "10:00:00")})],
]


def write_bronze(settings: Settings) -> None:
    """Every round through the ingest side's writer and S3 storage, one flush per round (and
    one bronze file: they all arrive within a second)."""
    writer = BronzeWriter(S3Storage(settings), settings.ingest, IngestMetrics())
    writer.start()
    try:
        for messages in ROUNDS:
            envelopes = [
                envelope
                for mid, payload in messages
                for envelope in build_envelopes(
                    (payload if isinstance(payload, str) else json.dumps(payload)).encode(),
                    ingestion_id=DS,
                    source_type="mqtt",
                    topic=f"sensors/{DS}",
                    received_at=datetime.now(UTC),
                    time_fields=settings.ingest.time_fields,
                    message_id=mid,
                )
            ]
            writer.add(envelopes)
            assert writer.flush(timeout=30), writer.last_error
    finally:
        writer.stop()


def run_job(tmp_path: Path, settings: Settings) -> tuple[dict[str, Any], str]:
    """Run ``engine_minio_job`` with the credentials in the environment, as in production."""
    data = settings.model_dump(mode="json")
    del data["s3"]["access_key"], data["s3"]["secret_key"]
    settings_file, report_file = tmp_path / "settings.json", tmp_path / "report.json"
    settings_file.write_text(json.dumps(data))
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKBENCH__")}
    env.update(
        PYTHONPATH=str(ROOT),
        WORKBENCH__CONFIG=str(tmp_path / "absent.toml"),
        WORKBENCH__S3__ACCESS_KEY=ACCESS_KEY,
        WORKBENCH__S3__SECRET_KEY=SECRET_KEY,
        TZ="UTC",  # collected timestamps are in the process's time zone
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.integration.engine_minio_job",
            str(settings_file),
            str(report_file),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    return json.loads(report_file.read_text()), output


def test_engine_streams_and_maintenance_on_minio(tmp_path: Path, minio: MinioServer) -> None:
    settings = make_settings(
        tmp_path,
        lake={"root": f"s3a://{BUCKET}/{PREFIX}"},
        s3=minio.s3_settings(),
        spark={"master": "local[2]", "shuffle_partitions": 2},
        # Two bronze files per micro-batch: silver gets several small files per partition.
        engine={"max_files_per_trigger": 2},
        maintenance={
            "silver_retention_days": 30,
            "gold_retention_days": 30,
            "compaction_min_files": 2,
            "vacuum_retain_hours": 0,
            "allow_short_vacuum_retention": True,
        },
    )
    write_bronze(settings)
    assert len(list_bronze(minio.client(), BUCKET, PREFIX)) == 4  # one file per flush

    report, output = run_job(tmp_path, settings)

    assert SECRET_KEY not in output
    # The keys reached the JVM (the lake was read) without its command line.
    assert report["secret_in_command_lines"] is False
    assert report["conf"] == {
        "spark.hadoop.fs.s3a.endpoint": f"http://{minio.endpoint}",
        "spark.hadoop.fs.s3a.path.style.access": "true",
        "spark.delta.logStore.s3a.impl": "io.delta.storage.S3SingleDriverLogStore",
    }
    # Silver, as Spark read it back through s3a://.
    silver = {r["message_id"]: r for r in report["silver"]}
    assert sorted(silver) == ["m1", "m2", "m3", "m4", "m5", "m6", "m7"]
    assert {m: (r["sensor_id"], r["date"]) for m, r in silver.items() if m != "m5"} == {
        "m1": ("t-1", DAY.isoformat()),
        "m2": ("t-1", DAY.isoformat()),
        "m3": ("t-2", DAY.isoformat()),
        "m4": ("t-1", DAY.isoformat()),
        "m6": ("t-1", DAY.isoformat()),
        "m7": ("t-1", OLD.isoformat()),
    }
    assert silver["m2"]["numeric"] == {"temperature": 22.0, "humidity": 50.0}
    assert silver["m2"]["event_time"] == f"{DAY.isoformat()}T10:00:40"  # session time zone UTC
    assert silver["m3"]["numeric"] == {"temperature": 30.0}
    assert silver["m5"]["payload_kind"] == "non_json" and silver["m5"]["fields"] == {}
    assert {r["ingestion_id"] for r in silver.values()} == {DS}

    # Gold, as Spark read it back: exact window statistics.
    gold = {(g["window_start"], g["sensor_id"], g["field"]): g for g in report["gold"]}
    stats = {k: (g["avg"], g["min"], g["max"], g["count"]) for k, g in gold.items()}
    day_10, old_10 = f"{DAY.isoformat()}T10:00:00", f"{OLD.isoformat()}T10:00:00"
    assert stats == {
        (day_10, "t-1", "temperature"): (21.0, 20.0, 22.0, 2),
        (day_10, "t-1", "humidity"): (50.0, 50.0, 50.0, 1),
        (day_10, "t-2", "temperature"): (30.0, 30.0, 30.0, 1),
        (f"{DAY.isoformat()}T10:01:00", "t-1", "temperature"): (26.0, 25.0, 27.0, 2),
        (old_10, "t-1", "temperature"): (5.0, 5.0, 5.0, 1),
    }

    # A store that is down fails within bounded time, with the reason.
    assert "Connection refused" in report["down"]["error"]
    assert report["down"]["seconds"] < 20, report["down"]

    storage_options = {
        "AWS_ENDPOINT_URL": f"http://{minio.endpoint}",
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_REGION": settings.s3.region,
        "AWS_ALLOW_HTTP": "true",
    }
    silver_uri = f"s3://{BUCKET}/{PREFIX}/silver/readings"

    # Maintenance (the `workbench maintain` job): retention, compaction, VACUUM on every table.
    results = {(r["table"], r["step"]): r for r in report["maintenance"]}
    assert [r for r in report["maintenance"] if r["error"]] == []
    retention = results[("silver/readings", "retention")]
    assert retention["rows_deleted"] == 1 and retention["files_removed"] == 1
    assert results[("gold/sensor_averages", "retention")]["rows_deleted"] == 1
    compaction = results[("silver/readings", "compact")]
    assert compaction["skipped"] is None
    assert compaction["files_after"] < compaction["files_before"], compaction
    vacuum = results[("silver/readings", "vacuum")]
    assert vacuum["files_removed"] == retention["files_removed"] + compaction["files_removed"]

    # An independent reader (delta-rs, through MinIO) sees what Spark saw less the expired row:
    # compaction moved rows between files without changing them.
    after = IndependentReader(silver_uri, storage_options=storage_options)
    rows = {r["message_id"]: r for r in after.to_pyarrow_table().to_pylist()}
    assert sorted(rows) == ["m1", "m2", "m3", "m4", "m5", "m6"]
    for mid, row in rows.items():
        event_time = row["event_time"] and row["event_time"].replace(tzinfo=None).isoformat()
        assert {
            "message_id": mid,
            "ingestion_id": row["ingestion_id"],
            "sensor_id": row["sensor_id"],
            "date": row["date"].isoformat(),
            "event_time": event_time,
            "fields": dict(row["fields"] or []),
            "numeric": dict(row["numeric"] or []),
            "payload_kind": row["payload_kind"],
        } == silver[mid]
    day_files = [f for f in after.files() if f"date={DAY.isoformat()}" in f]
    assert len(day_files) == 1  # compacted
    # VACUUM left exactly the files the table references in the bucket.
    client = minio.client()
    stored = {
        str(o.object_name).removeprefix(f"{PREFIX}/silver/readings/")
        for o in client.list_objects(BUCKET, prefix=f"{PREFIX}/silver/readings/", recursive=True)
        if str(o.object_name).endswith(".parquet") and "/_delta_log/" not in str(o.object_name)
    }
    assert stored == set(after.files())
    gold_after = IndependentReader(
        f"s3://{BUCKET}/{PREFIX}/gold/sensor_averages", storage_options=storage_options
    ).to_pyarrow_table()
    assert gold_after.num_rows == len(stats) - 1
    assert OLD not in {w.date() for w in gold_after.column("window_start").to_pylist()}
