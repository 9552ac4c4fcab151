"""Which payload key holds a record's sensor id, per dataset, under the normalization rules.

The metadata extractor counts distinct sensors with the same meaning the silver
table's ``sensor_id`` has (``workbench.enrichment.normalization``, which this module must not
import: it needs pyspark): the canonical key :data:`SENSOR_KEY` is supplied by the first
non-null value among its raw keys, matched case-insensitively, in the order of the dataset's
own rules (priority, id) then the global rules (a global rule is ignored where the dataset maps
the same raw key elsewhere), with the canonical spelling itself as the last resort (here
always and case-insensitively; the enrichment keeps an unmapped ``sensorId`` only in exactly
that spelling when no rule names the key at all). A record without any of them has no sensor
id and is not counted: neither the topic nor the ingestion id stands in for it, as silver's
``sensor_id`` is then null too. Raw keys are field paths (``device.id`` inside ``{"device":
{"id": ...}}``), as the enrichment reads them.

Pure functions over :class:`~workbench.catalog.records.NormalizationRule` records plus one
small reader per dataset; the extractor recompiles them when the rules change.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from workbench.catalog.records import NormalizationRule
from workbench.catalog.schemas import flatten

SENSOR_KEY = "sensorId"
"""The canonical key of the sensor id (``workbench.enrichment.normalization.SENSOR_KEY``)."""
MAX_SPELLINGS = 32
"""Case spellings of the candidate keys a reader remembers (bounds adversarial payloads)."""
MAX_KEYS = 1024
"""Payload keys whose lower-cased rank a reader remembers (they repeat from record to record)."""


def sensor_key_order(rules: Sequence[NormalizationRule], ingestion_id: str | None) -> list[str]:
    """The lower-cased raw keys that supply :data:`SENSOR_KEY` for a dataset, first wins.

    Args:
        rules: the catalog's rules (disabled ones are ignored).
        ingestion_id: the dataset, or None for a dataset without rules of its own.
    """
    ordered = sorted((r for r in rules if r.enabled), key=lambda r: (r.priority, r.id))
    own = [r for r in ordered if ingestion_id is not None and r.ingestion_id == ingestion_id]
    own_targets: dict[str, set[str]] = {}
    for rule in own:
        own_targets.setdefault(rule.raw_key.lower(), set()).add(rule.canonical_key)
    effective = list(own)
    for rule in ordered:
        if rule.ingestion_id is not None:
            continue
        targets = own_targets.get(rule.raw_key.lower())
        if targets is None or rule.canonical_key in targets:  # per-source wins
            effective.append(rule)
    keys: list[str] = []
    for rule in effective:
        raw = rule.raw_key.lower()
        if rule.canonical_key == SENSOR_KEY and raw not in keys:
            keys.append(raw)
    own_name = SENSOR_KEY.lower()
    if own_name not in keys and own_name not in {r.raw_key.lower() for r in effective}:
        keys.append(own_name)
    return keys


@dataclass(frozen=True)
class SensorKeys:
    """The compiled key order of every dataset: :func:`sensor_key_order` for those with rules
    of their own, the global order for the rest."""

    global_order: tuple[str, ...]
    per_dataset: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def from_rules(cls, rules: Sequence[NormalizationRule]) -> SensorKeys:
        """Compile the catalog's rules (as ``Catalog.list_rules`` returns them)."""
        datasets = {r.ingestion_id for r in rules if r.enabled and r.ingestion_id is not None}
        return cls(
            tuple(sensor_key_order(rules, None)),
            {iid: tuple(sensor_key_order(rules, iid)) for iid in sorted(datasets)},
        )

    def order(self, ingestion_id: str) -> tuple[str, ...]:
        """The key order for one dataset."""
        return self.per_dataset.get(ingestion_id, self.global_order)


class SensorIdReader:
    """Reads one dataset's sensor ids from parsed records.

    Matching is case-insensitive, which costs a look at every payload key (~0.4 µs a record).
    So a scan (:meth:`read` with ``scan=True``) also learns the payload's actual spellings, and
    most records are read with plain dictionary look-ups of those, best first (what
    ``read(scan=False)`` does; the extractor inlines it). A record where none of them is found
    is scanned by :meth:`read_unknown` while ``scans_left`` lasts: that learns a new spelling at
    its first record, and bounds the cost for datasets whose records carry no sensor id. The
    extractor scans the first record of each dataset per batch and allows a few unknown ones.
    A record that carries a known spelling and a new, better-ranked one is read by the known
    one until a scan has seen the new one.

    Args:
        order: lower-cased candidate keys, first wins (:meth:`SensorKeys.order`).
    """

    def __init__(self, order: Sequence[str]) -> None:
        self._rank = {key: i for i, key in enumerate(order)}
        self.nested = any("." in key for key in order)
        """Whether a candidate is a nested path: every record is then scanned (the known
        spellings are top-level keys only)."""
        self._spelling_rank: dict[str, int] = {}
        self._key_rank: dict[str, int | None] = {}  # payload key as spelled → rank
        self.spellings: tuple[str, ...] = ()
        """Spellings seen, best rank first."""
        self.scans_left = 0
        """Records :meth:`read_unknown` may still scan (the caller sets it per batch)."""

    def read(self, record: dict[str, Any], *, scan: bool = True) -> str | None:
        """The record's sensor id as text, or None when it has none.

        Args:
            record: the parsed payload (nested paths are candidates when a rule names one).
            scan: look at every key (exact, learns spellings) instead of the known spellings.
        """
        if scan or self.nested:
            return self._scan(record)
        for key in self.spellings:
            value = record.get(key)
            if value is not None:
                return value if type(value) is str else as_text(value)
        return None

    def read_unknown(self, record: dict[str, Any]) -> str | None:
        """The sensor id of a record none of the known spellings found: scanned while
        ``scans_left`` lasts, else None."""
        if self.scans_left <= 0:
            return None
        self.scans_left -= 1
        return self._scan(record)

    def _scan(self, record: dict[str, Any]) -> str | None:
        best_rank, best = len(self._rank), None
        known = self._key_rank
        for key, value in record.items():
            rank = known.get(key, -1)
            if rank == -1:
                rank = self._rank.get(key.lower())
                if len(known) < MAX_KEYS:
                    known[key] = rank
            if rank is None:
                continue
            if key not in self._spelling_rank and len(self._spelling_rank) < MAX_SPELLINGS:
                self._spelling_rank[key] = rank
                ranks = self._spelling_rank
                self.spellings = tuple(sorted(ranks, key=lambda k: ranks[k]))
            if value is not None and rank < best_rank:
                best_rank, best = rank, value
        if self.nested:
            for path, value in flatten(record).items():
                rank = self._rank.get(path.lower()) if "." in path else None
                if rank is not None and value is not None and rank < best_rank:
                    best_rank, best = rank, value
        if best is None:
            return None
        return best if type(best) is str else as_text(best)


def as_text(value: Any) -> str:
    """A JSON value as the silver ``raw`` map holds it: numbers as their JSON text, booleans
    ``true``/``false``, objects and arrays as compact JSON."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return orjson.dumps(value).decode()
