"""The bronze lake of ``workbench bench enrich``: generated once per size, then reused.

Five datasets, one per sensor kind (temperature, air quality, smart bin, traffic, energy), built
with the simulators' own payload functions at a fixed start time and seed, so a given size always
yields the same files. Key spellings drift per sensor the way real fleets do (``sensor_id`` /
``sensorId`` / ``deviceId``; ``temperature`` / ``Temp`` / ``Temperature``; ``co`` beside
``carbon_monoxide_ppm``...), so the normalization rules have real work.

Rows go through the ingest path's own functions: :func:`build_envelopes` (event time parsed like
the connectors do), :func:`to_arrow` and :func:`partitions` (the bronze schema and the arrival-hour
split) and :class:`LocalStorage` (zstd, temp file, fsync, rename), in files of ``FILE_ROWS`` rows
per dataset, like the ingest service's ``flush_rows``.

A few readings are deliberately broken so the value rules drop or flag them; their counts are
computed here from the rule semantics (see :data:`ANOMALIES`) and stored in the manifest.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from workbench.connectors.envelope import Envelope, build_envelopes
from workbench.core.ids import ingestion_id
from workbench.ingest.bronze_writer import partitions, to_arrow
from workbench.lake.manifest import ManifestFile, ManifestWriter
from workbench.lake.storage import LocalStorage
from workbench.simulators.air_quality import air_quality_reading
from workbench.simulators.energy import energy_reading
from workbench.simulators.smart_bin import smart_bin_reading
from workbench.simulators.temperature import temperature_reading
from workbench.simulators.traffic import traffic_reading

#: Bump when the generated data changes: cached lakes of another version are regenerated.
GENERATOR_VERSION = 3
FILE_ROWS = 20_000
SENSORS_PER_KIND = 100
INTERVAL = timedelta(seconds=5)
START = datetime(2026, 1, 15, 8, 0, tzinfo=UTC)
SEED = 4
MANIFEST = "manifest.json"

Reading = Callable[[int, str, datetime, random.Random], dict[str, Any]]


@dataclass(frozen=True)
class Kind:
    """One generated dataset: the simulator payload function and the source name."""

    name: str
    prefix: str
    reading: Reading

    @property
    def ingestion_id(self) -> str:
        """The dataset id, as the ingest service would derive it for an MQTT source."""
        return ingestion_id(f"bench-{self.name}", "mqtt")


KINDS: tuple[Kind, ...] = (
    Kind("temperature", "temp", temperature_reading),
    Kind("air-quality", "air", air_quality_reading),
    Kind("smart-bin", "bin", smart_bin_reading),
    Kind("traffic", "traffic", traffic_reading),
    Kind("energy", "meter", energy_reading),
)

#: Broken readings, every n-th of a kind: ``kind -> (raw spellings, bad value, n, outcome)``.
#: ``drop`` rows are removed by a value rule (filter or validate with ``on_fail: drop``),
#: ``flag`` rows are kept and flagged. The benchmark's value rules are built to match.
ANOMALIES: dict[str, tuple[tuple[str, ...], float, int, str]] = {
    "temperature": (("temperature", "temp"), 999.0, 101, "drop"),
    "traffic": (("vehicle_count",), -1, 97, "drop"),
    "energy": (("power_kw", "powerkw"), 0.0, 89, "drop"),
    "air-quality": (("particulate_matter_2_5_ug_m3", "pm2_5"), -5.0, 113, "flag"),
}

_SENSOR_KEYS = ("sensor_id", "sensorId", "deviceId")
#: Older firmware of some kinds: ``canonical-looking raw key -> legacy spelling``.
_LEGACY = {
    "air-quality": {"carbon_monoxide_ppm": "co", "particulate_matter_2_5_ug_m3": "pm2_5"},
    "smart-bin": {"fill_level_percent": "fillLevel"},
    "energy": {"power_kw": "powerKw"},
}


def spell(kind: str, index: int, payload: dict[str, Any]) -> dict[str, Any]:
    """``payload`` with the key spellings sensor ``index`` of ``kind`` uses (stable per sensor)."""
    if kind == "temperature":
        # The simulator already alternates sensor_id/temperature and deviceId/Temp; a third
        # firmware capitalizes.
        if index % 4 == 2:
            payload["Temperature"] = payload.pop("temperature")
        return payload
    key = _SENSOR_KEYS[index % len(_SENSOR_KEYS)]
    out = {key if k == "sensor_id" else k: v for k, v in payload.items()}
    if index % 2 == 1:
        for old, legacy in _LEGACY.get(kind, {}).items():
            if old in out:
                out[legacy] = out.pop(old)
    return out


def _break(kind: str, seq: int, payload: dict[str, Any]) -> str | None:
    """Make the ``seq``-th reading of ``kind`` anomalous when due; returns its outcome."""
    spec = ANOMALIES.get(kind)
    if spec is None or seq % spec[2] != spec[2] - 1:
        return None
    spellings, bad, _every, outcome = spec
    for key in payload:
        if key.lower() in spellings:
            payload[key] = bad
            return outcome
    return None


def readings(
    records: int,
) -> Iterator[tuple[Kind, int, datetime, str, dict[str, Any], str | None]]:
    """``(kind, seq within kind, time, topic, payload, anomaly outcome)`` in publish order."""
    rng = random.Random(SEED)
    seqs = dict.fromkeys((k.name for k in KINDS), 0)
    produced, tick = 0, 0
    while produced < records:
        now = START + tick * INTERVAL
        for kind in KINDS:
            for index in range(SENSORS_PER_KIND):
                if produced >= records:
                    return
                sensor = f"{kind.prefix}-{index + 1:03d}"
                payload = spell(kind.name, index, kind.reading(index, sensor, now, rng))
                seq = seqs[kind.name]
                seqs[kind.name] = seq + 1
                outcome = _break(kind.name, seq, payload)
                yield kind, seq, now, f"sensors/{kind.name}/{sensor}", payload, outcome
                produced += 1
        tick += 1


def cache_dir(home: Path, records: int) -> Path:
    """Where the lake of ``records`` readings is cached under the workbench home."""
    return home / "bench" / f"enrich-bronze-{records}-v{GENERATOR_VERSION}"


def load_manifest(directory: Path) -> dict[str, Any] | None:
    """The manifest of a complete cached lake, or None when absent or of another version."""
    path = directory / MANIFEST
    if not path.exists():
        return None
    manifest: dict[str, Any] = json.loads(path.read_text())
    return manifest if manifest.get("version") == GENERATOR_VERSION else None


def generate(
    directory: Path,
    records: int,
    *,
    time_fields: list[str],
    progress: Callable[[int], None] = lambda _n: None,
) -> dict[str, Any]:
    """Write the bronze lake of ``records`` readings under ``directory/bronze``.

    Written into a sibling temporary directory and renamed into place with the manifest last,
    so an interrupted generation is never mistaken for a cached lake.

    Args:
        directory: the cache directory (:func:`cache_dir`).
        records: readings to generate, spread evenly over the five kinds.
        time_fields: the ingest service's event-time field names (settings).
        progress: called with the number of readings just written.

    Returns:
        The manifest: rows, files and bytes per dataset, anomaly counts by outcome and the
        message ids the value rules must drop.
    """
    tmp = directory.with_name(f".{directory.name}.{uuid.uuid4().hex[:8]}")
    storage = LocalStorage(str(tmp))
    buffers: dict[str, list[Envelope]] = {k.name: [] for k in KINDS}
    stats: dict[str, dict[str, Any]] = {
        k.name: {"ingestion_id": k.ingestion_id, "rows": 0, "files": 0, "bytes": 0} for k in KINDS
    }
    outcomes = {"drop": dict.fromkeys(ANOMALIES, 0), "flag": dict.fromkeys(ANOMALIES, 0)}
    dropped_ids: list[str] = []

    def flush(kind: Kind) -> None:
        rows = buffers[kind.name]
        if not rows:
            return
        stamp = rows[-1].received_at.strftime("%Y%m%dT%H%M%S%f")
        for (date, hour), table in partitions(to_arrow(rows)):
            path = (
                f"bronze/ingestion_id={kind.ingestion_id}/date={date}/hour={hour}/"
                f"part-{stamp}-{uuid.uuid4().hex[:12]}.parquet"
            )
            stats[kind.name]["bytes"] += storage.write_parquet(path, table)
            stats[kind.name]["files"] += 1
        stats[kind.name]["rows"] += len(rows)
        progress(len(rows))
        buffers[kind.name] = []

    try:
        for kind, seq, now, topic, payload, outcome in readings(records):
            message_id = f"{kind.prefix}-{seq:09d}"
            if outcome:
                outcomes[outcome][kind.name] += 1
                if outcome == "drop":
                    dropped_ids.append(message_id)
            body = json.dumps(payload, separators=(",", ":")).encode()
            buffers[kind.name] += build_envelopes(
                body,
                ingestion_id=kind.ingestion_id,
                source_type="mqtt",
                topic=topic,
                received_at=now + timedelta(milliseconds=150),
                time_fields=time_fields,
                message_id=message_id,
                meta={"qos": 1, "retain": False},
            )
            if len(buffers[kind.name]) >= FILE_ROWS:
                flush(kind)
        for kind in KINDS:
            flush(kind)
        manifest = {
            "version": GENERATOR_VERSION,
            "records": records,
            "start": START.isoformat(),
            "interval_seconds": INTERVAL.total_seconds(),
            "sensors_per_kind": SENSORS_PER_KIND,
            "datasets": stats,
            "anomalies": outcomes,
            "dropped_ids": dropped_ids,
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
        if directory.exists():
            shutil.rmtree(directory)
        os.replace(tmp, directory)
        return manifest
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def link_bronze(cached: Path, lake_root: Path, *, per_dataset: int | None = None) -> int:
    """Hard-link the cached bronze files into ``lake_root/bronze`` (copy across devices).

    Each run gets its own lake (fresh silver, checkpoints) over the very same bronze files.
    ``per_dataset`` links only the first files of each dataset (a warm-up lake).

    The linked files are named in the lake's bronze manifest, a few per entry like the ingest
    writer's flushes, so the enrichment finds them.

    Returns:
        Bronze files linked.
    """
    count = 0
    taken: dict[str, int] = {}
    linked: list[ManifestFile] = []
    for src in sorted((cached / "bronze").rglob("*.parquet")):
        dataset = src.relative_to(cached / "bronze").parts[0]
        if per_dataset is not None and taken.get(dataset, 0) >= per_dataset:
            continue
        taken[dataset] = taken.get(dataset, 0) + 1
        target = lake_root / "bronze" / src.relative_to(cached / "bronze")
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(src, target)
        except OSError:
            shutil.copy2(src, target)
        relative = target.relative_to(lake_root).as_posix()
        linked.append(
            ManifestFile(relative, pq.read_metadata(target).num_rows, target.stat().st_size)
        )
        count += 1
    writer = ManifestWriter(LocalStorage(str(lake_root)))
    for first in range(0, len(linked), len(KINDS)):
        writer.record(linked[first : first + len(KINDS)])
    return count
