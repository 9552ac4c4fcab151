"""The replay simulator: publishes a recorded dataset in its original order.

A recording is NDJSON: a header line ``{"recording": {...}}`` describing it, then one line per
message ``{"topic": ..., "offset_seconds": ..., "payload": {...}}`` in arrival order (see
:mod:`workbench.simulators.recorder`). Topics keep their recorded path under the configured
prefix. Timing is preserved scaled by ``replay_speed`` (0: as fast as possible). Payload
timestamps (ISO ``timestamp`` or epoch-millisecond ``ts``) are shifted so the recording happens
now, or kept as recorded.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

from workbench.core.clock import utcnow
from workbench.core.errors import ConfigError
from workbench.core.settings import Settings
from workbench.simulators.edge_buffer import OutgoingMessage, open_edge_buffer
from workbench.simulators.kinds import iso_z
from workbench.simulators.publisher import EdgePublisher, SimulatorReport

log = logging.getLogger(__name__)

BATCH = 200
"""Records queued at once when replaying as fast as possible."""


@dataclass(frozen=True)
class RecordedMessage:
    """One recorded message.

    Attributes:
        topic: the topic it arrived on.
        offset_seconds: arrival time after the first message of the recording.
        payload: the decoded JSON payload.
    """

    topic: str
    offset_seconds: float
    payload: dict[str, Any]


def read_recording(path: Path | None = None) -> list[RecordedMessage]:
    """The messages of a recording (default: the packaged one), in recorded order.

    Raises:
        ConfigError: the file is missing or not a recording.
    """
    try:
        if path is None:
            text = (
                resources.files("workbench.simulators") / "data" / "recorded_readings.ndjson"
            ).read_text(encoding="utf-8")
        else:
            text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"cannot read the replay recording {path}: {err}") from err
    messages = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            if "recording" in item:
                continue
            messages.append(
                RecordedMessage(item["topic"], float(item["offset_seconds"]), item["payload"])
            )
        except (ValueError, KeyError, TypeError) as err:
            raise ConfigError(
                f"{path or 'recording'} line {number} is not a recorded message"
            ) from err
    return messages


def shift_timestamps(payload: dict[str, Any], delta: timedelta) -> dict[str, Any]:
    """``payload`` with its ``timestamp`` (ISO 8601) and ``ts`` (epoch ms) moved by ``delta``."""
    shifted = dict(payload)
    stamp = payload.get("timestamp")
    if isinstance(stamp, str):
        # An unparsable time is replayed as recorded: the ingest side counts it.
        with suppress(ValueError):
            shifted["timestamp"] = iso_z(datetime.fromisoformat(stamp) + delta)
    ts = payload.get("ts")
    if isinstance(ts, int | float) and not isinstance(ts, bool):
        shifted["ts"] = int(ts + delta.total_seconds() * 1000)
    return shifted


def event_time(payload: dict[str, Any]) -> datetime | None:
    """The payload's own time (``timestamp`` ISO or ``ts`` epoch ms), if it has one."""
    stamp = payload.get("timestamp")
    if isinstance(stamp, str):
        try:
            return datetime.fromisoformat(stamp)
        except ValueError:
            return None
    ts = payload.get("ts")
    if isinstance(ts, int | float) and not isinstance(ts, bool):
        return datetime.fromtimestamp(ts / 1000, tz=utcnow().tzinfo)
    return None


def replay_topic(topic: str, prefix: str) -> str:
    """The recorded topic with its first level replaced by ``prefix``."""
    _, _, rest = topic.partition("/")
    return f"{prefix}/{rest}" if rest else f"{prefix}/{topic}"


def run_replay(
    settings: Settings, *, limit: int | None = None, stop: threading.Event | None = None
) -> SimulatorReport:
    """Publish the recording once, in order, through the edge buffer.

    Args:
        settings: broker and simulator settings (``replay_*``).
        limit: publish only the first ``limit`` records.
        stop: set to stop early.

    Returns:
        What the replay published.
    """
    sim = settings.simulator
    stop = stop or threading.Event()
    records = read_recording(Path(sim.replay_file) if sim.replay_file else None)[:limit]
    delta = timedelta(0)
    if sim.replay_shift_timestamps and records:
        times = [t for t in (event_time(r.payload) for r in records) if t is not None]
        if times:
            # The first record lands now (the last one, when replaying as fast as possible).
            anchor = times[-1] if sim.replay_speed == 0 else times[0]
            delta = utcnow() - anchor
    buffer = open_edge_buffer(settings, "replay")
    generated = 0
    log.info("replay started records=%s speed=%s shift=%s", len(records), sim.replay_speed, delta)
    try:
        with EdgePublisher(settings, buffer, client_id="wb-sim-replay", stop=stop) as out:
            started = time.monotonic()
            step = BATCH if sim.replay_speed == 0 else 1
            for start in range(0, len(records), step):
                batch = records[start : start + step]
                if sim.replay_speed > 0:
                    out.idle_until(started + batch[0].offset_seconds / sim.replay_speed)
                if stop.is_set():
                    break
                out.send([to_message(r, sim.topic_prefix, delta) for r in batch])
                generated += len(batch)
        report = out.report(generated)
    finally:
        buffer.close()
    log.info(
        "replay stopped generated=%s acknowledged=%s pending=%s",
        report.generated,
        report.acknowledged,
        report.pending,
    )
    return report


def to_message(record: RecordedMessage, prefix: str, delta: timedelta) -> OutgoingMessage:
    """The message to publish for ``record``."""
    payload = record.payload
    if delta:
        payload = shift_timestamps(payload, delta)
    sensor = str(payload.get("sensor_id") or payload.get("deviceId") or record.topic)
    return OutgoingMessage(sensor, replay_topic(record.topic, prefix), payload)
