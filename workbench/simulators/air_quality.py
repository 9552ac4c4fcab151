"""The air quality sensor (seed payload shape): CO, NO2 and PM2.5 at a fixed location."""

from __future__ import annotations

import random
from datetime import datetime
from typing import Any

from workbench.simulators.kinds import iso_z
from workbench.simulators.locations import location_of, rush_hour_factor


def air_quality_reading(
    index: int, sensor_id: str, now: datetime, rng: random.Random
) -> dict[str, Any]:
    """One reading; pollution follows traffic (rush hours), with sensor-specific offsets.

    Ranges: ``carbon_monoxide_ppm`` 0.1–9, ``nitrogen_dioxide_ppm`` 0.005–0.25,
    ``particulate_matter_2_5_ug_m3`` 2–120.
    """
    busy = rush_hour_factor(now.hour + now.minute / 60)
    site = 1 + (index % 5) * 0.15
    co = 0.3 + 3.5 * busy * site + rng.gauss(0, 0.15)
    no2 = 0.015 + 0.09 * busy * site + rng.gauss(0, 0.005)
    pm25 = 6 + 40 * busy * site + rng.gauss(0, 2.5)
    return {
        "sensor_id": sensor_id,
        "timestamp": iso_z(now),
        "carbon_monoxide_ppm": round(min(9.0, max(0.1, co)), 3),
        "nitrogen_dioxide_ppm": round(min(0.25, max(0.005, no2)), 4),
        "particulate_matter_2_5_ug_m3": round(min(120.0, max(2.0, pm25)), 1),
        "location": location_of(index),
    }
