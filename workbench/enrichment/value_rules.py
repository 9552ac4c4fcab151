"""Value transformations over the canonical ``fields`` map: pure transforms.

Rules of kind ``filter``, ``convert`` and ``validate`` run in one chain ordered by priority then
id, global and per-dataset rules alike (a per-dataset rule only touches its dataset's rows), so a
conversion can feed a later filter. ``aggregate`` rules are materialized in gold
(:mod:`workbench.gold.aggregates`) and pass through here untouched.

Nothing is filtered out while the chain runs: a dropped row gets its rule id in ``_dropped``
(the first rule that dropped it wins) and every rule leaves a boolean ``_hit_<id>`` column, so
the batch processor counts rows per rule in the same Spark job that writes the batch
(``DataFrame.observe``) and only then removes the dropped rows.

A rule that cannot run (bad config, a pattern Spark's regex engine refuses, a field of the
wrong kind) is reported by :func:`check_rule` / :func:`compile_rules` and skipped; it never fails
the batch. Spark matches with Java's regex engine, whose syntax differs from Python's
(``(?P<n>x)`` is Python only, ``(?<n>x)`` Java only), so patterns are checked by Spark itself
(:class:`SparkRegexCheck`) wherever rules are checked: the stream, the preview, the rule editor.
At run time every cast is a ``try_`` cast, so a value that does not convert is a
conversion failure of that row (default or flag), not an exception.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pyspark.errors import PySparkException
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import (
    ArrayType,
    BooleanType,
    DoubleType,
    LongType,
    StringType,
    TimestampType,
)

from workbench.catalog.records import ValueRule

DROPPED = "_dropped"
"""Id of the rule that dropped the row (null: kept)."""
FLAGS = "flags"
"""``array<string>`` of ``<kind>:<rule name>`` for every flag a row collected."""

ROW_KINDS = ("filter", "convert", "validate")
"""Rule kinds applied to silver rows; ``aggregate`` rules live in gold."""

_COMPARE = {"gt", "ge", "lt", "le", "eq", "ne"}
_FILTER_OPS = _COMPARE | {"contains", "regex", "in"}
_CONVERT_TYPES = {"string", "int", "float", "bool", "timestamp"}
_ARITHMETIC = {"add", "sub", "mul", "div"}
_CHECKS = {"range", "regex", "enum", "not_null"}
_ON_FAIL = {"drop", "flag", "default"}


def hit_column(rule_id: int) -> str:
    """Name of the boolean column marking the rows ``rule_id`` affected."""
    return f"_hit_{rule_id}"


RegexCheck = Callable[[str], str | None]
"""Why a pattern cannot run (None: it can)."""


class SparkRegexCheck:
    """Patterns checked by Spark's own regex engine (Java's), each pattern once per instance.

    The check is a one-row query (about 0.15 s the first time a pattern is seen); errors other
    than a refused pattern (e.g. a lost Spark Connect session) are raised, not reported as the
    rule's fault.
    """

    def __init__(self, spark: SparkSession) -> None:
        self.spark = spark
        self._problems: dict[str, str | None] = {}

    def __call__(self, pattern: str) -> str | None:
        if pattern not in self._problems:
            self._problems[pattern] = self._check(pattern)
        return self._problems[pattern]

    def _check(self, pattern: str) -> str | None:
        try:
            self.spark.range(1).select(F.lit("").rlike(pattern)).collect()
        except PySparkException as err:
            if not (err.getCondition() or "").startswith("INVALID_PARAMETER_VALUE.PATTERN"):
                raise
            hint = ""
            if "(?P" in pattern:
                hint = " (Java writes Python's (?P<name>...) as (?<name>...))"
            return f"invalid regex {pattern!r}: Spark's regex engine (Java) refuses it{hint}"
        return None


def check_rule(rule: ValueRule, regex: RegexCheck) -> str | None:
    """Why ``rule`` cannot run, or None when its config is complete and consistent.

    ``regex`` checks patterns (:class:`SparkRegexCheck`).
    """
    c = rule.config
    if not rule.field:
        return "no field"
    if rule.kind == "filter":
        op = c.get("op")
        if op not in _FILTER_OPS:
            return f"filter op {op!r} is not one of {sorted(_FILTER_OPS)}"
        if "value" not in c:
            return "filter needs a 'value'"
        if op in {"gt", "ge", "lt", "le"} and not _is_number(c["value"]):
            return f"filter {op} needs a number, got {c['value']!r}"
        if op == "in" and not isinstance(c["value"], list):
            return "filter 'in' needs a list value"
        if op == "regex":
            return _regex_problem(c["value"], regex)
        return None
    if rule.kind == "convert":
        if "to" in c:
            if c["to"] not in _CONVERT_TYPES:
                return f"convert to {c['to']!r} is not one of {sorted(_CONVERT_TYPES)}"
            return None
        op = c.get("op")
        if op not in _ARITHMETIC:
            return f"convert needs 'to' (a type) or 'op' in {sorted(_ARITHMETIC)}"
        if "other" in c:
            return None if isinstance(c["other"], str) and c["other"] else "'other' names a field"
        if not _is_number(c.get("value")):
            return f"convert {op} needs a numeric 'value' or an 'other' field"
        return None
    if rule.kind == "validate":
        check = c.get("check")
        if check not in _CHECKS:
            return f"validate check {check!r} is not one of {sorted(_CHECKS)}"
        on_fail = c.get("on_fail", "flag")
        if on_fail not in _ON_FAIL:
            return f"on_fail {on_fail!r} is not one of {sorted(_ON_FAIL)}"
        if on_fail == "default" and "default" not in c:
            return "on_fail 'default' needs a 'default' value"
        if check == "range":
            bounds = [c.get("min"), c.get("max")]
            if all(b is None for b in bounds) or not all(
                b is None or _is_number(b) for b in bounds
            ):
                return "range needs a numeric 'min' and/or 'max'"
        if check == "regex":
            return _regex_problem(c.get("pattern"), regex)
        if check == "enum" and not isinstance(c.get("values"), list):
            return "enum needs a list of 'values'"
        return None
    if rule.kind == "aggregate":
        return None  # checked by the gold side, which runs it
    return f"unknown rule kind {rule.kind!r}"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _regex_problem(pattern: Any, regex: RegexCheck) -> str | None:
    if not isinstance(pattern, str):
        return "regex needs a string pattern"
    return regex(pattern)


@dataclass(frozen=True)
class CompiledRules:
    """The rules a batch runs with, and the ones skipped with their reasons."""

    runnable: tuple[ValueRule, ...]
    skipped: dict[int, str]


def compile_rules(rules: Sequence[ValueRule], regex: RegexCheck) -> CompiledRules:
    """Enabled row rules in chain order (priority, id), split into runnable and skipped.

    ``regex`` checks patterns (see :func:`check_rule`).
    """
    ordered = sorted(
        (r for r in rules if r.enabled and r.kind in ROW_KINDS), key=lambda r: (r.priority, r.id)
    )
    runnable, skipped = [], {}
    for rule in ordered:
        problem = check_rule(rule, regex)
        if problem is None:
            runnable.append(rule)
        else:
            skipped[rule.id] = problem
    return CompiledRules(tuple(runnable), skipped)


def apply_value_rules(df: DataFrame, rules: Sequence[ValueRule]) -> DataFrame:
    """Run the rule chain on ``df`` (which has ``ingestion_id`` and a ``fields`` map).

    Adds ``flags`` (``array<string>``), ``_dropped`` and one ``_hit_<id>`` per rule; rows are
    not removed (see the module docstring). ``rules`` must be runnable (:func:`compile_rules`).
    """
    out = df.withColumn(FLAGS, F.array().cast(ArrayType(StringType()))).withColumn(
        DROPPED, F.lit(None).cast(LongType())
    )
    for rule in rules:
        out = _apply(out, rule)
    return out


def kept(df: DataFrame) -> DataFrame:
    """The rows no rule dropped, without the chain's helper columns (``flags`` stays).

    The filter must run *after* the chain: Spark would otherwise push it below the
    projections, inlining the whole chain (JSON parsing included) into the predicate, once
    per rule that can drop. A predicate on a non-deterministic column (the partition id,
    always >= 0) keeps it above: Spark never moves a filter through a non-deterministic
    projection.
    """
    helpers = [c for c in df.columns if c == DROPPED or c.startswith("_hit_")]
    fenced = df.withColumn("_partition", F.spark_partition_id())
    keep = F.col(DROPPED).isNull() & (F.col("_partition") >= 0)
    return fenced.where(keep).drop(*helpers, "_partition")


def _apply(df: DataFrame, rule: ValueRule) -> DataFrame:
    fields = F.col("fields")
    value = F.try_element_at(fields, F.lit(rule.field))
    live = F.col(DROPPED).isNull()
    if rule.ingestion_id:
        live = live & (F.col("ingestion_id") == F.lit(rule.ingestion_id))
    c = rule.config
    if rule.kind == "filter":
        passes = F.coalesce(_filter_condition(value, c["op"], c["value"]), F.lit(False))
        # Rows without the field belong to other sensor types: a filter never drops them.
        drop = live & value.isNotNull() & ~passes
        out = df.withColumn(hit_column(rule.id), drop)
        return out.withColumn(
            DROPPED, F.when(F.col(hit_column(rule.id)), F.lit(rule.id)).otherwise(F.col(DROPPED))
        )
    if rule.kind == "convert":
        target = c.get("target") or rule.field
        converted = _converted(value, fields, c)
        ok = converted.isNotNull()
        applies = live & value.isNotNull()
        fallback = F.lit(_text(c["default"])) if "default" in c else value
        new = F.when(ok, converted).otherwise(fallback)
        out = df.withColumn("fields", F.when(applies, _put(fields, target, new)).otherwise(fields))
        if "default" not in c:
            out = _flag(out, applies & ~ok, f"convert:{rule.name}")
        return out.withColumn(hit_column(rule.id), applies)
    # validate
    failed = live & _validation_failure(value, c)
    on_fail = c.get("on_fail", "flag")
    out = df.withColumn(hit_column(rule.id), failed)
    if on_fail == "drop":
        hit = F.col(hit_column(rule.id))
        return out.withColumn(DROPPED, F.when(hit, F.lit(rule.id)).otherwise(F.col(DROPPED)))
    if on_fail == "default":
        new = F.lit(_text(c["default"]))
        return out.withColumn(
            "fields", F.when(failed, _put(fields, rule.field, new)).otherwise(fields)
        )
    return _flag(out, failed, f"validate:{rule.name}")


def _number(value: Column) -> Column:
    return value.try_cast(DoubleType())


def _filter_condition(value: Column, op: str, operand: Any) -> Column:
    if op in {"gt", "ge", "lt", "le"}:
        num = _number(value)
        bound = F.lit(float(operand))
        return {"gt": num > bound, "ge": num >= bound, "lt": num < bound, "le": num <= bound}[op]
    if op in {"eq", "ne"}:
        equal = (
            _number(value) == F.lit(float(operand))
            if _is_number(operand)
            else value == F.lit(_text(operand))
        )
        return equal if op == "eq" else ~equal
    if op == "contains":
        return F.contains(value, F.lit(str(operand)))
    if op == "regex":
        return value.rlike(str(operand))
    return value.isin([_text(v) for v in operand])  # "in"


def _converted(value: Column, fields: Column, c: dict[str, Any]) -> Column:
    """The converted value as text (the ``fields`` map holds strings), null when it fails."""
    to = c.get("to")
    if to == "string":
        return value
    if to == "int":
        return _number(value).try_cast(LongType()).cast(StringType())
    if to == "float":
        return _number(value).cast(StringType())
    if to == "bool":
        return value.try_cast(BooleanType()).cast(StringType())
    if to == "timestamp":
        return F.date_format(_timestamp(value), "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX")
    other = (
        _number(F.try_element_at(fields, F.lit(c["other"])))
        if "other" in c
        else F.lit(float(c["value"]))
    )
    num = _number(value)
    result = {
        "add": F.try_add(num, other),
        "sub": F.try_subtract(num, other),
        "mul": F.try_multiply(num, other),
        "div": F.try_divide(num, other),
    }[c["op"]]
    return result.cast(StringType())


def _timestamp(value: Column) -> Column:
    """Epoch seconds or milliseconds, or an ISO-8601 string, as a timestamp (else null)."""
    num = _number(value)
    return (
        F.when(num.isNull(), value.try_cast(TimestampType()))
        .when(F.abs(num) < 1e11, F.timestamp_seconds(num))
        .when(F.abs(num) < 1e14, F.timestamp_millis(num.cast(LongType())))
    )


def _validation_failure(value: Column, c: dict[str, Any]) -> Column:
    check = c["check"]
    if check == "not_null":
        return value.isNull()
    if check == "range":
        num = _number(value)
        ok = F.lit(True)
        if c.get("min") is not None:
            ok = ok & (num >= F.lit(float(c["min"])))
        if c.get("max") is not None:
            ok = ok & (num <= F.lit(float(c["max"])))
        # A present value that is not a number is out of range; an absent one is not checked.
        return value.isNotNull() & ~F.coalesce(ok, F.lit(False))
    if check == "regex":
        return value.isNotNull() & ~value.rlike(str(c["pattern"]))
    return value.isNotNull() & ~value.isin([_text(v) for v in c["values"]])  # enum


def _put(fields: Column, key: str, value: Column) -> Column:
    """``fields`` with ``key`` set to ``value`` (a non-null text).

    ``map_concat`` with the session's ``mapKeyDedupPolicy`` ``LAST_WIN`` replaces an existing
    entry; unlike a lambda (``map_filter``), it compiles with the rest of the stage.
    """
    return F.map_concat(fields, F.create_map(F.lit(key), value))


def _flag(df: DataFrame, condition: Column, flag: str) -> DataFrame:
    flags = F.col(FLAGS)
    return df.withColumn(
        FLAGS, F.when(condition, F.array_append(flags, F.lit(flag))).otherwise(flags)
    )


def _text(value: Any) -> str:
    """A JSON scalar as the ``fields`` map spells it (booleans lower-case, like from_json)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
