"""Retention policy: which rows of which dataset are past their retention.

Pure functions shared by the Delta retention (a Spark condition) and the bronze retention (plain
Python): a device's ``retention_days`` overrides the layer default for its ``ingestion_id``
pattern; an exact id beats any wildcard, a longer wildcard beats a shorter one. Patterns are
``fnmatch`` wildcards, matched case-sensitively everywhere (in Spark through an equivalent
regex), so a dry run, the bronze retention and the Delta ``DELETE`` agree on every id.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import Column

__all__ = ["device_retention", "fnmatch_regex", "retention_condition"]

_WILDCARD = re.compile(r"[*?\[]")


def _ordered_patterns(per_device: Mapping[str, int | None]) -> list[tuple[str, int | None]]:
    """Patterns in precedence order: exact ids, then wildcards longest first (then by text)."""
    exact = sorted((p, d) for p, d in per_device.items() if not _WILDCARD.search(p))
    wild = sorted(
        ((p, d) for p, d in per_device.items() if _WILDCARD.search(p)),
        key=lambda item: (-len(item[0]), item[0]),
    )
    return exact + wild


def device_retention(
    ingestion_id: str | None, per_device: Mapping[str, int | None], default_days: int | None
) -> int | None:
    """The retention in days of one dataset: its device's, else the layer default.

    As in the catalog (``Catalog.device_for``), one device applies to a dataset, the most
    specific; when that device has no retention of its own, the layer default applies, not the
    retention of a less specific pattern.

    Args:
        ingestion_id: the dataset (None never matches a device).
        per_device: ``fnmatch`` pattern (or exact id) → days (None: the layer default).
        default_days: the layer's retention (None: keep forever).
    """
    if ingestion_id is not None:
        for pattern, days in _ordered_patterns(per_device):
            if _WILDCARD.search(pattern):
                # The regex Spark uses, not fnmatch itself: both sides must match the same ids.
                if re.match(fnmatch_regex(pattern), ingestion_id):
                    return default_days if days is None else days
            elif ingestion_id == pattern:
                return default_days if days is None else days
    return default_days


def fnmatch_regex(pattern: str) -> str:
    """An anchored regex matching what :func:`fnmatch.fnmatchcase` matches, for Spark RLIKE.

    ``fnmatch.translate`` emits Python-only syntax (``\\Z``, atomic groups), so translate here:
    ``*``, ``?`` and ``[...]`` classes become regex, everything else is escaped literally.
    """
    out, i, n = [], 0, len(pattern)
    while i < n:
        char = pattern[i]
        i += 1
        if char == "*":
            out.append(".*")
        elif char == "?":
            out.append(".")
        elif char == "[":
            j = i
            if j < n and pattern[j] == "!":
                j += 1
            if j < n and pattern[j] == "]":
                j += 1
            while j < n and pattern[j] != "]":
                j += 1
            if j >= n:
                out.append(r"\[")
                continue
            body, i = pattern[i:j], j + 1
            negate = body.startswith("!")
            if negate:
                body = body[1:]
            # '-' stays (ranges); characters special inside a Java class are escaped.
            escaped = "".join("\\" + c if c in "\\[]^&" else c for c in body)
            out.append(f"[{'^' if negate else ''}{escaped}]")
        else:
            out.append(re.escape(char))
    return f"^(?s:{''.join(out)})$"


def retention_condition(
    *,
    default_days: int | None,
    per_device: Mapping[str, int | None],
    column: str,
    by_day: bool,
    now: datetime,
    device_column: str | None = "ingestion_id",
) -> Column | None:
    """The Delta ``DELETE`` condition of a retention, or None when everything is kept.

    Args:
        default_days: the layer's retention (None: keep forever unless a device says otherwise).
        per_device: ``fnmatch`` pattern or exact id → days (None: the layer default), with the
            precedence of :func:`device_retention`.
        column: a date column (``by_day``) or a timestamp column the age is measured on.
        by_day: ``column`` is a date partition: whole days older than the cutoff's day go, so
            Delta removes whole files without rewriting any.
        now: the current UTC time.
        device_column: the column holding the dataset id (None: devices do not apply).
    """
    from pyspark.sql import functions as F

    rules = _ordered_patterns(per_device) if device_column else []
    days_in_use = [d for _, d in rules if d is not None]
    if default_days is not None:
        days_in_use.append(default_days)
    if not days_in_use:
        return None

    def cutoff(days: int | None) -> Column:
        if days is None:
            # Keep forever: ``column < NULL`` is never true.
            return F.lit(None).cast("date" if by_day else "timestamp")
        moment = now - timedelta(days=days)
        return F.lit(moment.date()) if by_day else F.lit(moment)

    fallback = cutoff(default_days)
    per_dataset: Any = None
    for pattern, days in rules:
        col = F.col(str(device_column))
        match = col.rlike(fnmatch_regex(pattern)) if _WILDCARD.search(pattern) else col == pattern
        limit_of = fallback if days is None else cutoff(days)
        per_dataset = (
            F.when(match, limit_of) if per_dataset is None else per_dataset.when(match, limit_of)
        )
    limit = fallback if per_dataset is None else per_dataset.otherwise(fallback)
    # The loosest cutoff as a plain comparison too: Delta prunes partitions and files by it
    # (it cannot see through the CASE), and a DELETE's conflict check then only covers old data.
    condition: Column = (F.col(column) < limit) & (F.col(column) < cutoff(min(days_in_use)))
    return condition
