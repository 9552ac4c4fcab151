"""A building energy meter (served by the REST API simulator)."""

from __future__ import annotations

import math
import random
from datetime import datetime
from typing import Any

from workbench.simulators.kinds import iso_z


def energy_reading(index: int, sensor_id: str, now: datetime, rng: random.Random) -> dict[str, Any]:
    """One reading: ``power_kw`` following a daily curve, ``voltage_v`` near 230,
    ``current_a`` derived, and ``energy_kwh_today`` integrated from midnight."""
    hour = now.hour + now.minute / 60
    base_kw = 20 + 10 * (index % 4)
    power = base_kw * (0.6 + 0.4 * math.sin((hour - 6) / 24 * 2 * math.pi)) + rng.gauss(0, 1)
    power_kw = round(max(0.5, power), 2)
    voltage = round(230 + rng.gauss(0, 2), 1)
    # The day's energy so far: the integral of the noise-free daily curve from midnight.
    day = 24 / (2 * math.pi)
    energy = base_kw * (0.6 * hour - 0.4 * day * math.cos((hour - 6) / day))
    return {
        "sensor_id": sensor_id,
        "timestamp": iso_z(now),
        "power_kw": power_kw,
        "voltage_v": voltage,
        "current_a": round(power_kw * 1000 / voltage / math.sqrt(3), 1),
        "energy_kwh_today": round(max(0.0, energy), 2),
    }
