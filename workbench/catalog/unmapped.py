"""The unmapped-keys inbox: raw keys no enabled normalization rule maps.

Raw keys are the catalog's field paths (nested objects as dot paths, ``loc.lat``), which is
what the enrichment matches rules against and passes through when no rule takes them.

Pure functions over catalog records, so the schema browser (which must not import pyspark)
and the engine's rule preview agree on "mapped". The meaning follows
``workbench.enrichment.normalization``: a raw key is mapped for a dataset when an enabled rule
of that dataset or a global rule names it or an object around it (``loc`` for ``loc.lat``),
case-insensitively, or when the key itself spells a canonical key (it is then that key's
last-resort candidate).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from workbench.catalog.records import DatasetInfo, NormalizationRule

MAX_EXAMPLES = 3
_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")


@dataclass(frozen=True)
class UnmappedKey:
    """A raw key (field path) of one dataset that no rule maps."""

    raw_key: str
    ingestion_id: str
    count: int
    """Records that carried it (the catalog's field count: see ``FieldInfo.count``)."""
    first_seen: datetime | None
    last_seen: datetime | None
    examples: list[Any] = field(default_factory=list)
    suggestion: str = ""
    """A canonical key to map it to: the closest existing one, else the key in camelCase."""


def mapped_keys(rules: Iterable[NormalizationRule], ingestion_id: str) -> set[str]:
    """Lower-cased raw keys mapped for ``ingestion_id``: its own rules and the global ones
    (enabled only), plus every canonical key's own spelling."""
    mapped: set[str] = set()
    for rule in rules:
        if not rule.enabled:
            continue
        mapped.add(rule.canonical_key.lower())
        if rule.ingestion_id in (None, ingestion_id):
            mapped.add(rule.raw_key.lower())
    return mapped


def suggest_canonical(raw_key: str, rules: Sequence[NormalizationRule]) -> str:
    """The canonical key ``raw_key`` most likely means.

    Both the key and the rules' canonical and raw keys are compared as lower-case letters and
    digits only (``"Temp-C"`` ~ ``"temp_c"`` → that rule's canonical key); then the closest by
    ``difflib`` (ratio ≥ 0.8); else ``raw_key`` in camelCase (``"wind_speed"`` →
    ``"windSpeed"``). A nested path is compared whole, then by its last name
    (``"data.temp"`` → ``temp``'s canonical key).
    """
    by_form: dict[str, str] = {}
    for rule in sorted(rules, key=lambda r: (r.priority, r.id)):
        by_form.setdefault(_squash(rule.canonical_key), rule.canonical_key)
        by_form.setdefault(_squash(rule.raw_key), rule.canonical_key)
    targets = list(dict.fromkeys(_squash(k) for k in (raw_key, raw_key.rsplit(".", 1)[-1])))
    for target in targets:
        if target in by_form:
            return by_form[target]
    for target in targets:
        close = difflib.get_close_matches(target, list(by_form), n=1, cutoff=0.8)
        if close:
            return by_form[close[0]]
    return camel_case(raw_key)


def camel_case(text: str) -> str:
    """``"wind_speed_kmh"`` → ``"windSpeedKmh"``, ``"PM2.5"`` → ``"pm25"``."""
    words = [w.lower() for w in _WORDS.findall(text)]
    if not words:
        return text
    return words[0] + "".join(w.capitalize() for w in words[1:])


def find_unmapped(
    datasets: Iterable[DatasetInfo], rules: Sequence[NormalizationRule]
) -> list[UnmappedKey]:
    """Every dataset's field paths no rule maps, most frequent first."""
    found: list[UnmappedKey] = []
    for dataset in datasets:
        mapped = mapped_keys(rules, dataset.ingestion_id)
        for info in dataset.fields:
            if is_mapped(info.path, mapped):
                continue
            found.append(
                UnmappedKey(
                    raw_key=info.path,
                    ingestion_id=dataset.ingestion_id,
                    count=info.count,
                    first_seen=info.first_seen,
                    last_seen=info.last_seen,
                    examples=list(dict.fromkeys(info.samples))[:MAX_EXAMPLES],
                    suggestion=suggest_canonical(info.path, rules),
                )
            )
    return sorted(found, key=lambda u: (-u.count, u.ingestion_id, u.raw_key))


def is_mapped(path: str, mapped: set[str]) -> bool:
    """Whether a rule takes the field at ``path`` or an object around it (``mapped``:
    :func:`mapped_keys`)."""
    lowered = path.lower()
    if lowered in mapped:
        return True
    return any(lowered[:i] in mapped for i, char in enumerate(lowered) if char == ".")


def _squash(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())
