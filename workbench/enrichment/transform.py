"""The whole bronze → silver transform, as pure functions the stream and the rule preview share.

:func:`enrich` runs normalization then the value-rule chain and keeps the chain's
bookkeeping columns (``_dropped``, ``_hit_<id>``, ``flags``); :func:`to_silver` removes dropped
rows and projects the silver schema. The batch processor writes ``to_silver(enrich(...))``; the
preview shows the same frame before and after, so what an analyst previews is what the stream
writes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from workbench.catalog.records import NormalizationRule, ValueRule
from workbench.enrichment.normalization import canonical_fields, silver_columns
from workbench.enrichment.value_rules import apply_value_rules, kept


def enrich(
    bronze: DataFrame,
    rules: Sequence[NormalizationRule],
    value_rules: Sequence[ValueRule],
    *,
    sensitivity: Mapping[str, str] | None = None,
) -> DataFrame:
    """Bronze rows (with ``ingestion_id``) → canonical fields → value-rule chain.

    Args:
        bronze: bronze file columns plus ``ingestion_id``.
        rules: normalization rules.
        value_rules: runnable value rules in chain order
            (:func:`workbench.enrichment.value_rules.compile_rules`).
        sensitivity: the device sensitivity per ``ingestion_id``, carried to silver
            and gold for access control.
    """
    out = apply_value_rules(canonical_fields(bronze, rules), value_rules)
    if sensitivity:
        pairs = [F.lit(x) for item in sorted(sensitivity.items()) for x in item]
        out = out.withColumn(
            "sensitivity", F.try_element_at(F.create_map(*pairs), F.col("ingestion_id"))
        )
    return out


def to_silver(enriched: DataFrame, *, enriched_at: datetime | None = None) -> DataFrame:
    """The rows :func:`enrich` kept, as silver rows (:data:`SILVER_SCHEMA`).

    ``enriched_at`` stamps every row (default: the query's current time).
    """
    return silver_columns(kept(enriched), enriched_at=enriched_at)
