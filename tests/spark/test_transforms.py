"""Value rules on tiny frames: each kind, the chain order, and rules that cannot run."""

from __future__ import annotations

import re
from typing import Any

import pytest

from workbench.catalog.records import ValueRule
from workbench.enrichment.value_rules import (
    DROPPED,
    FLAGS,
    SparkRegexCheck,
    apply_value_rules,
    check_rule,
    compile_rules,
    hit_column,
    kept,
)

pytestmark = pytest.mark.spark


def _frame(spark: Any, *rows: tuple[str, str, dict[str, str]]) -> Any:
    """Rows of ``(id, ingestion_id, fields)``."""
    return spark.createDataFrame(
        list(rows), "id string, ingestion_id string, fields map<string,string>"
    )


def _run(
    spark: Any, rules: list[ValueRule], *rows: tuple[str, str, dict[str, str]]
) -> dict[str, Any]:
    compiled = compile_rules(rules, SparkRegexCheck(spark))
    assert compiled.skipped == {}
    out = apply_value_rules(_frame(spark, *rows), compiled.runnable)
    return {r.id: r for r in out.collect()}


def test_filter_drops_failing_rows_and_keeps_rows_without_the_field(spark: Any) -> None:
    rule = ValueRule(1, "warm", "filter", "temperature", {"op": "gt", "value": 20})
    out = _run(
        spark,
        [rule],
        ("hot", "ds", {"temperature": "25"}),
        ("cold", "ds", {"temperature": "15"}),
        ("text", "ds", {"temperature": "n/a"}),
        ("bin", "ds", {"fill": "80"}),  # another sensor type: kept
    )
    assert {k: v[DROPPED] for k, v in out.items()} == {
        "hot": None,
        "cold": 1,
        "text": 1,
        "bin": None,
    }
    assert out["cold"][hit_column(1)] is True and out["bin"][hit_column(1)] is False


@pytest.mark.parametrize(
    ("config", "value", "passes"),
    [
        ({"op": "contains", "value": "err"}, "an error", True),
        ({"op": "regex", "value": "^s-[0-9]+$"}, "s-12", True),
        ({"op": "regex", "value": "^s-[0-9]+$"}, "x-12", False),
        ({"op": "in", "value": ["ok", "warn"]}, "warn", True),
        ({"op": "eq", "value": 3}, "3.0", True),
        ({"op": "ne", "value": "idle"}, "idle", False),
    ],
)
def test_filter_ops(spark: Any, config: dict[str, Any], value: str, passes: bool) -> None:
    out = _run(spark, [ValueRule(1, "f", "filter", "x", config)], ("r", "ds", {"x": value}))
    assert (out["r"][DROPPED] is None) is passes


def test_convert_types_arithmetic_and_targets(spark: Any) -> None:
    rules = [
        ValueRule(
            1, "f_to_c", "convert", "temp_f", {"op": "sub", "value": 32, "target": "t"}, priority=1
        ),
        ValueRule(2, "scale", "convert", "t", {"op": "mul", "value": 0.5}, priority=2),
        ValueRule(3, "as_int", "convert", "count", {"to": "int", "default": -1}, priority=3),
        ValueRule(4, "ratio", "convert", "a", {"op": "div", "other": "b"}, priority=4),
    ]
    out = _run(
        spark,
        rules,
        ("r1", "ds", {"temp_f": "50", "count": "7.9", "a": "1", "b": "4"}),
        ("r2", "ds", {"count": "many", "a": "1", "b": "0"}),
    )
    assert out["r1"].fields["t"] == "9.0"  # (50 - 32) * 0.5: the chain runs in priority order
    assert out["r1"].fields["temp_f"] == "50"  # a target leaves the source field alone
    assert out["r1"].fields["count"] == "7"
    assert out["r1"].fields["a"] == "0.25"
    assert out["r2"].fields["count"] == "-1"  # failed conversion → the default
    # Division by zero fails that row's conversion: the value stays and the row is flagged.
    assert out["r2"].fields["a"] == "1" and out["r2"][FLAGS] == ["convert:ratio"]


def test_validate_drop_flag_default_and_not_null(spark: Any) -> None:
    rules = [
        ValueRule(
            1,
            "range",
            "validate",
            "hum",
            {"check": "range", "min": 0, "max": 100, "on_fail": "drop"},
        ),
        ValueRule(
            2,
            "unit",
            "validate",
            "unit",
            {"check": "enum", "values": ["C", "F"], "on_fail": "default", "default": "C"},
        ),
        ValueRule(
            3, "id", "validate", "sensorId", {"check": "regex", "pattern": "^s-", "on_fail": "flag"}
        ),
        ValueRule(
            4, "need_id", "validate", "sensorId", {"check": "not_null"}, ingestion_id="strict"
        ),
    ]
    out = _run(
        spark,
        rules,
        ("bad_hum", "ds", {"hum": "140", "sensorId": "s-1"}),
        ("bad_unit", "ds", {"hum": "40", "unit": "K", "sensorId": "s-2"}),
        ("bad_id", "ds", {"sensorId": "x-3"}),
        ("no_id_lax", "ds", {"hum": "40"}),
        ("no_id_strict", "strict", {"hum": "40"}),
    )
    assert out["bad_hum"][DROPPED] == 1
    assert out["bad_unit"].fields["unit"] == "C" and out["bad_unit"][FLAGS] == []
    assert out["bad_id"][FLAGS] == ["validate:id"]
    assert out["no_id_lax"][FLAGS] == []  # the not-null rule is for dataset "strict" only
    assert out["no_id_strict"][FLAGS] == ["validate:need_id"]
    assert [
        r.id
        for r in kept(
            apply_value_rules(_frame(spark, ("x", "ds", {"hum": "-5"})), rules[:1])
        ).collect()
    ] == []


def test_rules_that_cannot_run_are_skipped_with_a_reason(spark: Any) -> None:
    rules = [
        ValueRule(1, "bad_op", "filter", "x", {"op": "between", "value": 1}),
        ValueRule(2, "bad_regex", "validate", "x", {"check": "regex", "pattern": "(unclosed"}),
        ValueRule(3, "no_default", "validate", "x", {"check": "not_null", "on_fail": "default"}),
        ValueRule(4, "fine", "convert", "x", {"to": "float"}),
        ValueRule(5, "agg", "aggregate", "x", {"function": "avg", "window": "5 minutes"}),
        ValueRule(6, "off", "filter", "x", {"op": "xx"}, enabled=False),
    ]
    check = SparkRegexCheck(spark)
    compiled = compile_rules(rules, check)
    assert [r.id for r in compiled.runnable] == [4]
    assert set(compiled.skipped) == {1, 2, 3}
    assert "between" in compiled.skipped[1] and "regex" in compiled.skipped[2]
    assert check_rule(rules[4], check) is None


def test_patterns_are_checked_by_spark_s_regex_engine_not_python_s(spark: Any) -> None:
    """``(?P<n>x)`` is valid Python but Java refuses it: run, it would fail every batch."""

    def validate(pattern: str) -> dict[str, str]:
        return {"check": "regex", "pattern": pattern}

    rules = [
        ValueRule(1, "py_group", "validate", "unit", validate("(?P<unit>[CF])")),
        ValueRule(2, "py_filter", "filter", "unit", {"op": "regex", "value": "(?P=x)"}),
        ValueRule(3, "java_group", "validate", "unit", validate("(?<u>[CF])")),
    ]
    # Python's re would accept the Python-only group and refuse the valid Java one.
    re.compile("(?P<unit>[CF])")
    with pytest.raises(re.error):
        re.compile("(?<u>[CF])")

    check = SparkRegexCheck(spark)
    compiled = compile_rules(rules, check)
    assert [r.id for r in compiled.runnable] == [3]
    assert set(compiled.skipped) == {1, 2}
    assert "Java" in compiled.skipped[1] and "(?<name>...)" in compiled.skipped[1]
    # The runnable rule runs; the refused one would have thrown inside the job.
    out = apply_value_rules(_frame(spark, ("k", "ds", {"unit": "K"})), compiled.runnable)
    assert out.collect()[0][FLAGS] == ["validate:java_group"]
    with pytest.raises(Exception, match="PatternSyntaxException"):
        apply_value_rules(_frame(spark, ("k", "ds", {"unit": "K"})), rules[:1]).collect()
