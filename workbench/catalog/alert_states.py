"""Alert states: each alert rule on each sensor firing or resolved, and acknowledged by whom.

:func:`advance` is the whole state machine, pure: the gold stream hands over what each batch
saw per rule, sensor and window (:class:`AlertObservation`), in window order, and a state
follows the newest window of its sensor. A window that crosses the threshold makes the alert
fire (a new episode when it was resolved, the same one when it still fires); the first later
window that does not cross resolves it. Windows older than the newest seen change nothing, so
a batch applied twice (a replay after a crash) leaves the states as they were.

:class:`AlertStateTables` is the catalog mixin that stores them (it needs only
``self.engine``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Engine, func, insert, select, update
from sqlalchemy.engine import RowMapping

from workbench.catalog import tables as t
from workbench.catalog.dialect import stored_utc
from workbench.catalog.records import ALERT_STATUSES, AlertObservation, AlertState
from workbench.core.clock import utcnow
from workbench.core.errors import ConfigError, NotFoundError

__all__ = ["AlertStateTables", "Transition", "advance"]


class Transition(NamedTuple):
    """A state that changed status: ``before`` None for an alert seen for the first time."""

    before: str | None
    after: AlertState


def advance(state: AlertState | None, seen: AlertObservation, now: datetime) -> AlertState | None:
    """The state after ``seen``: ``state`` itself when nothing changes, None when there is
    still nothing to keep (a sensor within its threshold that never alerted)."""
    if state is None:
        if not seen.crossed:
            return None
        return AlertState(
            rule_id=seen.rule_id,
            ingestion_id=seen.ingestion_id,
            sensor_id=seen.sensor_id,
            status="firing",
            value=seen.value,
            window_start=seen.window_start,
            fired_at=now,
            sensitivity=seen.sensitivity,
            updated_at=now,
        )
    if seen.window_start < state.window_start:
        return state  # an older window: the state follows the newest one
    newer = seen.window_start > state.window_start
    if seen.crossed and state.status == "firing":
        value = _worse(state.value, seen.value, higher=seen.worse_is_higher)
        if not newer and value == state.value:
            return state
        return dataclasses.replace(
            state, value=value, window_start=seen.window_start, updated_at=now
        )
    if seen.crossed:  # resolved, and crossing again: a new episode, not yet acknowledged
        return dataclasses.replace(
            state,
            status="firing",
            value=seen.value,
            window_start=seen.window_start,
            fired_at=now,
            resolved_at=None,
            episodes=state.episodes + 1,
            acknowledged_by=None,
            acknowledged_at=None,
            sensitivity=seen.sensitivity,
            updated_at=now,
        )
    if not newer:
        return state  # the same window, partly within the threshold: it crossed all the same
    if state.status == "firing":
        return dataclasses.replace(
            state, status="resolved", window_start=seen.window_start, resolved_at=now,
            updated_at=now,
        )  # fmt: skip
    return dataclasses.replace(state, window_start=seen.window_start, updated_at=now)


def _worse(a: float | None, b: float | None, *, higher: bool) -> float | None:
    if a is None or b is None:
        return a if b is None else b
    return max(a, b) if higher else min(a, b)


class AlertStateTables:
    """Alert states over the catalog database."""

    engine: Engine

    def apply_alert_observations(
        self, observations: Iterable[AlertObservation]
    ) -> list[Transition]:
        """Advance every alert the observations touch, in one transaction; returns the alerts
        whose status changed (new ones included)."""
        ordered = sorted(observations, key=lambda o: o.window_start)
        if not ordered:
            return []
        now = utcnow()
        col = t.alert_states.c
        rule_ids = sorted({o.rule_id for o in ordered})
        transitions: list[Transition] = []
        with self.engine.begin() as conn:
            rows = conn.execute(select(t.alert_states).where(col.rule_id.in_(rule_ids)))
            stored = {s.key: s for s in map(_state, rows.mappings())}
            current = dict(stored)
            for seen in ordered:
                key = (seen.rule_id, seen.ingestion_id, seen.sensor_id)
                before = current.get(key)
                after = advance(before, seen, now)
                if after is None or after is before:
                    continue
                current[key] = after
                if before is None or before.status != after.status:
                    transitions.append(Transition(None if before is None else before.status, after))
            for key, state in current.items():
                if state is stored.get(key):
                    continue
                values = _row(state)
                if state.id is None:
                    conn.execute(insert(t.alert_states).values(**values))
                else:
                    conn.execute(update(t.alert_states).where(col.id == state.id).values(**values))
        return transitions

    def list_alert_states(self, *, status: str | None = None) -> list[AlertState]:
        """Alert states with their rule's name, firing first, newest first.

        Raises:
            ConfigError: ``status`` is not one of :data:`ALERT_STATUSES`.
        """
        query = select(t.alert_states, t.alert_rules.c.name.label("rule_name")).join(
            t.alert_rules, t.alert_rules.c.id == t.alert_states.c.rule_id, isouter=True
        )
        if status is not None:
            if status not in ALERT_STATUSES:
                raise ConfigError(
                    f"alert status {status!r}: use one of {', '.join(ALERT_STATUSES)}",
                    status=status,
                )
            query = query.where(t.alert_states.c.status == status)
        with self.engine.begin() as conn:
            states = [_state(row) for row in conn.execute(query).mappings()]
        return sorted(states, key=lambda s: (s.status != "firing", -s.updated_at.timestamp()))

    def get_alert_state(self, alert_id: int) -> AlertState:
        """One alert state.

        Raises:
            NotFoundError: there is no alert with that id.
        """
        query = (
            select(t.alert_states, t.alert_rules.c.name.label("rule_name"))
            .join(t.alert_rules, t.alert_rules.c.id == t.alert_states.c.rule_id, isouter=True)
            .where(t.alert_states.c.id == alert_id)
        )
        with self.engine.begin() as conn:
            row = conn.execute(query).mappings().first()
        if row is None:
            raise NotFoundError(f"no alert with id {alert_id}", alert_id=alert_id)
        return _state(row)

    def acknowledge_alert(self, alert_id: int, user: str) -> AlertState:
        """Mark the alert's current episode acknowledged by ``user`` (now); a second
        acknowledgement keeps the first one's name and time.

        Raises:
            NotFoundError: there is no alert with that id.
        """
        col = t.alert_states.c
        with self.engine.begin() as conn:
            conn.execute(
                update(t.alert_states)
                .where(col.id == alert_id, col.acknowledged_by.is_(None))
                .values(acknowledged_by=user, acknowledged_at=utcnow())
            )
        return self.get_alert_state(alert_id)

    def firing_alerts_per_rule(self) -> dict[str, int]:
        """How many sensors each enabled alert rule fires for now, by rule id (as a label
        value; rules firing for none: 0)."""
        col = t.alert_states.c
        counts = (
            select(col.rule_id, func.count().label("n"))
            .where(col.status == "firing")
            .group_by(col.rule_id)
        )
        rules = select(t.alert_rules.c.id).where(t.alert_rules.c.enabled.is_(True))
        with self.engine.begin() as conn:
            firing = {int(r.rule_id): int(r.n) for r in conn.execute(counts)}
            return {str(rid): firing.get(int(rid), 0) for rid in conn.execute(rules).scalars()}


def _row(state: AlertState) -> dict[str, Any]:
    values = {f.name: getattr(state, f.name) for f in dataclasses.fields(state)}
    for derived in ("id", "rule_name"):
        values.pop(derived)
    return values


def _state(row: RowMapping) -> AlertState:
    known: Sequence[str] = [f.name for f in dataclasses.fields(AlertState)]
    values = {k: row[k] for k in known if k in row}
    for stamp in ("window_start", "fired_at", "resolved_at", "acknowledged_at", "updated_at"):
        values[stamp] = stored_utc(values.get(stamp))
    values["rule_name"] = values.get("rule_name") or f"rule {row['rule_id']}"
    return AlertState(**values)
