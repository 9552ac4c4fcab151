"""``workbench bench lake-size``: what the enrichment costs as bronze grows.

For each size (10,000, 100,000 and 1,000,000 bronze files by default) a lake in a temporary
directory gets that many files, laid out as the ingest writes them: every ``FLUSH_SECONDS`` a
flush of ``DATASETS`` datasets, one file per dataset in the partition of its arrival hour,
named by one manifest entry; a new writer every day (an ingest restarted daily). Files are
hard links of one small Parquet file, so a million of them cost directory entries only.

The engine must stand at the end of that history, as on a lake that has run for months, without
reading a million files first. So the entries are written empty, a real enrichment drains them
(``python -m workbench.bench.lake_size catch-up``: its checkpoint passes every entry), and only
then do the files appear and the entries name them.

Then, per size, the latency run (:func:`workbench.bench.sensor_latency.latency_run`: the whole
stack, ``rate`` readings a second for ``seconds``): sensor → silver and → gold p95, and the
``latestOffset`` p50/p95 of the enrichment's batches as Spark reports them. Last, with the
services stopped, the stream's reader alone (:class:`Probe`) on every lake in turn, trigger by
trigger, so the machine's noise falls on every size alike: ``latestOffset``, the batch plan and
the lag a ``/metrics`` scrape computes, beside one walk over bronze (the least a listing source
pays every trigger).

``figure`` = Spark's ``latestOffset`` p95 at the largest size, ``baseline`` = the same at the
smallest, both in milliseconds; ``ratio`` = figure / baseline (1: the cost does not grow with the
lake). Targets at every size: ``latestOffset`` p95 ≤ 50 ms, silver p95 ≤ 5 s, gold p95 ≤ 15 s.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
from tqdm import tqdm

from workbench.bench.delta_watch import percentile
from workbench.bench.harness import ROOT, mosquitto_version, result
from workbench.bench.sensor_latency import bench_settings, latency_run, register_devices
from workbench.core.settings import Settings, ensure_local_dirs, load_settings
from workbench.enrichment.bronze_source import ManifestStream
from workbench.lake.manifest import ManifestEntry, ManifestFile, ManifestWriter, entry_path
from workbench.lake.manifest_reader import ManifestReader
from workbench.lake.storage import LocalStorage, encode_parquet
from workbench.stack.process import child_env

SIZES = (10_000, 100_000, 1_000_000)
TARGETS = {"latest_offset_p95_s": 0.05, "silver_p95_s": 5.0, "gold_p95_s": 15.0}
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


def plan_lake(files: int) -> list[ManifestEntry]:
    """The manifest entries of a lake of ``files`` bronze files (see the module)."""
    entries: list[ManifestEntry] = []
    last: dict[str, int] = {}
    for flush in range(-(-files // DATASETS)):
        moment = START + timedelta(seconds=flush * FLUSH_SECONDS)
        day = moment.replace(hour=0, minute=0, second=0)
        writer = f"{int(day.timestamp() * 1e9):020d}-bench"
        last[writer] = seq = last.get(writer, -1) + 1
        named = tuple(
            ManifestFile(
                f"bronze/ingestion_id=ds-{dataset:02d}/date={moment.date().isoformat()}"
                f"/hour={moment.hour:02d}/part-{flush:08d}-{dataset:02d}.parquet",
                ROWS,
                0,
            )
            for dataset in range(min(DATASETS, files - flush * DATASETS))
        )
        entries.append(ManifestEntry(writer, seq, named, moment.timestamp()))
    return entries


def end_of(entries: list[ManifestEntry]) -> dict[str, int]:
    """``{writer: last sequence number}`` of ``entries``."""
    end: dict[str, int] = {}
    for entry in entries:
        end[entry.writer] = max(end.get(entry.writer, -1), entry.seq)
    return end


def write_manifest(root: Path, entries: list[ManifestEntry], *, empty: bool = False) -> None:
    """Write ``entries`` under ``root`` (``empty``: naming no file). Not fsynced: a test lake."""
    made: set[Path] = set()
    for entry in entries:
        path = root / entry_path(entry.writer, entry.seq)
        if path.parent not in made:
            path.parent.mkdir(parents=True, exist_ok=True)
            made.add(path.parent)
        written = replace(entry, files=()) if empty else entry
        path.write_bytes(written.to_json())


def link_files(root: Path, entries: list[ManifestEntry], bar: Any = None) -> None:
    """Make every file ``entries`` name: hard links of one small Parquet file."""
    template = encode_parquet(pa.table({"message_id": [f"m{i}" for i in range(ROWS)]}))
    source, made = root / "template-0.parquet", 0
    folders: set[Path] = set()
    for entry in entries:
        for named in entry.files:
            if made % LINKS_PER_FILE == 0:
                source = root / f"template-{made // LINKS_PER_FILE}.parquet"
                source.write_bytes(template)
            target = root / named.path
            if target.parent not in folders:
                target.parent.mkdir(parents=True, exist_ok=True)
                folders.add(target.parent)
            os.link(source, target)
            made += 1
        if bar is not None:
            bar.update(len(entry.files))


def build_lake(root: Path, files: int, bar: Any = None) -> dict[str, int]:
    """A lake of ``files`` bronze files named in its manifest; returns the manifest's end."""
    entries = plan_lake(files)
    link_files(root, entries, bar)
    write_manifest(root, entries)
    return end_of(entries)


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


def catch_up(bench: Settings) -> None:
    """Drain the lake's manifest through a real enrichment, in a child process (its own JVM)."""
    done = subprocess.run(
        [sys.executable, "-m", "workbench.bench.lake_size", "catch-up"],
        env=child_env(bench),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"the catch-up enrichment failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
        )


def prepare(bench: Settings, size: int, bar: Any) -> dict[str, Any]:
    """Lay out the lake of ``bench`` with ``size`` files and put the enrichment at its end."""
    root = Path(bench.lake.root)
    root.mkdir(parents=True, exist_ok=True)
    entries = plan_lake(size)
    started = time.perf_counter()
    write_manifest(root, entries, empty=True)
    catch_up(bench)
    caught_up_s = time.perf_counter() - started
    started = time.perf_counter()
    link_files(root, entries, bar)
    write_manifest(root, entries)
    build_s = time.perf_counter() - started
    listing_s, seen = walk_seconds(root / "bronze")
    assert seen == size, (seen, size)
    return {
        "end": end_of(entries),
        "listing_s": round(listing_s, 4),
        "build_s": round(build_s, 1),
        "catch_up_s": round(caught_up_s, 1),
    }


def run(
    settings: Settings,
    *,
    sizes: tuple[int, ...] = SIZES,
    seconds: float = 60.0,
    rate: int = 1000,
    triggers: int = 200,
    **_: Any,
) -> dict[str, Any]:
    """Run the benchmark; return the result object."""
    rows: list[dict[str, Any]] = []
    probes: list[Probe] = []
    with tempfile.TemporaryDirectory(prefix="wb-lake-size-") as tmp:
        for size in sizes:
            bench = bench_settings(settings, Path(tmp) / f"lake-{size}")
            ensure_local_dirs(bench)
            devices = register_devices(bench)
            with tqdm(total=size, desc=f"lake of {size:,} files", unit="file") as bar:
                built = prepare(bench, size, bar)
            latency = latency_run(
                bench, seconds=seconds, rate=rate, devices=devices, label=f"{size:,} files: "
            )
            rows.append({**_row(size, built, latency), "history_in_silver": _history_rows(bench)})
            # The reader resumes past the history and what the latency run ingested.
            root = Path(bench.lake.root)
            manifest = ManifestReader(LocalStorage(str(root)))
            probes.append(Probe(root, manifest.end(built["end"])))
        for _ in tqdm(range(triggers), desc="the reader alone, the lakes in turn", unit="trigger"):
            for probe in probes:
                probe.trigger()
    for row, probe in zip(rows, probes, strict=True):
        row["reader"] = probe.summary()
        tqdm.write(
            f"{row['files']:>9,} files: latestOffset p95 {row['latest_offset_p95_s']} s in Spark,"
            f" {row['reader']['latest_offset_ms']['p95']:.3f} ms alone;"
            f" silver p95 {row['silver_p95_s']} s, gold p95 {row['gold_p95_s']} s;"
            f" one listing of bronze {row['listing_s']:.2f} s"
        )
    smallest, largest = rows[0], rows[-1]
    figure = (largest["latest_offset_p95_s"] or 0.0) * 1000
    baseline = (smallest["latest_offset_p95_s"] or 0.0) * 1000
    met = all(
        row["latest_offset_p95_s"] is not None
        and row["latest_offset_p95_s"] <= TARGETS["latest_offset_p95_s"]
        and row["silver_p95_s"] is not None
        and row["silver_p95_s"] <= TARGETS["silver_p95_s"]
        and row["gold_p95_s"] is not None
        and row["gold_p95_s"] <= TARGETS["gold_p95_s"]
        and row["lost"] == 0
        and row["history_in_silver"] == 0
        for row in rows
    )
    out = result(
        "lake-size",
        figure=figure,
        unit=f"ms (latestOffset p95 in Spark at {largest['files']:,} bronze files)",
        baseline=baseline,
        params={
            "sizes": list(sizes),
            "seconds": seconds,
            "rate": rate,
            "triggers": triggers,
            "datasets": DATASETS,
            "flush_seconds": FLUSH_SECONDS,
            "new_writer": "daily",
        },
        details={"targets": {**TARGETS, "met": met}},
        lost=sum(row["lost"] for row in rows),
        peak_rss_mb=max(row["jvm_peak_rss_mb"] for row in rows),
        extra_versions={"mosquitto": mosquitto_version()},
    )
    out["sizes"] = rows
    # result() rounds to 0.1; these are milliseconds.
    out["figure"], out["baseline"] = round(figure, 3), round(baseline, 3)
    return out


def _row(size: int, built: dict[str, Any], latency: dict[str, Any]) -> dict[str, Any]:
    """One size's figures from its lake and its latency run."""
    enrichment = latency["details"]["batch_profile"].get("enrichment", {})
    offsets = enrichment.get("seconds", {}).get("latestOffset", {})
    return {
        "files": size,
        "latest_offset_p50_s": offsets.get("p50"),
        "latest_offset_p95_s": offsets.get("p95"),
        "silver_p95_s": latency["silver_p95_s"],
        "gold_p95_s": latency["gold_p95_s"],
        "lost": latency["lost"],
        "enrichment_batches": enrichment.get("batches"),
        "load_avg_1m": latency["details"]["load_avg_1m"],
        "jvm_peak_rss_mb": latency["peak_rss_mb"],
        **{k: v for k, v in built.items() if k != "end"},
    }


def _history_rows(bench: Settings) -> int:
    """Silver rows from the history's datasets: 0 when the catch-up put the engine past them."""
    from deltalake import DeltaTable

    ids = DeltaTable(bench.lake.silver_readings).to_pyarrow_table(columns=["ingestion_id"])
    return sum(
        1 for value in ids.column("ingestion_id").to_pylist() if (value or "").startswith("ds-")
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m workbench.bench.lake_size catch-up``: the enrichment drains the manifest."""
    args = sys.argv[1:] if argv is None else argv
    if args != ["catch-up"]:
        print("usage: python -m workbench.bench.lake_size catch-up", file=sys.stderr)
        return 2
    from workbench.catalog.store import Catalog
    from workbench.enrichment.silver_stream import run_enrichment_once
    from workbench.spark.session import build_session

    settings = load_settings()
    spark = build_session(settings, app_name="lake-size-catch-up")
    catalog = Catalog(settings.catalog.url)
    try:
        run_enrichment_once(spark, settings, catalog)
    finally:
        catalog.close()
        spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
