"""Spark's plans as plain Python trees, read from Spark's own JSON of a plan.

Spark serialises any plan or expression tree with ``TreeNode.toJSON``: a pre-order list of
nodes, each with its ``class``, ``num-children`` and fields, where a field holding a tree (an
expression, a subquery's plan, a CTE's definition) holds its own pre-order list. One call
brings the whole plan across, so checking it costs one round trip to the JVM, not one per
node; :func:`plan_tree` rebuilds the nesting and :meth:`PlanNode.walk` visits every node, in
fields too, so nothing a query holds escapes a check.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = ["PlanNode", "parts", "plan_tree"]


@dataclass
class PlanNode:
    """One node of a plan or expression tree."""

    qualified: str
    """Spark's class name, e.g. ``org.apache.spark.sql.catalyst.plans.logical.Filter``."""
    fields: dict[str, Any]
    """The node's own fields as Spark wrote them, with nested trees as :class:`PlanNode`."""
    children: list[PlanNode] = field(default_factory=list)

    @property
    def kind(self) -> str:
        """The class's simple name (``Filter``)."""
        return self.qualified.rsplit(".", 1)[-1]

    def nested(self) -> Iterator[PlanNode]:
        """The roots of the trees held in fields (expressions, subquery plans, CTEs)."""
        yield from _trees_in(self.fields)

    def walk(self) -> Iterator[PlanNode]:
        """This node and every node below it, children and nested trees alike (pre-order)."""
        stack: list[PlanNode] = [self]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed([*node.children, *node.nested()]))

    def expressions(self) -> Iterator[PlanNode]:
        """Every expression node of this node's own fields (not of its children)."""
        for root in self.nested():
            yield from root.walk()


def plan_tree(text: str | list[Any]) -> PlanNode:
    """The tree of Spark's JSON of a plan (the string ``toJSON`` answers, or its parse)."""
    nodes = json.loads(text) if isinstance(text, str) else text
    tree, used = _build(nodes, 0)
    if used != len(nodes):
        raise ValueError(f"plan JSON has {len(nodes) - used} nodes outside its root")
    return tree


def parts(value: Any) -> list[str]:
    """A multi-part name as Spark's JSON writes it (``"[silver, readings]"``), lower-cased."""
    if isinstance(value, list):
        return [str(p).lower() for p in value]
    text = str(value or "").strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    return [p.strip().lower() for p in text.split(", ")] if text else []


def _build(nodes: list[Any], start: int) -> tuple[PlanNode, int]:
    raw = nodes[start]
    count = int(raw.get("num-children", 0))
    fields = {k: _convert(v) for k, v in raw.items() if k not in ("class", "num-children")}
    node = PlanNode(str(raw["class"]), fields)
    at = start + 1
    for _ in range(count):
        child, at = _build(nodes, at)
        node.children.append(child)
    return node, at


def _is_tree(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and isinstance(value[0], dict)
        and "class" in value[0]
        and "num-children" in value[0]
    )


def _convert(value: Any) -> Any:
    if _is_tree(value):
        return plan_tree(value)
    if isinstance(value, list):
        return [_convert(v) for v in value]
    if isinstance(value, dict):
        return {k: _convert(v) for k, v in value.items()}
    return value


def _trees_in(value: Any) -> Iterator[PlanNode]:
    if isinstance(value, PlanNode):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _trees_in(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _trees_in(item)
