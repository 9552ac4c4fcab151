"""The temperature sensor of the demo (seed payload shape), with mixed key spellings.

Even-numbered sensors speak ``sensor_id``/``temperature``/``humidity`` and ISO times; odd ones
speak ``deviceId``/``Temp``/``hum`` and epoch milliseconds, the way real fleets drift, so the
normalization rules have something to do.
"""

from __future__ import annotations

import math
import random
from datetime import datetime
from typing import Any


def temperature_reading(
    index: int, sensor_id: str, now: datetime, rng: random.Random
) -> dict[str, Any]:
    """One reading: temperature follows the hour of day within 5–35 °C, humidity 30–90 %."""
    hour = now.hour + now.minute / 60
    base = 20 + 15 * math.sin((hour - 9) / 24 * 2 * math.pi)
    temperature = round(min(35.0, max(5.0, base + index * 0.7 + rng.gauss(0, 0.4))), 2)
    humidity = round(min(90.0, max(30.0, 60 - (temperature - 20) * 1.5 + rng.gauss(0, 2))), 1)
    if index % 2 == 0:
        return {
            "sensor_id": sensor_id,
            "temperature": temperature,
            "humidity": humidity,
            "timestamp": now.isoformat().replace("+00:00", "Z"),
        }
    return {
        "deviceId": sensor_id,
        "Temp": temperature,
        "hum": humidity,
        "ts": int(now.timestamp() * 1000),
    }
