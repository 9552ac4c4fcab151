"""The lake browser on a local lake: listing, sizes, ages, previews, errors, and its widget."""

from __future__ import annotations

import io
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.fixtures.services import make_settings
from workbench.core.errors import StorageError, is_transient
from workbench.core.settings import Settings
from workbench.lake.browser import (
    LakeBrowser,
    LakeFileError,
    LakeNotFoundError,
    read_first_rows,
)
from workbench.widgets.lake_browser import build_lake_browser, format_bytes

NOW = datetime(2024, 5, 2, 12, 0, tzinfo=UTC)
A7 = "bronze/ingestion_id=src-a/date=2024-05-01/hour=07"
A8 = "bronze/ingestion_id=src-a/date=2024-05-01/hour=08"
B0 = "bronze/ingestion_id=src-b/date=2024-05-02/hour=00"


def readings(n: int, start: int = 0) -> pa.Table:
    return pa.table(
        {
            "message_id": [f"m{i}" for i in range(start, start + n)],
            "payload": [f'{{"temperature": {i}}}' for i in range(start, start + n)],
        }
    )


def put(root: Path, relative: str, table: pa.Table, *, minutes_ago: float) -> int:
    """Write ``table`` under the lake root with its mtime ``minutes_ago`` before NOW."""
    target = root / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, target)
    stamp = (NOW - timedelta(minutes=minutes_ago)).timestamp()
    os.utime(target, (stamp, stamp))
    return target.stat().st_size


@pytest.fixture
def lake(settings: Settings) -> dict[str, int]:
    """A small lake; returns the size of every visible data file by path."""
    root = Path(settings.lake.root)
    sizes = {
        f"{A7}/part-1.parquet": put(root, f"{A7}/part-1.parquet", readings(10), minutes_ago=90),
        f"{A7}/part-2.parquet": put(root, f"{A7}/part-2.parquet", readings(5, 10), minutes_ago=30),
        f"{A8}/part-3.parquet": put(root, f"{A8}/part-3.parquet", readings(3), minutes_ago=10),
        f"{B0}/part-4.parquet": put(root, f"{B0}/part-4.parquet", readings(7), minutes_ago=2),
        "silver/readings/date=2024-05-01/part-0.parquet": put(
            root, "silver/readings/date=2024-05-01/part-0.parquet", readings(4), minutes_ago=5
        ),
    }
    # Invisible: a bronze file being written, a Delta log, internal folders.
    put(root, f"{A7}/.part-5.parquet.1a2b3c4d.tmp", readings(100), minutes_ago=0)
    (root / "silver/readings/_delta_log").mkdir(parents=True)
    (root / "silver/readings/_delta_log/00000000000000000000.json").write_text("{}")
    put(root, "_checkpoints/enrich/offsets.parquet", readings(1), minutes_ago=1)
    put(root, "_spill/000000000001.x.parquet", readings(1), minutes_ago=1)
    return sizes


@pytest.fixture
def browser(settings: Settings) -> LakeBrowser:
    return LakeBrowser(settings, clock=lambda: NOW)


def test_layers_count_visible_data_files_only(browser: LakeBrowser, lake: dict[str, int]) -> None:
    by_layer = {s.layer: s for s in browser.layers()}

    bronze = [size for path, size in lake.items() if path.startswith("bronze/")]
    assert (by_layer["bronze"].files, by_layer["bronze"].bytes) == (4, sum(bronze))
    assert by_layer["bronze"].newest_modified == NOW - timedelta(minutes=2)
    assert (by_layer["silver"].files, by_layer["silver"].bytes) == (
        1,
        lake["silver/readings/date=2024-05-01/part-0.parquet"],
    )
    assert (by_layer["gold"].files, by_layer["gold"].bytes, by_layer["gold"].newest_modified) == (
        0,
        0,
        None,
    )


def test_bronze_partitions_with_sizes_and_ages(browser: LakeBrowser, lake: dict[str, int]) -> None:
    partitions = browser.partitions()

    assert [(p.ingestion_id, p.date, p.hour) for p in partitions] == [
        ("src-a", "2024-05-01", "07"),
        ("src-a", "2024-05-01", "08"),
        ("src-b", "2024-05-02", "00"),
    ]
    a7 = partitions[0]
    assert a7.path == A7
    assert a7.files == 2  # the .tmp file is in progress: not shown
    assert a7.bytes == lake[f"{A7}/part-1.parquet"] + lake[f"{A7}/part-2.parquet"]
    assert (a7.oldest_age, a7.newest_age) == (timedelta(minutes=90), timedelta(minutes=30))
    assert a7.oldest_modified == NOW - timedelta(minutes=90)

    only_b = browser.partitions("bronze", ingestion_id="src-b")
    assert [p.path for p in only_b] == [B0]
    assert browser.partitions("bronze", ingestion_id="nobody") == []
    assert [p.values for p in browser.partitions("silver")] == [{"date": "2024-05-01"}]


def test_files_of_a_partition(browser: LakeBrowser, lake: dict[str, int]) -> None:
    files = browser.files(partition=A7)

    assert [f.name for f in files] == ["part-1.parquet", "part-2.parquet"]
    assert [f.size for f in files] == [lake[f.path] for f in files]
    assert [f.age for f in files] == [timedelta(minutes=90), timedelta(minutes=30)]
    assert {f.partition for f in files} == {A7}
    assert browser.files(partition=browser.partitions()[2]) == browser.files(ingestion_id="src-b")
    assert len(browser.files()) == 4
    assert len(browser.files("silver")) == 1


def test_preview_returns_the_first_rows(
    browser: LakeBrowser, lake: dict[str, int], settings: Settings
) -> None:
    path = f"{A7}/part-2.parquet"

    assert browser.preview(path, rows=3).to_pylist() == readings(3, 10).to_pylist()
    assert browser.preview(path).num_rows == 5  # fewer rows than asked: the whole file
    assert browser.preview(path, rows=0).schema == readings(1).schema
    assert browser.preview(path, rows=2, columns=["payload"]).column_names == ["payload"]
    # A path starting with the lake root, as a user may copy it, is accepted.
    assert browser.preview(f"{settings.lake.root}/{path}", rows=1).num_rows == 1
    assert browser.schema(path) == readings(1).schema


def big_table(rows: int) -> pa.Table:
    return pa.table(
        {
            "message_id": [f"m{i:08d}" for i in range(rows)],
            "payload": [os.urandom(64).hex() for _ in range(rows)],
        }
    )


class CountingFile(io.RawIOBase):
    """An in-memory file that counts the bytes read from it."""

    def __init__(self, data: bytes) -> None:
        super().__init__()
        self.data, self.pos, self.bytes_read = data, 0, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self.pos = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: len(self.data)}[whence]
        self.pos += offset
        return self.pos

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        chunk = self.data[self.pos : self.pos + len(buffer)]
        memoryview(buffer)[: len(chunk)] = chunk
        self.pos += len(chunk)
        self.bytes_read += len(chunk)
        return len(chunk)


def test_first_rows_of_one_big_row_group_read_a_small_part() -> None:
    # Bronze files have a single row group: reading it whole would read the whole file.
    table = big_table(60_000)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    data = sink.getvalue().to_pybytes()
    source = CountingFile(data)

    first = read_first_rows(source, 20)

    assert pq.ParquetFile(io.BytesIO(data)).metadata.num_row_groups == 1
    assert first.to_pylist() == table.slice(0, 20).to_pylist()
    assert len(data) > 3_000_000
    assert source.bytes_read < len(data) / 3, (source.bytes_read, len(data))


def test_first_rows_span_several_small_row_groups() -> None:
    table = big_table(100)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, row_group_size=8)

    first = read_first_rows(pa.BufferReader(sink.getvalue()), 20)

    assert first.to_pylist() == table.slice(0, 20).to_pylist()


def test_errors_say_what_is_missing_and_what_to_do(
    browser: LakeBrowser, lake: dict[str, int], settings: Settings, tmp_path: Path
) -> None:
    with pytest.raises(LakeNotFoundError, match=r"no file .*part-9.*LakeBrowser.files\(\)"):
        browser.preview(f"{A7}/part-9.parquet")
    with pytest.raises(LakeNotFoundError, match=r"'\.\.' components are refused"):
        browser.preview("bronze/../../etc/passwd")
    with pytest.raises(LakeNotFoundError, match="hidden"):
        browser.preview(f"{A7}/.part-5.parquet.1a2b3c4d.tmp")
    with pytest.raises(LakeNotFoundError, match="choose one of bronze, silver, gold"):
        browser.partitions("platinum")  # type: ignore[arg-type]
    (Path(settings.lake.root) / "bronze/notes.parquet").write_text("not parquet")
    with pytest.raises(LakeFileError, match="not a readable Parquet file") as info:
        browser.schema("bronze/notes.parquet")
    # Reading the same bytes again cannot help: not a transient storage error.
    assert not isinstance(info.value, StorageError)
    assert not is_transient(info.value) and info.value.status == 422

    missing = LakeBrowser(make_settings(tmp_path, lake={"root": str(tmp_path / "nope")}))
    with pytest.raises(LakeNotFoundError, match=r"does not exist.*WORKBENCH__LAKE__ROOT") as info:
        missing.layers()
    assert info.value.code == "lake_not_found"
    assert not is_transient(info.value) and info.value.status == 404


def test_widget_shows_the_newest_file_of_the_newest_partition(
    settings: Settings, lake: dict[str, int]
) -> None:
    widget = build_lake_browser(settings, rows=4)

    assert widget.message == ""
    assert "bronze</b>: 4 files" in widget.summary.value
    assert [value for _, value in widget.partitions.options] == [A7, A8, B0]
    assert widget.partitions.value == B0
    assert widget.files.value == f"{B0}/part-4.parquet"
    assert widget.preview_table is not None
    assert widget.preview_table.to_pylist() == readings(4).to_pylist()
    assert "m3" in widget.preview.value and "<table" in widget.preview.value

    widget.partitions.value = A7
    assert [value for _, value in widget.files.options] == [
        f"{A7}/part-1.parquet",
        f"{A7}/part-2.parquet",
    ]
    widget.files.value = f"{A7}/part-1.parquet"
    assert widget.preview_table.column("message_id").to_pylist() == ["m0", "m1", "m2", "m3"]

    widget.layer.value = "silver"
    assert widget.partitions.value == "silver/readings/date=2024-05-01"
    assert widget.preview_table.num_rows == 4

    widget.layer.value = "gold"
    assert widget.partitions.options == ()
    assert widget.preview_table is None
    assert "no data files in gold" in widget.preview.value


def test_widget_shows_errors_instead_of_raising(settings: Settings, tmp_path: Path) -> None:
    widget = build_lake_browser(settings)  # the lake does not exist yet

    assert "cannot list the lake" in widget.message
    assert "does not exist" in widget.status.value
    assert widget.partitions.options == ()

    put(Path(settings.lake.root), f"{A8}/part-3.parquet", readings(3), minutes_ago=1)
    widget.refresh_button.click()
    assert widget.message == ""
    assert widget.preview_table is not None and widget.preview_table.num_rows == 3

    Path(settings.lake.root, f"{A8}/part-3.parquet").write_text("garbage")
    widget.files.value = None
    widget.files.value = f"{A8}/part-3.parquet"
    assert "cannot preview the file" in widget.message
    assert widget.preview_table is None


def test_format_bytes() -> None:
    assert [format_bytes(n) for n in (812, 4_200, 3_100_000, 10**12)] == [
        "812 B",
        "4.2 kB",
        "3.1 MB",
        "1000.0 GB",
    ]
