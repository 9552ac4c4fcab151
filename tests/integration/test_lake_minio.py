"""The lake browser on a real MinIO: the same listing through s3a://, and ranged previews."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from minio import Minio

from tests.fixtures.minio import MinioServer
from tests.fixtures.services import make_settings
from workbench.core.settings import Settings
from workbench.lake.browser import LakeBrowser, LakeNotFoundError
from workbench.lake.s3 import S3Storage
from workbench.lake.storage import encode_parquet
from workbench.widgets.lake_browser import build_lake_browser

BUCKET, PREFIX = "lake-browser", "lake"
A7 = "bronze/ingestion_id=src-a/date=2024-05-01/hour=07"
B0 = "bronze/ingestion_id=src-b/date=2024-05-02/hour=00"


def readings(n: int, start: int = 0) -> pa.Table:
    return pa.table(
        {
            "message_id": [f"m{i:08d}" for i in range(start, start + n)],
            "payload": [os.urandom(64).hex() for _ in range(n)],
        }
    )


@pytest.fixture
def s3_settings(tmp_path: Path, minio: MinioServer) -> Settings:
    return make_settings(
        tmp_path, lake={"root": f"s3a://{BUCKET}/{PREFIX}"}, s3=minio.s3_settings()
    )


@pytest.fixture
def lake(s3_settings: Settings) -> dict[str, bytes]:
    """Objects written the way the bronze writer writes them; returns the visible ones."""
    store = S3Storage(s3_settings)
    visible = {
        f"{A7}/part-1.parquet": encode_parquet(readings(10)),
        f"{A7}/part-2.parquet": encode_parquet(readings(5, 10)),
        f"{B0}/part-3.parquet": encode_parquet(readings(7)),
        "gold/sensor_minute/part-0.parquet": encode_parquet(readings(2)),
    }
    hidden = {
        f"{A7}/.part-4.parquet.1a2b3c4d.tmp": encode_parquet(readings(100)),
        "gold/sensor_minute/_delta_log/00000000000000000000.json": b"{}",
        "_spill/000000000001.x.parquet": encode_parquet(readings(1)),
    }
    for path, data in {**visible, **hidden}.items():
        store.put_bytes(path, data)
    return visible


def test_listing_through_s3a(s3_settings: Settings, lake: dict[str, bytes]) -> None:
    browser = LakeBrowser(s3_settings)

    by_layer = {s.layer: (s.files, s.bytes) for s in browser.layers()}
    bronze = [len(d) for p, d in lake.items() if p.startswith("bronze/")]
    assert by_layer == {
        "bronze": (3, sum(bronze)),
        "silver": (0, 0),
        "gold": (1, len(lake["gold/sensor_minute/part-0.parquet"])),
    }
    partitions = browser.partitions()
    assert [(p.ingestion_id, p.date, p.hour, p.files) for p in partitions] == [
        ("src-a", "2024-05-01", "07", 2),
        ("src-b", "2024-05-02", "00", 1),
    ]
    assert partitions[0].bytes == len(lake[f"{A7}/part-1.parquet"]) + len(
        lake[f"{A7}/part-2.parquet"]
    )
    assert all(p.newest_age.total_seconds() < 300 for p in partitions)
    files = browser.files(partition=partitions[0])
    assert [(f.path, f.size) for f in files] == [
        (f"{A7}/part-1.parquet", len(lake[f"{A7}/part-1.parquet"])),
        (f"{A7}/part-2.parquet", len(lake[f"{A7}/part-2.parquet"])),
    ]
    assert [p.path for p in browser.partitions(ingestion_id="src-b")] == [B0]

    preview = browser.preview(f"{A7}/part-2.parquet", rows=3)
    assert preview.column("message_id").to_pylist() == ["m00000010", "m00000011", "m00000012"]
    assert browser.schema(f"{A7}/part-1.parquet").names == ["message_id", "payload"]
    assert build_lake_browser(s3_settings).preview_table is not None


def test_preview_of_a_large_object_reads_only_a_small_part(
    s3_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = readings(120_000)  # one row group, like every bronze file
    data = encode_parquet(big)
    path = f"{A7}/part-big.parquet"
    S3Storage(s3_settings).put_bytes(path, data)
    # Count at the client: every request's range and every byte the server sent back.
    requests: list[tuple[int, int]] = []
    received = [0]
    original = Minio.get_object

    def counting_get_object(self: Minio, bucket: str, name: str, **kwargs: Any) -> Any:
        requests.append((kwargs.get("offset", 0), kwargs.get("length", 0)))
        response = original(self, bucket, name, **kwargs)
        received[0] += int(response.headers["Content-Length"])
        return response

    monkeypatch.setattr(Minio, "get_object", counting_get_object)

    preview = LakeBrowser(s3_settings).preview(path, rows=20)

    assert preview.to_pylist() == big.slice(0, 20).to_pylist()
    assert len(data) > 7_000_000
    assert all(length > 0 for _, length in requests)  # ranged, never "the rest of the object"
    assert sum(length for _, length in requests) == received[0]
    assert received[0] < len(data) / 5, (received[0], len(data), requests)


def test_missing_bucket_and_object(s3_settings: Settings, lake: dict[str, bytes]) -> None:
    browser = LakeBrowser(s3_settings)
    with pytest.raises(LakeNotFoundError, match=r"no object 'lake/bronze/nope.parquet'"):
        browser.preview("bronze/nope.parquet")

    other = make_settings(
        Path(s3_settings.home), lake={"root": "s3a://no-such-bucket/x"}, s3=s3_settings.s3
    )
    with pytest.raises(LakeNotFoundError, match=r"bucket 'no-such-bucket'.*does not exist"):
        LakeBrowser(other).layers()
    widget = build_lake_browser(other)
    assert "does not exist" in widget.message
