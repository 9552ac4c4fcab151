"""Event time from a payload: ISO 8601 or epoch seconds / ms / µs / ns detected by magnitude.

An unparsable time is never replaced by the ingest time: the caller keeps it raw and counts it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

# Epoch magnitudes: seconds stay below 1e11 until the year 5138, milliseconds below 1e14, etc.
_EPOCH_DIVISORS = ((1e11, 1.0), (1e14, 1e3), (1e17, 1e6), (1e20, 1e9))


def find_time_value(record: dict[str, Any], names: list[str]) -> Any:
    """The first value among ``names`` (case-insensitive, top level), or None."""
    if not record:
        return None
    if names:  # the common case, the first name spelled exactly: no per-record key map
        value = record.get(names[0])
        if value is not None:
            return value
    lowered = {key.lower(): key for key in record if isinstance(key, str)}
    for name in names:
        key = lowered.get(name.lower())
        if key is not None and record[key] is not None:
            return record[key]
    return None


def parse_event_time(value: Any) -> datetime | None:
    """Parse one time value; None when it is not a time we understand.

    Naive ISO strings are taken as UTC. Booleans are not times.
    """
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return _from_epoch(float(value))
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        if len(text) >= 10 and text[4] == "-":  # ISO first: no exception on the common path
            try:
                parsed = datetime.fromisoformat(text)
            except ValueError:
                return None
        else:
            try:
                return _from_epoch(float(text))
            except ValueError:
                return None
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    return None


def _from_epoch(number: float) -> datetime | None:
    if number != number or number <= 0:  # NaN or not a plausible epoch
        return None
    for limit, divisor in _EPOCH_DIVISORS:
        if number < limit:
            try:
                return datetime.fromtimestamp(number / divisor, tz=UTC)
            except (OverflowError, OSError, ValueError):
                return None
    return None
