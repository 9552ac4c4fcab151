"""Which datasets flow to silver: the device registry's decision for a batch.

A pure function of the registry and the policy, shared by the batch processor (which then
registers and holds) and the rule preview (which only reports).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from workbench.catalog.definitions import match_device
from workbench.catalog.records import Device

DevicePolicy = Literal["auto_register", "require_approval"]


@dataclass(frozen=True)
class DeviceDecision:
    """Which datasets of a batch flow to silver (with their sensitivity) and which are held."""

    allowed: dict[str, str]
    held: frozenset[str]
    register: tuple[Device, ...] = ()


def decide_devices(
    ingestion_ids: Sequence[str], devices: Sequence[Device], policy: DevicePolicy
) -> DeviceDecision:
    """Match each dataset against the registry (exact id over the longest wildcard)."""
    allowed: dict[str, str] = {}
    held: set[str] = set()
    register: list[Device] = []
    registry = list(devices)
    for iid in ingestion_ids:
        device = match_device(registry, iid)
        if device is None and policy == "auto_register":
            device = Device(ingestion_id=iid, name=iid)
            register.append(device)
        if device is not None and device.enabled:
            allowed[iid] = device.sensitivity
        else:
            held.add(iid)
    return DeviceDecision(allowed, frozenset(held), tuple(register))
