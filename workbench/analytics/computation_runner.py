"""Saved computations on the query service: stored only once checked, run with parameters.

A computation's label works one way for everyone: it can raise what the query service
derives, never lower it. Only an admin may save a label below the derived one (declassify,
say, an average over every device made public); that label then stands as it is. A later
save by someone else clears the declassification.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any

from workbench.analytics.parameters import bind_parameters, check_parameters
from workbench.analytics.query_service import PreparedQuery, QueryResult, QueryService
from workbench.analytics.sensitivity import highest, rank
from workbench.catalog.records import SENSITIVITIES, Computation, Tile
from workbench.catalog.store import Catalog
from workbench.catalog.users import Identity
from workbench.core.errors import ComputationError, NotFoundError

__all__ = ["TILE_TYPES", "Computations", "check_tile", "describe", "effective_label"]

#: How a computation's result may be shown.
TILE_TYPES = ("table", "stat", "timeseries", "bar", "gauge")
#: Typed stand-ins for parameters without a default, so a query can be checked at save time.
_STAND_INS: dict[str, Any] = {
    "string": "",
    "int": 0,
    "double": 0.0,
    "boolean": False,
    "date": date(1970, 1, 1),
    "timestamp": datetime(1970, 1, 1, tzinfo=UTC),
}


class Computations:
    """Saved computations, checked by the query service before they are stored."""

    def __init__(self, service: QueryService, catalog: Catalog) -> None:
        self.service = service
        self.catalog = catalog

    def save(self, computation: Computation, identity: Identity) -> dict[str, Any]:
        """Check and store ``computation`` (owned by whoever made it first).

        Returns:
            The stored computation and the label derived for it (with its parameters'
            defaults, or typed stand-ins).

        Raises:
            QueryRefused, ComputationError: the SQL, a parameter, the viz or the label is
                refused.
        """
        name = computation.name
        if computation.tile_type not in TILE_TYPES:
            raise ComputationError(
                f"tile_type {computation.tile_type!r} of {name!r} is not one of "
                f"{', '.join(TILE_TYPES)}",
                computation=name,
            )
        label = computation.sensitivity
        if label is not None and label not in SENSITIVITIES:
            raise ComputationError(
                f"sensitivity {label!r} of {name!r} is not one of {', '.join(SENSITIVITIES)}",
                computation=name,
            )
        check_parameters(computation.parameters, computation=name)
        stand_ins = {
            p.name: _STAND_INS[p.type] for p in computation.parameters if p.default is None
        }
        values = bind_parameters(computation.parameters, stand_ins, computation=name)
        prepared = self.service.prepare(computation.sql, values, what=f"computation {name!r}")
        derived = prepared.derivation.label
        declassified = (
            label is not None and rank(label) < rank(derived) and identity.has_role("admin")
        )
        if label is not None and rank(label) < rank(derived) and not declassified:
            raise ComputationError(
                f"computation {name!r} reads {derived!r} data, so it cannot be labelled "
                f"{label!r}: a label can only raise the derived one (an admin may lower it)",
                computation=name,
                derived=derived,
            )
        try:
            owner = self.catalog.get_computation(name).owner
        except NotFoundError:
            owner = None
        stored = replace(computation, owner=owner or identity.user, declassified=declassified)
        self.catalog.save_computation(stored)
        return {**describe(stored), "derived_sensitivity": prepared.derivation.to_dict()}

    def prepare(self, name: str, parameters: Mapping[str, Any] | None = None) -> PreparedQuery:
        """Check a saved computation with ``parameters`` and build its frame, without running
        it (see :meth:`QueryService.prepare`)."""
        computation = self.catalog.get_computation(name)
        values = bind_parameters(computation.parameters, parameters or {}, computation=name)
        return self.service.prepare(computation.sql, values, what=f"computation {name!r}")

    def run(
        self,
        name: str,
        identity: Identity,
        *,
        parameters: Mapping[str, Any] | None = None,
        limit: int | None = None,
        timeout_seconds: float | None = None,
    ) -> QueryResult:
        """Run a saved computation for ``identity`` (see :meth:`QueryService.run`)."""
        computation = self.catalog.get_computation(name)
        values = bind_parameters(computation.parameters, parameters or {}, computation=name)
        extra = {} if timeout_seconds is None else {"timeout_seconds": timeout_seconds}
        return self.service.run(
            computation.sql,
            identity,
            parameters=values,
            limit=limit,
            computation=name,
            label=lambda derived: effective_label(computation, derived),
            **extra,
        )


def check_tile(computations: Computations, tile: Tile) -> None:
    """Refuse a tile whose computation does not run with its parameters, or whose viz names
    columns the result does not have.

    Raises:
        ComputationError: naming the missing columns and those that exist.
    """
    prepared = computations.prepare(tile.computation, tile.parameters)
    columns = [name for name, _ in prepared.columns]
    named = {k: v for k, v in tile.config.items() if k in ("x", "y", "color", "value")}
    missing = {k: v for k, v in named.items() if v not in columns}
    if missing:
        raise ComputationError(
            f"tile {tile.title!r}: {', '.join(f'{k}={v!r}' for k, v in missing.items())} "
            f"not among the columns of {tile.computation!r} ({', '.join(columns)})",
            computation=tile.computation,
        )


def effective_label(computation: Computation, derived: str) -> str:
    """The label a run of ``computation`` carries, given the one derived for the run."""
    if computation.sensitivity is None:
        return derived
    if computation.declassified:
        return computation.sensitivity
    return highest([computation.sensitivity, derived])


def describe(computation: Computation) -> dict[str, Any]:
    """A computation as answered."""
    return {
        "name": computation.name,
        "sql": computation.sql,
        "description": computation.description,
        "tile_type": computation.tile_type,
        "tile_config": computation.tile_config,
        "parameters": [p.to_dict() for p in computation.parameters],
        "sensitivity": computation.sensitivity,
        "declassified": computation.declassified,
        "owner": computation.owner,
    }
