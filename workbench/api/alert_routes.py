"""HTTP routes of alerts and alert rules, served by the engine.

Role viewer: ``GET /api/alerts[?status=firing|resolved]``: the alert states the caller may see
(an alert's label is the higher of its readings' and its device's now; above the caller's
clearance it is left out and counted in ``hidden``). Role user: ``POST
/api/alerts/{alert_id}/ack`` (who and when come from the token; an alert the caller may not see
is not found), ``GET`` and ``POST /api/alert-rules``. Admins only: ``DELETE
/api/alert-rules/{rule_id}``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from workbench.analytics.sensitivity import CLEARANCE, alert_label, rank
from workbench.api.auth import Gate
from workbench.catalog.definitions import ALERT_OPS
from workbench.catalog.records import AlertState
from workbench.catalog.store import Catalog
from workbench.catalog.users import Identity
from workbench.core.errors import NotFoundError


class AlertRuleIn(BaseModel):
    """A threshold on a canonical field, per sensor per gold window."""

    name: str = Field(min_length=1, max_length=200)
    field: str = Field(min_length=1, max_length=500)
    op: str = Field(pattern="^(" + "|".join(ALERT_OPS) + ")$")
    threshold: float
    ingestion_id: str | None = Field(default=None, max_length=200)
    enabled: bool = True


def build_alert_router(catalog: Catalog, gate: Gate) -> APIRouter:
    """The routes over this engine's catalog."""
    router = APIRouter(prefix="/api")
    viewer, user = gate.role("viewer"), gate.role("user")

    def visible(identity: Identity, alerts: list[AlertState]) -> list[tuple[AlertState, str]]:
        devices = catalog.list_devices()
        clearance = rank(CLEARANCE[identity.role])
        labelled = [(a, alert_label(a, devices)) for a in alerts]
        return [(a, label) for a, label in labelled if rank(label) <= clearance]

    @router.get("/alerts")
    def list_alerts(status: str | None = None, identity: Identity = viewer) -> dict[str, Any]:
        states = catalog.list_alert_states(status=status)
        shown = visible(identity, states)
        return {
            "alerts": [{**a.to_dict(), "sensitivity": label} for a, label in shown],
            "hidden": len(states) - len(shown),
            "clearance": CLEARANCE[identity.role],
        }

    @router.post("/alerts/{alert_id}/ack")
    def acknowledge(alert_id: int, identity: Identity = user) -> dict[str, Any]:
        if not visible(identity, [catalog.get_alert_state(alert_id)]):
            raise NotFoundError(f"no alert with id {alert_id}", alert_id=alert_id)
        return catalog.acknowledge_alert(alert_id, identity.user).to_dict()

    @router.get("/alert-rules", dependencies=[user])
    def alert_rules() -> list[dict[str, Any]]:
        return [dataclasses.asdict(r) for r in catalog.list_alert_rules(include_disabled=True)]

    @router.post("/alert-rules", status_code=201, dependencies=[user])
    def add_alert_rule(body: AlertRuleIn) -> dict[str, Any]:
        rule_id = catalog.add_alert_rule(
            body.name,
            body.field,
            body.op,
            body.threshold,
            ingestion_id=body.ingestion_id,
            enabled=body.enabled,
        )
        (rule,) = [r for r in catalog.list_alert_rules(include_disabled=True) if r.id == rule_id]
        return dataclasses.asdict(rule)

    @router.delete("/alert-rules/{rule_id}", dependencies=[gate.role("admin")])
    def delete_alert_rule(rule_id: int) -> dict[str, int]:
        if not any(r.id == rule_id for r in catalog.list_alert_rules(include_disabled=True)):
            raise NotFoundError(f"no alert rule with id {rule_id}", rule_id=rule_id)
        catalog.delete_alert_rule(rule_id)
        return {"deleted": rule_id}

    return router
