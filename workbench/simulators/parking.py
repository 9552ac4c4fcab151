"""A parking garage occupancy sensor (served by the REST API simulator)."""

from __future__ import annotations

import random
from datetime import datetime
from typing import Any

from workbench.simulators.kinds import iso_z
from workbench.simulators.locations import location_of, rush_hour_factor


def parking_reading(
    index: int, sensor_id: str, now: datetime, rng: random.Random
) -> dict[str, Any]:
    """One reading: total, occupied and available spaces of one garage, busier in the day."""
    total = 80 + 40 * (index % 6)
    busy = rush_hour_factor(now.hour + now.minute / 60)
    occupied = int(min(total, max(0, round(total * (0.1 + 0.85 * busy) + rng.gauss(0, 4)))))
    return {
        "sensor_id": sensor_id,
        "timestamp": iso_z(now),
        "location": location_of(index),
        "total_spaces": total,
        "occupied_spaces": occupied,
        "available_spaces": total - occupied,
        "occupancy_percent": round(100 * occupied / total, 1),
    }
