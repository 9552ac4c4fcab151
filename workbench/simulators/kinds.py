"""The registry of simulated sensor kinds: a name, an id prefix and a pure payload function."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from workbench.core.errors import ConfigError

ReadingFunction = Callable[[int, str, datetime, random.Random], dict[str, Any]]
"""``(sensor index, sensor id, now, rng) -> payload``; pure given the seeded ``rng``."""


@dataclass(frozen=True)
class SensorKind:
    """One kind of simulated sensor.

    Attributes:
        name: the kind as typed on the command line and used in topics (``air-quality``).
        id_prefix: sensor ids are ``<id_prefix>-001``, ``<id_prefix>-002``...
        make_reading: the pure payload function.
    """

    name: str
    id_prefix: str
    make_reading: ReadingFunction


def sensor_ids(count: int, prefix: str = "temp") -> list[str]:
    """Stable ids: the same settings give the same sensors on every start (no random, no uuid)."""
    return [f"{prefix}-{n:03d}" for n in range(1, count + 1)]


class KindRegistry:
    """Sensor kinds by name; ``get`` raises with the known names."""

    def __init__(self, kinds: Iterable[SensorKind] = ()) -> None:
        self._kinds: dict[str, SensorKind] = {}
        for kind in kinds:
            self.register(kind)

    def register(self, kind: SensorKind) -> None:
        """Add a kind.

        Raises:
            ConfigError: a kind of that name is already registered.
        """
        if kind.name in self._kinds:
            raise ConfigError(f"simulator kind {kind.name!r} is already registered")
        self._kinds[kind.name] = kind

    def get(self, name: str) -> SensorKind:
        """The kind called ``name`` (``_`` and ``-`` are interchangeable).

        Raises:
            ConfigError: unknown kind, listing the known ones.
        """
        key = name.replace("_", "-")
        if key not in self._kinds:
            raise ConfigError(
                f"unknown simulator {name!r}; known: {', '.join(self.names())}", kind=name
            )
        return self._kinds[key]

    def names(self) -> list[str]:
        """Registered kind names, in registration order."""
        return list(self._kinds)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.replace("_", "-") in self._kinds


def build_mqtt_kinds() -> KindRegistry:
    """The sensor kinds published to the broker (seed payload shapes)."""
    from workbench.simulators.air_quality import air_quality_reading
    from workbench.simulators.smart_bin import smart_bin_reading
    from workbench.simulators.temperature import temperature_reading
    from workbench.simulators.traffic import traffic_reading

    return KindRegistry(
        [
            SensorKind("temperature", "temp", temperature_reading),
            SensorKind("air-quality", "air", air_quality_reading),
            SensorKind("smart-bin", "bin", smart_bin_reading),
            SensorKind("traffic", "traffic", traffic_reading),
        ]
    )


def build_rest_kinds() -> KindRegistry:
    """The readings the REST API simulator serves (seed: temperature, air quality, traffic,
    parking and energy)."""
    from workbench.simulators.air_quality import air_quality_reading
    from workbench.simulators.energy import energy_reading
    from workbench.simulators.parking import parking_reading
    from workbench.simulators.temperature import temperature_reading
    from workbench.simulators.traffic import traffic_reading

    return KindRegistry(
        [
            SensorKind("temperature", "temp", temperature_reading),
            SensorKind("air-quality", "air", air_quality_reading),
            SensorKind("traffic", "traffic", traffic_reading),
            SensorKind("parking", "park", parking_reading),
            SensorKind("energy", "meter", energy_reading),
        ]
    )


def iso_z(now: datetime) -> str:
    """``now`` as ISO 8601 with a ``Z`` (the timestamp every payload carries)."""
    return now.isoformat().replace("+00:00", "Z")
