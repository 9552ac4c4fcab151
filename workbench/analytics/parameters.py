"""Typed computation parameters: checked, converted, handed to Spark as SQL parameters.

Values are never spliced into SQL text: Spark binds ``:name`` markers to literals of the
parameter's type, so a value like ``x' OR '1'='1`` is one string that matches nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

from workbench.catalog.records import PARAMETER_TYPES, Parameter
from workbench.core.errors import ComputationError

__all__ = ["bind_parameters", "check_parameters"]

_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


def check_parameters(parameters: Sequence[Parameter], *, computation: str) -> None:
    """Refuse unknown types, bad or repeated names, and defaults of the wrong type."""
    seen: set[str] = set()
    for p in parameters:
        if not p.name or not set(p.name) <= _NAME_CHARS or p.name[0].isdigit():
            raise ComputationError(
                f"parameter name {p.name!r} of {computation!r} must be letters, digits and _",
                computation=computation,
            )
        if p.name in seen:
            raise ComputationError(f"parameter {p.name!r} appears twice", computation=computation)
        seen.add(p.name)
        if p.type not in PARAMETER_TYPES:
            raise ComputationError(
                f"parameter {p.name!r} has type {p.type!r}; use one of "
                f"{', '.join(PARAMETER_TYPES)}",
                computation=computation,
                parameter=p.name,
            )
        if p.default is not None:
            convert(p, p.default, computation=computation)


def bind_parameters(
    parameters: Sequence[Parameter], given: Mapping[str, Any], *, computation: str
) -> dict[str, Any]:
    """The values to bind: each given one converted to its type, defaults for the rest.

    Raises:
        ComputationError: an unknown name, a missing value without default, or a value that
            is not of its parameter's type.
    """
    declared = {p.name: p for p in parameters}
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise ComputationError(
            f"{computation!r} has no parameter {', '.join(map(repr, unknown))}; it takes "
            f"{', '.join(declared) or 'none'}",
            computation=computation,
        )
    bound: dict[str, Any] = {}
    for name, p in declared.items():
        value = given.get(name, p.default)
        if value is None:
            raise ComputationError(
                f"{computation!r} needs a value for its parameter {name!r} ({p.type})",
                computation=computation,
                parameter=name,
            )
        bound[name] = convert(p, value, computation=computation)
    return bound


def convert(p: Parameter, value: Any, *, computation: str) -> Any:
    """``value`` as ``p``'s type (strings from a command line or a URL are parsed)."""
    try:
        if p.type == "string":
            return str(value)
        if p.type == "boolean":
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("true", "1", "yes"):
                return True
            if text in ("false", "0", "no"):
                return False
            raise ValueError(value)
        if p.type == "int":
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if p.type == "double":
            return float(value)
        if p.type == "date":
            return value if isinstance(value, date) else date.fromisoformat(str(value))
        if p.type == "timestamp":
            if isinstance(value, datetime):
                return value
            return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except (TypeError, ValueError) as err:
        raise ComputationError(
            f"parameter {p.name!r} of {computation!r} must be a {p.type}, not {value!r}",
            computation=computation,
            parameter=p.name,
        ) from err
    raise ComputationError(f"parameter {p.name!r} has unknown type {p.type!r}")
