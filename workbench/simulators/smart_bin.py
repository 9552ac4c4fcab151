"""The smart waste bin (seed payload shape): fill level rising until collected.

The fill level is a pure function of the wall clock: each bin fills over its own cycle, sits full
(``needs_collection``) for the last tenth of it, then is emptied. A restarted simulator therefore
continues exactly where the bins were, with no state to persist.
"""

from __future__ import annotations

import random
from datetime import datetime
from typing import Any

from workbench.simulators.kinds import iso_z
from workbench.simulators.locations import location_of

COLLECTION_THRESHOLD_PERCENT = 85.0
"""Above this fill level a bin reports ``needs_collection``."""


def fill_cycle_seconds(index: int) -> int:
    """How long bin ``index`` takes from emptied to emptied again."""
    return 600 + 120 * (index % 7)


def smart_bin_reading(
    index: int, sensor_id: str, now: datetime, rng: random.Random
) -> dict[str, Any]:
    """One reading: ``fill_level_percent`` 0–100, ``status`` and ``location``."""
    cycle = fill_cycle_seconds(index)
    phase = (now.timestamp() + index * 97) % cycle
    fill = 100 * phase / (0.9 * cycle) + rng.gauss(0, 0.3)
    fill = round(min(100.0, max(0.0, fill)), 1)
    return {
        "sensor_id": sensor_id,
        "timestamp": iso_z(now),
        "fill_level_percent": fill,
        "status": "needs_collection" if fill > COLLECTION_THRESHOLD_PERCENT else "ok",
        "location": location_of(index),
    }
