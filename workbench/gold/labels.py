"""Sensitivity labels in Spark, by their order (``public`` < ``internal`` < ``confidential`` <
``restricted``), never by their spelling: ``max('public', 'confidential')`` as strings is
``'public'``. An unknown label ranks highest, so a typo can only hide data, never show it.
"""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F

from workbench.catalog.records import SENSITIVITIES

__all__ = ["highest_label", "highest_label_sql"]

_LABELS = "array(" + ", ".join(f"'{label}'" for label in SENSITIVITIES) + ")"


def _rank_sql(expr: str) -> str:
    position = f"array_position({_LABELS}, {expr})"
    return (
        f"CASE WHEN {expr} IS NULL THEN NULL WHEN {position} = 0 THEN {len(SENSITIVITIES)} "
        f"ELSE CAST({position} AS INT) END"
    )


def highest_label(column: str) -> Column:
    """An aggregate: the highest label of ``column`` in the group (nulls ignored)."""
    return F.expr(f"element_at({_LABELS}, max({_rank_sql(column)}))")


def highest_label_sql(left: str, right: str) -> str:
    """SQL for the higher label of two expressions (either may be null)."""
    return f"element_at({_LABELS}, greatest({_rank_sql(left)}, {_rank_sql(right)}))"
