"""Deterministic identifiers.

An ``ingestion_id`` names one dataset in the lake. It is derived from the source's name and
type (plus the topic for per-topic datasets) so every process on every host computes the same
id for the same source without coordination.
"""

from __future__ import annotations

import hashlib
import re

_SLUG = re.compile(r"[^a-z0-9]+")


def slug(text: str) -> str:
    """Lower-case ``text`` and keep only ``[a-z0-9_]``, collapsing runs of other characters."""
    return _SLUG.sub("_", text.lower()).strip("_") or "x"


def ingestion_id(source_name: str, source_type: str, topic: str | None = None) -> str:
    """The dataset id of a source: readable prefix plus a short stable hash.

    >>> ingestion_id("demo", "mqtt")
    'mqtt_demo_72f27016'
    """
    key = "\x1f".join([source_type, source_name, topic or ""])
    digest = hashlib.sha256(key.encode()).hexdigest()[:8]
    return f"{slug(source_type)}_{slug(source_name)}_{digest}"
