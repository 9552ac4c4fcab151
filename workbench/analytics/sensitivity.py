"""A query's sensitivity, and who may see it: labels by their order, never by their spelling.

A query's label is the highest label among the devices whose rows can reach its result
(:func:`workbench.analytics.query_rules.tables_read` says which); a role's clearance is the
highest label it may see: viewer → ``public``, user → ``internal``, admin → ``restricted``.
Derived on every run from the devices as they are then, so a device relabelled is honoured by
the next query.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from workbench.analytics.query_rules import TableRead
from workbench.catalog.definitions import match_device
from workbench.catalog.records import SENSITIVITIES, AlertState, Device
from workbench.catalog.users import Role
from workbench.core.errors import SensitivityDenied

__all__ = [
    "AUDITED",
    "CLEARANCE",
    "Derivation",
    "SensitivityDenied",
    "alert_label",
    "check_clearance",
    "derive",
    "highest",
    "rank",
]

#: The highest label each role may see.
CLEARANCE: Mapping[Role, str] = {"viewer": "public", "user": "internal", "admin": "restricted"}
#: Reads of results labelled this or higher are written to the audit log.
AUDITED = "confidential"
#: The label of data from a device nobody registered (as auto-registration gives it).
UNREGISTERED = "internal"
#: Tables that are not per-device data have a label of their own.
FIXED_LABELS: Mapping[tuple[str, ...], str] = {("devices",): "internal"}


def rank(label: str) -> int:
    """A label's place in the order, ``public`` lowest (unknown labels rank highest)."""
    return SENSITIVITIES.index(label) if label in SENSITIVITIES else len(SENSITIVITIES)


def highest(labels: Iterable[str]) -> str:
    """The highest of ``labels`` by their order (``public`` when there are none)."""
    return max(labels, key=rank, default=SENSITIVITIES[0])


@dataclass(frozen=True)
class Derivation:
    """Where a query's label comes from."""

    label: str
    devices: Mapping[str, str]
    """Every device (ingestion id) whose rows can reach the result, with its label."""
    tables: tuple[str, ...]
    """The tables read, as ``database.table``."""

    def blocking(self, clearance: str) -> list[tuple[str, str]]:
        """``(device, label)`` above ``clearance``, highest first."""
        above = [(d, lab) for d, lab in self.devices.items() if rank(lab) > rank(clearance)]
        return sorted(above, key=lambda item: (-rank(item[1]), item[0]))

    def to_dict(self) -> dict[str, object]:
        """As an answer shows it."""
        return {"label": self.label, "devices": dict(self.devices), "tables": list(self.tables)}


def derive(
    reads: Sequence[TableRead], devices: Sequence[Device], ingestion_ids: Iterable[str]
) -> Derivation:
    """The label of a query that makes ``reads``.

    Args:
        reads: the scans of the query's plan, each narrowed to devices or not.
        devices: the registered devices (wildcards allowed).
        ingestion_ids: every ingestion id that has data: an un-narrowed scan may hold any.
    """
    every = sorted(set(ingestion_ids))
    labels: dict[str, str] = {}
    fixed: list[str] = []
    for read in reads:
        if read.table in FIXED_LABELS:
            fixed.append(FIXED_LABELS[read.table])
            continue
        # Narrowed to ids without data: those rows do not exist, so they add nothing.
        ids = every if read.ingestion_ids is None else sorted(read.ingestion_ids)
        for iid in ids:
            device = match_device(list(devices), iid)
            if device is None and read.ingestion_ids is not None and iid not in every:
                continue
            labels[iid] = device.sensitivity if device is not None else UNREGISTERED
    tables = tuple(sorted({".".join(r.table) for r in reads}))
    return Derivation(highest([*labels.values(), *fixed]), labels, tables)


def check_clearance(derivation: Derivation, role: Role, *, what: str = "this query") -> None:
    """Refuse a result above ``role``'s clearance, naming the device and label that block it.

    Raises:
        SensitivityDenied: the label is above the clearance.
    """
    clearance = CLEARANCE[role]
    if rank(derivation.label) <= rank(clearance):
        return
    blocking = derivation.blocking(clearance)
    needed = next(r for r, c in CLEARANCE.items() if rank(c) >= rank(derivation.label))
    if blocking:
        device, label = blocking[0]
        source = f"device {device!r} is {label!r}"
    else:
        source = f"{', '.join(derivation.tables)} is {derivation.label!r}"
        device, label = None, derivation.label
    more = f" (and {len(blocking) - 1} more device(s) above it)" if len(blocking) > 1 else ""
    raise SensitivityDenied(
        f"{what} reads data labelled {derivation.label!r}: {source}{more}. Your role "
        f"{role!r} may see up to {clearance!r}; it needs the role {needed!r}, or a filter "
        "on ingestion_id that leaves those devices out",
        device=device,
        label=label,
        clearance=clearance,
        needs=needed,
    )


def alert_label(alert: AlertState, devices: Sequence[Device]) -> str:
    """An alert's label: the higher of the one its readings carried and its device's now."""
    device = match_device(list(devices), alert.ingestion_id)
    return highest([alert.sensitivity, device.sensitivity if device else UNREGISTERED])
