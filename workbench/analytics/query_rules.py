"""What a query may be, read off Spark's own plans: the rules, with no Spark in them.

A query passes two checks. On the **parsed** plan (before Spark resolves a single name, so no
file is touched and nothing runs): every plan node is a read-only query operator, every table
named is one the workbench serves, every function is a built-in on the allowlist, and table
functions are generators only. On the **analyzed** plan (names resolved): every leaf is one of
those tables or literal rows, and no reflective or user-defined expression survived.

:func:`tables_read` then follows the **optimized** plan (filters pushed down to the scans, CTEs
inlined, filters inferred across joins: the optimizer's rewrites keep a query's meaning, so
they can only make the answer more precise) to find, for each table read, which devices' rows
can reach the result: a positive filter on ``ingestion_id`` (``=`` or ``IN`` with literals)
that every row of that scan passes narrows it to those devices; anything else means every
device. Each refusal is a :class:`QueryRefused` naming what was refused and why.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

from workbench.analytics.plan_tree import PlanNode, parts
from workbench.core.errors import QueryRefused

__all__ = [
    "ALLOWED_PLAN_NODES",
    "DENIED_FUNCTIONS",
    "GENERATOR_FUNCTIONS",
    "QueryRefused",
    "QueryScope",
    "TableRead",
    "check_analyzed",
    "check_parsed",
    "tables_read",
]

#: The plan operators a read-only query is made of (parsed and analyzed forms).
ALLOWED_PLAN_NODES = frozenset(
    {
        "Aggregate",
        "CTERelationDef",
        "CTERelationRef",
        "Deduplicate",
        "Distinct",
        "Except",
        "Expand",
        "Filter",
        "Generate",
        "GlobalLimit",
        "Intersect",
        "Join",
        "LateralJoin",
        "LocalLimit",
        "LocalRelation",
        "Offset",
        "OneRowRelation",
        "Pivot",
        "Project",
        "RelationTimeTravel",
        "Sample",
        "Sort",
        "SubqueryAlias",
        "Tail",
        "Union",
        "Unpivot",
        "UnresolvedHaving",
        "UnresolvedInlineTable",
        "UnresolvedRelation",
        "UnresolvedSubqueryColumnAliases",
        "UnresolvedTVFAliases",
        "UnresolvedTableValuedFunction",
        "UnresolvedWith",
        "View",
        "Window",
        "WithCTE",
        "WithWindowDefinition",
    }
)
#: Tells whether a fully qualified class name is a logical plan node (asked of the JVM).
IsPlan = Callable[[str], bool]

#: Leaves an analyzed query may read: catalog tables, literal rows.
_ALLOWED_LEAVES = frozenset(
    {"LogicalRelation", "LocalRelation", "OneRowRelation", "CTERelationRef"}
)

#: Built-ins that reach outside SQL (Java reflection: the engine's environment,
#: ``System.exit``), and those that build a value of any size from a few characters of SQL
#: (``sequence(1, 2e9)`` fills the engine's memory before any timeout can cancel it).
DENIED_FUNCTIONS = frozenset(
    {"reflect", "java_method", "try_reflect", "sequence", "array_repeat", "repeat", "space"}
)
#: Why each denied function is denied, for the message.
_DENIED_BECAUSE = {
    "reflect": "it calls Java methods on the engine",
    "java_method": "it calls Java methods on the engine",
    "try_reflect": "it calls Java methods on the engine",
}
#: The only table functions allowed: generators over the rows of a query.
GENERATOR_FUNCTIONS = frozenset(
    {
        "explode",
        "explode_outer",
        "inline",
        "inline_outer",
        "json_tuple",
        "posexplode",
        "posexplode_outer",
        "stack",
        "variant_explode",
        "variant_explode_outer",
    }
)
#: Expression classes that run code a query did not spell in SQL.
_DENIED_EXPRESSIONS = ("UDF", "UDAF", "Reflection", "PythonUDTF", "Aggregator")
#: Data source names Spark reads a path with, as in ``text.`/etc/passwd```.
FILE_FORMATS = frozenset(
    {
        "avro",
        "binaryfile",
        "csv",
        "delta",
        "hive",
        "image",
        "jdbc",
        "json",
        "libsvm",
        "noop",
        "orc",
        "parquet",
        "text",
        "xml",
    }
)
#: Operators every row of their input passes through unchanged in meaning: a filter above
#: them constrains the rows of the scans below them. Any other operator stops a filter.
_ROW_PRESERVING = frozenset(
    {
        "Project",
        "Filter",
        "SubqueryAlias",
        "Join",
        "Sort",
        "GlobalLimit",
        "LocalLimit",
        "Offset",
        "Tail",
        "Distinct",
        "Deduplicate",
        "View",
        "Sample",
    }
)
_CATALOG = "spark_catalog"


@dataclass(frozen=True)
class QueryScope:
    """What queries may name: tables (``("silver", "readings")``, ``("devices",)``) and
    functions (lower-case built-in names)."""

    tables: frozenset[tuple[str, ...]]
    functions: frozenset[str]

    def table_list(self) -> str:
        """The tables, for a message."""
        return ", ".join(sorted(".".join(t) for t in self.tables))


@dataclass(frozen=True)
class TableRead:
    """One scan of a table, and the devices whose rows can leave it."""

    table: tuple[str, ...]
    ingestion_ids: frozenset[str] | None
    """The devices (ingestion ids) a filter narrowed the scan to; ``None``: every device."""


def check_parsed(tree: PlanNode, scope: QueryScope, *, is_plan: IsPlan) -> None:
    """Refuse a parsed plan that is not exactly one read-only query over ``scope``.

    Args:
        tree: the parsed plan (:func:`~workbench.analytics.plan_tree.plan_tree`).
        scope: the tables and functions allowed.
        is_plan: tells a plan node's class from an expression's (asked of the JVM).

    Raises:
        QueryRefused: naming the first operator, table or function refused.
    """
    ctes = _cte_names(tree)
    for node in tree.walk():
        kind = node.kind
        if is_plan(node.qualified):
            if kind == "UnresolvedHint":
                raise QueryRefused(
                    "query hints (/*+ ... */) are not allowed: the engine plans the query",
                    node=kind,
                )
            if kind not in ALLOWED_PLAN_NODES:
                raise QueryRefused(
                    f"only read-only queries are allowed, and this statement is a {kind}: "
                    "write one SELECT (or WITH ... SELECT) over the workbench's tables",
                    node=kind,
                )
            if kind == "UnresolvedRelation":
                _check_relation(parts(node.fields.get("multipartIdentifier")), scope, ctes)
            elif kind == "UnresolvedTableValuedFunction":
                _check_table_function(parts(node.fields.get("name")))
        elif kind in ("UnresolvedFunction", "UnresolvedGenerator"):
            _check_function(_function_name(node), scope)


def check_analyzed(tree: PlanNode, scope: QueryScope, *, is_plan: IsPlan) -> None:
    """Refuse an analyzed plan that reads anything but ``scope``'s tables and literal rows,
    or that holds a reflective or user-defined expression.

    Raises:
        QueryRefused: naming the relation or expression refused.
    """
    for node in tree.walk():
        kind = node.kind
        if any(marker in kind for marker in _DENIED_EXPRESSIONS):
            raise QueryRefused(
                f"{kind} is not allowed in a query: only Spark's built-in functions run here",
                node=kind,
            )
        if not is_plan(node.qualified):
            continue
        if kind not in ALLOWED_PLAN_NODES | _ALLOWED_LEAVES:
            raise QueryRefused(f"a query may not hold a {kind}", node=kind)
        if kind == "LogicalRelation":
            name = _catalog_table(node)
            if name is None or name not in scope.tables:
                shown = ".".join(name) if name else "a file or an unnamed relation"
                raise QueryRefused(
                    f"{shown} is not a table the workbench serves; "
                    f"query one of {scope.table_list()}",
                    table=shown,
                )


def tables_read(analyzed: PlanNode, optimized: PlanNode) -> list[TableRead]:
    """Every table scan of a query, with the devices a filter narrowed it to.

    The optimized plan narrows best; but the optimizer may also answer a scan from table
    metadata (Delta answers ``count(*)`` from its log) or drop a view, and data that shaped
    the result must still count. So the optimized plan's scans are used only when they cover
    every table the analyzed plan reads, as often; otherwise the analyzed plan's are.
    Scans inside subquery expressions are followed too, each on its own (a filter outside a
    subquery does not narrow it).
    """
    found: list[TableRead] = []
    _follow(analyzed, {}, found)
    narrowed: list[TableRead] = []
    _follow(optimized, {}, narrowed)
    for table in {r.table for r in found}:
        wanted = sum(1 for r in found if r.table == table)
        if sum(1 for r in narrowed if r.table == table) < wanted:
            return found
    return narrowed


# -- the parsed plan -------------------------------------------------------------------------


def _cte_names(tree: PlanNode) -> set[str]:
    names: set[str] = set()
    for node in tree.walk():
        if node.kind == "UnresolvedWith":
            for pair in node.fields.get("cteRelations") or []:
                if isinstance(pair, Mapping) and "_1" in pair:
                    names.add(str(pair["_1"]).lower())
    return names


def _check_relation(name: list[str], scope: QueryScope, ctes: set[str]) -> None:
    if len(name) == 1 and name[0] in ctes:
        return
    if len(name) >= 2 and name[0] == _CATALOG:
        name = name[1:]
    if tuple(name) in scope.tables:
        return
    shown = ".".join(name)
    if len(name) == 2 and name[0] in FILE_FORMATS:
        raise QueryRefused(
            f"reading files directly ({shown}) is not allowed: query the workbench's tables "
            f"({scope.table_list()})",
            table=shown,
        )
    raise QueryRefused(
        f"table {shown!r} is not one the workbench serves; query one of {scope.table_list()}",
        table=shown,
    )


def _check_table_function(name: list[str]) -> None:
    fn = ".".join(name)
    if fn not in GENERATOR_FUNCTIONS:
        raise QueryRefused(
            f"the table function {fn}() is not allowed: only generators over a query's rows "
            f"({', '.join(sorted(GENERATOR_FUNCTIONS))}) may appear in FROM",
            function=fn,
        )


def _function_name(node: PlanNode) -> str:
    if node.kind == "UnresolvedGenerator":
        ident = node.fields.get("name")
        if isinstance(ident, Mapping):
            return ".".join(p for p in (ident.get("database"), ident.get("funcName")) if p)
        return str(ident or "").lower()
    return ".".join(parts(node.fields.get("nameParts")))


def _check_function(name: str, scope: QueryScope) -> None:
    name = name.lower()
    if name in DENIED_FUNCTIONS:
        why = _DENIED_BECAUSE.get(name, "it builds values of any size in the engine's memory")
        raise QueryRefused(f"{name}() is not allowed: {why}", function=name)
    if name not in scope.functions:
        raise QueryRefused(
            f"{name}() is not an allowed function: only Spark's built-in functions run here "
            "(no user-defined functions)",
            function=name,
        )


# -- the analyzed and optimized plans -----------------------------------------------------


def _catalog_table(node: PlanNode) -> tuple[str, ...] | None:
    table = node.fields.get("catalogTable")
    if not isinstance(table, Mapping):
        return None
    ident = table.get("identifier")
    if not isinstance(ident, Mapping) or not ident.get("table"):
        return None
    database = ident.get("database")
    return tuple(str(p).lower() for p in (database, ident["table"]) if p)


def _view_name(node: PlanNode) -> tuple[str, ...] | None:
    desc = node.fields.get("desc")
    ident = desc.get("identifier") if isinstance(desc, Mapping) else None
    if not isinstance(ident, Mapping) or not ident.get("table"):
        return None
    return (str(ident["table"]).lower(),)


def _follow(node: PlanNode, known: dict[int, frozenset[str]], reads: list[TableRead]) -> None:
    kind = node.kind
    for expression in node.expressions():
        # A subquery's plan is read on its own: nothing outside it constrains its rows.
        for plan in _subquery_plans(expression):
            _follow(plan, {}, reads)
    if kind == "LogicalRelation":
        table = _catalog_table(node) or ("?",)
        ids = _relation_ids(node, known)
        reads.append(TableRead(table, ids))
        return
    if kind == "View" and node.fields.get("isTempView"):
        reads.append(TableRead(_view_name(node) or ("?",), None))
        return
    if kind == "Filter":
        known = {**known}
        for attr, values in _positive_filters(node.fields.get("condition")):
            known[attr] = known[attr] & values if attr in known else values
    elif kind == "Aggregate":
        # Rows of a group come from rows with the group's key: a filter on a grouping column
        # above the aggregate constrains the rows below it.
        grouping = {_expr_id(e) for e in _as_trees(node.fields.get("groupingExpressions"))}
        known = {k: v for k, v in known.items() if k in grouping}
    elif kind == "Window":
        partition = {_expr_id(e) for e in _as_trees(node.fields.get("partitionSpec"))}
        known = {k: v for k, v in known.items() if k in partition}
    elif kind not in _ROW_PRESERVING:
        known = {}
    for child in node.children:
        _follow(child, known, reads)


def _relation_ids(node: PlanNode, known: Mapping[int, frozenset[str]]) -> frozenset[str] | None:
    for attr in _as_trees(node.fields.get("output")):
        if attr.kind == "AttributeReference" and str(attr.fields.get("name")).lower() == (
            "ingestion_id"
        ):
            return known.get(_expr_id(attr))
    return None


def _positive_filters(condition: object) -> Iterator[tuple[int, frozenset[str]]]:
    """``(exprId, values)`` for each top-level conjunct ``attr = 'v'`` or ``attr IN (...)``."""
    for conjunct in _conjuncts(condition):
        kind = conjunct.kind
        if kind in ("EqualTo", "EqualNullSafe") and len(conjunct.children) == 2:
            left, right = conjunct.children
            if left.kind == "Literal":
                left, right = right, left
            if left.kind == "AttributeReference" and right.kind == "Literal":
                value = right.fields.get("value")
                if value is not None:
                    yield _expr_id(left), frozenset({str(value)})
        elif kind == "In" and conjunct.children:
            head, *items = conjunct.children
            if (
                head.kind == "AttributeReference"
                and items
                and all(i.kind == "Literal" and i.fields.get("value") is not None for i in items)
            ):
                yield _expr_id(head), frozenset(str(i.fields["value"]) for i in items)


def _conjuncts(condition: object) -> Iterator[PlanNode]:
    for tree in _as_trees(condition):
        if tree.kind == "And":
            for child in tree.children:
                yield from _conjuncts([child])
        else:
            yield tree


def _subquery_plans(expression: PlanNode) -> Iterable[PlanNode]:
    if "Subquery" in expression.kind or expression.kind in ("Exists", "ListQuery"):
        plan = expression.fields.get("plan")
        if isinstance(plan, PlanNode):
            yield plan


def _as_trees(value: object) -> list[PlanNode]:
    if isinstance(value, PlanNode):
        return [value]
    if isinstance(value, list):
        return [t for item in value for t in _as_trees(item)]
    return []


def _expr_id(node: PlanNode) -> int:
    ident = node.fields.get("exprId")
    if isinstance(ident, Mapping) and "id" in ident:
        return int(ident["id"])
    return -1
