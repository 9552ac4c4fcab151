"""Which aggregate rules may write which gold table: one writer per table."""

from __future__ import annotations

from workbench.catalog.records import ValueRule
from workbench.gold.aggregates import runnable


def _agg(rule_id: int, name: str, function: str, table: str | None = None) -> ValueRule:
    config = {"function": function, "window": "5 minutes"}
    if table is not None:
        config["table"] = table
    return ValueRule(rule_id, name, "aggregate", "temperature", config)


def test_rules_naming_one_table_leave_it_to_the_oldest() -> None:
    """Two MERGEs into one table in one batch share its transaction id: one would be lost."""
    rules = [
        _agg(7, "peak", "max", "Shared"),
        _agg(3, "mean", "avg", "shared"),
        _agg(9, "low", "min"),
        _agg(5, "cpu", "avg", "computed"),
    ]
    ok, skipped = runnable(rules, {"computed": "stream computation 'c'"})
    assert [r.id for r in ok] == [3, 9]
    assert set(skipped) == {5, 7}
    assert "gold.Shared holds aggregate rule 3 (mean)" in skipped[7]
    assert "stream computation 'c'" in skipped[5]


def test_a_disabled_rule_owns_nothing() -> None:
    off = _agg(1, "old", "sum", "shared")
    off = ValueRule(off.id, off.name, off.kind, off.field, off.config, enabled=False)
    ok, skipped = runnable([off, _agg(2, "new", "sum", "shared")])
    assert [r.id for r in ok] == [2] and skipped == {}
