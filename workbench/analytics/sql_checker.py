"""Spark's own parser and class hierarchy, asked on behalf of the query rules.

One :class:`SqlChecker` per Spark session: it parses text into Spark's JSON plan tree, tells
plan nodes from expressions by asking the JVM (cached), and knows the built-in functions.
The query service and the stream computations both check user SQL through it, before Spark
resolves a single name.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from py4j.protocol import Py4JError

from workbench.analytics.plan_tree import PlanNode, plan_tree
from workbench.analytics.query_rules import DENIED_FUNCTIONS, QueryScope, check_parsed
from workbench.core.errors import ComputationError, ServiceUnavailableError, WorkbenchError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = ["SqlChecker", "spark_error"]

_POSITION = re.compile(r"line (\d+),? pos(?:ition)? (\d+)")
_LOGICAL_PLAN = "org.apache.spark.sql.catalyst.plans.logical.LogicalPlan"


class SqlChecker:
    """Parses and checks SQL text with ``spark``'s parser (nothing is analyzed or run)."""

    def __init__(self, spark: SparkSession) -> None:
        self._spark = spark
        jvm = spark.sparkContext._jvm
        assert jvm is not None
        self._jvm = jvm
        self._plan_class = self._class(_LOGICAL_PLAN)
        registry = jvm.org.apache.spark.sql.catalyst.analysis.FunctionRegistry.builtin()
        names = registry.listFunction()
        builtin = {names.apply(i).funcName().lower() for i in range(names.size())}
        self.functions = frozenset(builtin) - DENIED_FUNCTIONS
        """Built-in function names a query may call."""
        self.is_plan = lru_cache(maxsize=4096)(self._is_plan)

    def parse(self, sql: str, *, what: str = "this query") -> PlanNode:
        """Spark's parsed plan of ``sql``.

        Raises:
            ComputationError: Spark's parser refused it (with line and column).
        """
        parser = self._spark._jsparkSession.sessionState().sqlParser()
        try:
            return plan_tree(parser.parsePlan(sql).toJSON())
        except Exception as err:
            raise spark_error(err, what) from err

    def check(self, sql: str, tables: frozenset[tuple[str, ...]], *, what: str) -> PlanNode:
        """Parse ``sql`` and refuse it unless it is one read-only query over ``tables``.

        Raises:
            QueryRefused: a command, another table, a file, a denied function...
            ComputationError: Spark's parser refused it.
        """
        tree = self.parse(sql, what=what)
        check_parsed(tree, QueryScope(tables, self.functions), is_plan=self.is_plan)
        return tree

    def _class(self, qualified: str) -> Any:
        return self._jvm.org.apache.spark.util.Utils.classForName(qualified, True, False)

    def _is_plan(self, qualified: str) -> bool:
        try:
            cls = self._class(qualified)
        except Py4JError:  # a class Spark cannot load is nothing we know: refuse it as a plan
            return True
        return bool(self._plan_class.isAssignableFrom(cls))


def spark_error(err: Exception, what: str) -> WorkbenchError:
    """Spark's refusal as a :class:`ComputationError`, with line and column where it says."""
    if isinstance(err, WorkbenchError):
        return err
    message = getattr(err, "getMessage", None)
    text = _first_line(message() if callable(message) else str(err))
    if (
        "Py4JNetworkError" in type(err).__name__
        or "SparkConnectGrpcException" in type(err).__name__
    ):
        return ServiceUnavailableError(f"the engine lost its Spark session: {text}")
    fields: dict[str, Any] = {}
    found = _POSITION.search(str(err))
    if found:
        fields = {"line": int(found.group(1)), "column": int(found.group(2)) + 1}
    condition = getattr(err, "getCondition", None)
    if callable(condition) and condition():
        fields["spark_error"] = condition()
    where = f" (line {fields['line']}, column {fields['column']})" if "line" in fields else ""
    return ComputationError(f"Spark refused {what}{where}: {text}", **fields)


def _first_line(text: str) -> str:
    lines = [line for line in str(text).strip().splitlines() if line.strip()]
    return lines[0] if lines else str(text)
