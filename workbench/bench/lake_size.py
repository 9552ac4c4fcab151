"""``workbench bench lake-size``: what one enrichment trigger costs as bronze grows.

For each size (10,000, 100,000 and 1,000,000 bronze files by default) a lake in a temporary
directory gets that many files, laid out as the ingest writes them: every ``FLUSH_SECONDS`` a
flush of ``DATASETS`` datasets, one file per dataset in the partition of its arrival hour,
named by one manifest entry; a new writer every day (an ingest restarted daily). Files are
hard links of one small Parquet file, so a million of them cost directory entries only.

Then the stream's reader (:class:`workbench.enrichment.bronze_source.ManifestStream`, the
object Spark calls) resumes at the end, as a caught-up engine after a restart does, and runs
``triggers`` triggers, each after one more live flush is recorded: the time of its
``latestOffset`` (the offsets a trigger asks for), of ``partitions`` (the batch's plan) and of
the lag one ``/metrics`` scrape computes. The lakes take turns trigger by trigger, so the
machine's noise falls on every size alike. Also the restart itself (a fresh reader finding its
place) and, for contrast, one walk over bronze: the least a listing source pays every trigger.
Spark's own round trip to the Python source is not in these times: it is the same at any size.

``figure`` = ``latestOffset`` p95 at the largest size, ``baseline`` = the same at the smallest
size, both in microseconds (the details are in milliseconds); ``ratio`` = figure / baseline (1:
the cost does not grow with the lake). Target: ``latestOffset`` p95 ≤ 50 ms at every size.
"""

from __future__ import annotations

import os
import resource
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
from tqdm import tqdm

from workbench.bench.delta_watch import percentile
from workbench.bench.harness import result
from workbench.core.settings import Settings
from workbench.enrichment.bronze_source import ManifestStream
from workbench.lake.manifest import ManifestEntry, ManifestFile, ManifestWriter, entry_path
from workbench.lake.manifest_reader import ManifestReader
from workbench.lake.storage import LocalStorage, encode_parquet

SIZES = (10_000, 100_000, 1_000_000)
TARGET_P95_MS = 50.0
DATASETS = 10
FLUSH_SECONDS = 10
#: Links per inode (ext4 allows 65,000).
LINKS_PER_FILE = 50_000
#: The lake's history starts this long before now (the last flush is about now).
START = datetime(2026, 1, 1, tzinfo=UTC)
ROWS = 40


def _ms(values: list[float]) -> dict[str, float]:
    """p50, p95 and max of ``values`` (seconds), in milliseconds."""
    p50, p95 = percentile(values, 50), percentile(values, 95)
    assert p50 is not None and p95 is not None, "no values"
    return {
        "p50": round(p50 * 1000, 3),
        "p95": round(p95 * 1000, 3),
        "max": round(max(values) * 1000, 3),
    }


def build_lake(root: Path, files: int, bar: Any = None) -> dict[str, int]:
    """Lay out ``files`` bronze files and their manifest under ``root`` (see the module).

    Returns:
        ``{writer: last sequence number}``: the end of the manifest.
    """
    template = encode_parquet(pa.table({"message_id": [f"m{i}" for i in range(ROWS)]}))
    source: Path | None = None
    end: dict[str, int] = {}
    flushes = -(-files // DATASETS)
    made = 0
    for flush in range(flushes):
        moment = START + timedelta(seconds=flush * FLUSH_SECONDS)
        writer = f"{int(moment.replace(hour=0, minute=0, second=0).timestamp() * 1e9):020d}-bench"
        seq = end.get(writer, -1) + 1
        named: list[ManifestFile] = []
        for dataset in range(min(DATASETS, files - made)):
            if made % LINKS_PER_FILE == 0:
                source = root / f"template-{made // LINKS_PER_FILE}.parquet"
                source.write_bytes(template)
            relative = (
                f"bronze/ingestion_id=ds-{dataset:02d}/date={moment.date().isoformat()}"
                f"/hour={moment.hour:02d}/part-{flush:08d}-{dataset:02d}.parquet"
            )
            target = root / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            assert source is not None
            os.link(source, target)
            named.append(ManifestFile(relative, ROWS, len(template)))
            made += 1
        entry = ManifestEntry(writer, seq, tuple(named), moment.timestamp())
        path = root / entry_path(writer, seq)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(entry.to_json())  # not fsynced: this lake is only read
        end[writer] = seq
        if bar is not None:
            bar.update(len(named))
    return end


def walk_seconds(bronze: Path) -> tuple[float, int]:
    """One recursive listing of bronze's data files: seconds and files seen."""
    started, seen = time.perf_counter(), 0
    stack = [str(bronze)]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    if not entry.name.startswith("_"):
                        stack.append(entry.path)
                elif entry.name.endswith(".parquet"):
                    seen += 1
    return time.perf_counter() - started, seen


class Probe:
    """A caught-up stream over one lake: restarted at the manifest's end, then triggered."""

    def __init__(self, root: Path, end: dict[str, int]) -> None:
        self.root = root
        started = time.perf_counter()
        self.stream = ManifestStream({"root": str(root), "maxFilesPerTrigger": "500"})
        self.stream.partitions(end, end)  # what Spark does first on a restart
        self.position = self.stream.latestOffset()
        self.restart_s = time.perf_counter() - started
        assert self.position == end, (self.position, end)
        self.writers = len(end) + 1
        self.live = ManifestWriter(LocalStorage(str(root)))  # today's ingest, its own writer
        self.scrapes = ManifestReader(LocalStorage(str(root)))  # the engine's lag reader
        self.template = next(root.glob("template-*.parquet"))
        self.latest: list[float] = []
        self.plans: list[float] = []
        self.lags: list[float] = []

    def trigger(self) -> None:
        """One live flush recorded, then one trigger: offsets, plan, commit, a lag scrape."""
        number = len(self.latest)
        now = datetime.now(UTC)
        named = []
        for dataset in range(DATASETS):
            relative = (
                f"bronze/ingestion_id=ds-{dataset:02d}/date={now.date().isoformat()}"
                f"/hour={now.hour:02d}/live-{number:06d}-{dataset:02d}.parquet"
            )
            (self.root / relative).parent.mkdir(parents=True, exist_ok=True)
            os.link(self.template, self.root / relative)
            named.append(ManifestFile(relative, ROWS, self.template.stat().st_size))
        self.live.record(named)

        t0 = time.perf_counter()
        offset = self.stream.latestOffset()
        t1 = time.perf_counter()
        planned = self.stream.partitions(self.position, offset)
        t2 = time.perf_counter()
        self.stream.commit(offset)
        pending = self.scrapes.pending(offset)
        t3 = time.perf_counter()
        assert offset[self.live.writer] == number, offset
        assert sum(len(p.paths) for p in planned) == DATASETS and pending.files == 0
        self.latest.append(t1 - t0)
        self.plans.append(t2 - t1)
        self.lags.append(t3 - t2)
        self.position = offset

    def summary(self) -> dict[str, Any]:
        return {
            "latest_offset_ms": _ms(self.latest),
            "partitions_ms": _ms(self.plans),
            "lag_ms": _ms(self.lags),
            "restart_ms": round(self.restart_s * 1000, 3),
            "writers": self.writers,
        }


def run(
    settings: Settings, *, sizes: tuple[int, ...] = SIZES, triggers: int = 200, **_: Any
) -> dict[str, Any]:
    """Run the benchmark (``settings`` is unused: the lakes are temporary)."""
    built: dict[int, dict[str, Any]] = {}
    probes: dict[int, Probe] = {}
    with tempfile.TemporaryDirectory(prefix="wb-lake-size-") as tmp:
        for size in sizes:
            root = Path(tmp) / f"lake-{size}"
            root.mkdir()
            started = time.perf_counter()
            with tqdm(total=size, desc=f"lake of {size:,} files", unit="file") as bar:
                end = build_lake(root, size, bar)
            build_s = time.perf_counter() - started
            listing_s, seen = walk_seconds(root / "bronze")
            assert seen == size, (seen, size)
            built[size] = {"listing_s": round(listing_s, 4), "build_s": round(build_s, 1)}
            probes[size] = Probe(root, end)
        # The lakes take turns, trigger by trigger: the machine's noise falls on all alike.
        for _ in tqdm(range(triggers), desc="triggers, the lakes in turn", unit="trigger"):
            for probe in probes.values():
                probe.trigger()
        per_size = {str(size): {**probes[size].summary(), **built[size]} for size in sizes}
    for name, row in per_size.items():
        tqdm.write(
            f"{int(name):>9,} files: latestOffset p95 {row['latest_offset_ms']['p95']:.3f} ms,"
            f" one listing of bronze {row['listing_s']:.2f} s"
        )
    smallest, largest = per_size[str(min(sizes))], per_size[str(max(sizes))]
    # In microseconds: the result rounds its figure to a tenth.
    figure = largest["latest_offset_ms"]["p95"] * 1000
    baseline = smallest["latest_offset_ms"]["p95"] * 1000
    met = all(s["latest_offset_ms"]["p95"] <= TARGET_P95_MS for s in per_size.values())
    return result(
        "lake-size",
        figure=figure,
        unit=f"µs (latestOffset p95 at {max(sizes):,} bronze files)",
        baseline=baseline,
        params={
            "sizes": list(sizes),
            "triggers": triggers,
            "datasets": DATASETS,
            "flush_seconds": FLUSH_SECONDS,
            "new_writer": "daily",
            "max_files_per_trigger": 500,
        },
        details={
            "sizes": per_size,
            "targets": {"latest_offset_p95_ms": TARGET_P95_MS, "met": met},
        },
        lost=0,
        peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    )
