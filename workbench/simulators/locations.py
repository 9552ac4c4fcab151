"""Fixed places of the simulated city, so a sensor is always at the same spot."""

from __future__ import annotations

from typing import Any

_PLACES: tuple[tuple[str, float, float], ...] = (
    ("Central Station", 52.3791, 4.9003),
    ("Harbour", 52.3780, 4.9300),
    ("Old Town", 52.3731, 4.8922),
    ("University", 52.3560, 4.9550),
    ("Market Square", 52.3702, 4.8952),
    ("Riverside Park", 52.3600, 4.8800),
    ("Industrial Zone", 52.3950, 4.8400),
)

ROAD_SEGMENTS: tuple[str, ...] = (
    "A10-north-km12",
    "A10-south-km14",
    "ring-road-east",
    "harbour-bridge",
    "main-street",
    "station-avenue",
)


def location_of(index: int) -> dict[str, Any]:
    """The location of sensor ``index`` (stable): a name and coordinates."""
    name, lat, lon = _PLACES[index % len(_PLACES)]
    lap = index // len(_PLACES)
    return {"name": name if lap == 0 else f"{name} {lap + 1}", "lat": lat, "lon": lon}


def road_segment_of(index: int) -> str:
    """The road segment sensor ``index`` watches (stable)."""
    segment = ROAD_SEGMENTS[index % len(ROAD_SEGMENTS)]
    lap = index // len(ROAD_SEGMENTS)
    return segment if lap == 0 else f"{segment}-{lap + 1}"


def rush_hour_factor(hour: float) -> float:
    """0..1: how busy the city is at ``hour`` (peaks at 08:00 and 17:30, quiet at night)."""
    morning = max(0.0, 1 - abs(hour - 8.0) / 2.5)
    evening = max(0.0, 1 - abs(hour - 17.5) / 3.0)
    daytime = 0.35 if 7 <= hour <= 20 else 0.05
    return min(1.0, max(morning, evening, daytime))
