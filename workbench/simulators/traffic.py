"""The traffic counter (seed payload shape): vehicles and speed on one road segment."""

from __future__ import annotations

import random
from datetime import datetime
from typing import Any

from workbench.simulators.kinds import iso_z
from workbench.simulators.locations import road_segment_of, rush_hour_factor


def congestion_level(vehicle_count: int, average_speed_kph: float) -> str:
    """``low``, ``moderate`` or ``high``, derived from speed first, then volume."""
    if average_speed_kph < 20 or vehicle_count > 160:
        return "high"
    if average_speed_kph < 35 or vehicle_count > 100:
        return "moderate"
    return "low"


def traffic_reading(
    index: int, sensor_id: str, now: datetime, rng: random.Random
) -> dict[str, Any]:
    """One reading: ``vehicle_count`` 5–200 and ``average_speed_kph`` 10–60, busier in rush
    hours, slower when busier; ``congestion`` derived from both."""
    busy = rush_hour_factor(now.hour + now.minute / 60)
    count = round(5 + 180 * busy + rng.gauss(0, 8))
    vehicle_count = int(min(200, max(5, count)))
    speed = 60 - 45 * (vehicle_count - 5) / 195 + rng.gauss(0, 3)
    average_speed_kph = round(min(60.0, max(10.0, speed)), 1)
    return {
        "sensor_id": sensor_id,
        "timestamp": iso_z(now),
        "road_segment": road_segment_of(index),
        "vehicle_count": vehicle_count,
        "average_speed_kph": average_speed_kph,
        "congestion": congestion_level(vehicle_count, average_speed_kph),
    }
