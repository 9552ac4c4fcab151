"""``workbench simulate``: picks the simulator for a kind and runs it until stopped.

Sensor kinds (temperature, air-quality, smart-bin, traffic) publish one reading per sensor each
interval through the on-disk edge buffer; ``replay`` publishes the recorded dataset; ``rest-api``
serves readings over HTTP for the REST poller.
"""

from __future__ import annotations

import logging
import random
import signal
import threading
import time
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from workbench.core.clock import utcnow
from workbench.core.errors import ConfigError
from workbench.core.settings import Settings, SimulatorSettings
from workbench.simulators.edge_buffer import (
    EdgeBufferStats,
    OutgoingMessage,
    open_edge_buffer,
)
from workbench.simulators.kinds import SensorKind, build_mqtt_kinds, sensor_ids
from workbench.simulators.publisher import EdgePublisher, SimulatorReport

log = logging.getLogger(__name__)

SERVICE_KINDS = ("replay", "rest-api")
"""Simulators that are not a sensor kind."""


def known_kinds() -> list[str]:
    """Every simulator ``workbench simulate --kind`` accepts."""
    return [*build_mqtt_kinds().names(), *SERVICE_KINDS]


def read_edge_stats(settings: Settings, kind: str) -> EdgeBufferStats:
    """Pending and dropped counts of a simulator's edge buffer (works while it runs)."""
    buffer = open_edge_buffer(settings, kind, lock=False)
    try:
        return buffer.stats()
    finally:
        buffer.close()


def with_overrides(settings: Settings, overrides: Mapping[str, Any] | None) -> Settings:
    """``settings`` with some simulator settings replaced (command-line options), validated.

    Raises:
        ConfigError: an override is invalid.
    """
    values = {k: v for k, v in (overrides or {}).items() if v is not None}
    if not values:
        return settings
    try:
        sim = SimulatorSettings.model_validate({**settings.simulator.model_dump(), **values})
    except ValidationError as err:
        raise ConfigError(f"invalid simulator option: {err}") from err
    return settings.model_copy(update={"simulator": sim})


def run_simulator(
    settings: Settings,
    *,
    kind: str = "temperature",
    count: int | None = None,
    overrides: Mapping[str, Any] | None = None,
    stop: threading.Event | None = None,
) -> int:
    """Run one simulator until ``count`` is reached, ``stop`` is set or SIGINT/SIGTERM.

    Args:
        settings: broker address and simulator settings.
        kind: a sensor kind, ``replay`` or ``rest-api`` (see :func:`known_kinds`).
        count: readings per sensor (sensor kinds) or records (replay); None: until stopped.
        overrides: simulator settings to replace, e.g. from command-line options.
        stop: set to stop (the default stops on SIGTERM when run on the main thread).

    Returns:
        Messages generated (0 for ``rest-api``).

    Raises:
        ConfigError: unknown kind (listing the known ones) or invalid option.
    """
    mqtt_kinds = build_mqtt_kinds()
    name = kind.replace("_", "-")
    if name not in mqtt_kinds and name not in SERVICE_KINDS:
        raise ConfigError(f"unknown simulator {kind!r}; known: {', '.join(known_kinds())}")
    settings = with_overrides(settings, overrides)
    if name == "rest-api":
        from workbench.simulators.rest_api import run_rest_api

        run_rest_api(settings)
        return 0
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        if name == "replay":
            from workbench.simulators.replay import run_replay

            report = run_replay(settings, limit=count, stop=stop)
        else:
            report = run_sensor_simulator(settings, mqtt_kinds.get(name), count=count, stop=stop)
    except KeyboardInterrupt:
        return 0
    return report.generated


def run_sensor_simulator(
    settings: Settings,
    kind: SensorKind,
    *,
    count: int | None = None,
    stop: threading.Event | None = None,
) -> SimulatorReport:
    """Publish one reading per sensor each interval through the edge buffer.

    Args:
        settings: broker and simulator settings.
        kind: the sensor kind.
        count: rounds (readings per sensor); None: until ``stop``.
        stop: set to stop.
    """
    sim = settings.simulator
    stop = stop or threading.Event()
    ids = sensor_ids(sim.sensors, kind.id_prefix)
    rng = random.Random(sim.seed)
    buffer = open_edge_buffer(settings, kind.name)
    generated = 0
    log.info(
        "simulator started kind=%s sensors=%s broker=%s:%s buffered=%s",
        kind.name,
        len(ids),
        settings.mqtt.host,
        settings.mqtt.port,
        buffer.pending,
    )
    try:
        with EdgePublisher(settings, buffer, client_id=f"wb-sim-{kind.name}", stop=stop) as out:
            rounds = 0
            next_round = time.monotonic()
            while not stop.is_set() and (count is None or rounds < count):
                now = utcnow()
                out.send(
                    [
                        OutgoingMessage(
                            sensor,
                            f"{sim.topic_prefix}/{kind.name}/{sensor}",
                            kind.make_reading(index, sensor, now, rng),
                        )
                        for index, sensor in enumerate(ids)
                    ]
                )
                generated += len(ids)
                rounds += 1
                # A late round (broker stall, slow disk) starts the clock again instead of
                # bursting to catch up.
                next_round = max(next_round + sim.interval_seconds, time.monotonic())
                if count is None or rounds < count:
                    out.idle_until(next_round)
        report = out.report(generated)
    finally:
        buffer.close()
    log.info(
        "simulator stopped kind=%s generated=%s acknowledged=%s dropped=%s pending=%s",
        kind.name,
        report.generated,
        report.acknowledged,
        report.dropped,
        report.pending,
    )
    return report
