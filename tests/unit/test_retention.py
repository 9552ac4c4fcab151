"""Retention policy: device precedence and the fnmatch → regex translation Spark uses."""

from __future__ import annotations

import fnmatch
import re

import pytest

from workbench.maintenance.policy import device_retention, fnmatch_regex

PER_DEVICE = {"temp-*": 10, "temp-00*": 5, "temp-001": 2, "*": 60, "air-[ab]?": 7}


@pytest.mark.parametrize(
    ("ingestion_id", "days"),
    [
        ("temp-001", 2),  # the exact id beats every wildcard that matches it
        ("temp-002", 5),  # 'temp-00*' is longer than 'temp-*' and '*'
        ("temp-100", 10),
        ("air-a1", 7),
        ("air-c1", 60),  # only '*' matches
        ("TEMP-001", 60),  # case-sensitive, like the Delta DELETE
    ],
)
def test_device_precedence(ingestion_id: str, days: int) -> None:
    assert device_retention(ingestion_id, PER_DEVICE, 30) == days


def test_the_most_specific_device_without_retention_means_the_layer_default() -> None:
    # As Catalog.device_for: 'temp-00*' applies to temp-002, and it has no retention of its own.
    assert device_retention("temp-002", {"temp-*": 10, "temp-00*": None}, 30) == 30
    assert device_retention("temp-002", {"temp-*": 10, "temp-00*": None}, None) is None
    assert device_retention("temp-100", {"temp-*": 10, "temp-00*": None}, 30) == 10


def test_layer_default_and_keep_forever() -> None:
    assert device_retention("other", {"temp-*": 3}, 30) == 30
    assert device_retention("other", {"temp-*": 3}, None) is None
    assert device_retention(None, {"*": 3}, 30) == 30


PATTERNS = ["temp-*", "t?mp-0[0-4]*", "a[!b]c", "x[]]y", "dot.id", "a+b(1)", "[", "50%_$", "*-*"]
IDS = ["temp-001", "tamp-03x", "temp-05", "acc", "abc", "x]y", "dotXid", "dot.id", "a+b(1)", "[",
       "50%_$", "a-b", "ab", ""]  # fmt: skip


@pytest.mark.parametrize("pattern", PATTERNS)
def test_regex_matches_exactly_what_fnmatch_matches(pattern: str) -> None:
    regex = fnmatch_regex(pattern)
    for ingestion_id in IDS:
        assert bool(re.match(regex, ingestion_id)) == fnmatch.fnmatchcase(ingestion_id, pattern), (
            pattern,
            ingestion_id,
            regex,
        )
