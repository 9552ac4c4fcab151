from datetime import UTC, datetime

import pytest

from workbench.connectors.event_time import find_time_value, parse_event_time

T = datetime(2026, 11, 26, 10, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "value",
    [
        "2026-11-26T10:00:00Z",
        "2026-11-26T10:00:00",  # naive means UTC
        "2026-11-26T11:00:00+01:00",
        "2026-11-26 10:00:00",
        T.timestamp(),
        int(T.timestamp()),
        int(T.timestamp() * 1e3),
        int(T.timestamp() * 1e6),
        int(T.timestamp() * 1e9),
        str(int(T.timestamp() * 1e3)),
    ],
)
def test_understood_times(value: object) -> None:
    assert parse_event_time(value) == T


@pytest.mark.parametrize("value", ["yesterday", "", True, None, -5, float("nan"), {"a": 1}, 1e30])
def test_not_times(value: object) -> None:
    assert parse_event_time(value) is None


def test_time_field_lookup_is_case_insensitive_and_ordered() -> None:
    record = {"TS": 1, "Timestamp": 2}
    assert find_time_value(record, ["timestamp", "ts"]) == 2
    assert find_time_value(record, ["ts", "timestamp"]) == 1
    assert find_time_value({"x": 1}, ["ts"]) is None
    assert find_time_value({"ts": 1, "Timestamp": 2}, ["timestamp", "ts"]) == 2  # order wins
