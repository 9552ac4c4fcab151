"""Alert states: the pure state machine, and the catalog that stores and acknowledges them."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from workbench.catalog.alert_states import advance
from workbench.catalog.records import AlertObservation
from workbench.catalog.store import Catalog
from workbench.core.errors import ConfigError, NotFoundError

T0 = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)
NOW = datetime(2026, 12, 4, 10, 30, tzinfo=UTC)


def seen(
    minute: int, crossed: bool, value: float = 31.0, *, sensor: str = "s1", rule: int = 1
) -> AlertObservation:
    return AlertObservation(
        rule_id=rule,
        ingestion_id="mqtt-lab",
        sensor_id=sensor,
        window_start=T0 + timedelta(minutes=minute),
        crossed=crossed,
        value=value,
        sensitivity="public",
    )


def test_a_sensor_within_its_threshold_has_no_state() -> None:
    assert advance(None, seen(0, False, 20.0), NOW) is None


def test_a_crossing_fires_and_later_windows_keep_one_alert_with_its_peak() -> None:
    first = advance(None, seen(0, True, 31.0), NOW)
    assert first is not None and first.status == "firing" and first.episodes == 1
    same = advance(first, seen(0, True, 30.5), NOW)
    assert same is first  # the same window, nothing worse: unchanged
    later = advance(first, seen(1, True, 35.0), NOW + timedelta(minutes=1))
    assert later is not None
    assert (later.status, later.value, later.episodes, later.fired_at) == (
        "firing",
        35.0,
        1,
        NOW,
    )


def test_the_first_window_within_the_threshold_resolves_it() -> None:
    firing = advance(None, seen(0, True), NOW)
    partly = advance(firing, seen(0, False, 20.0), NOW)
    assert partly is firing  # the window crossed all the same
    resolved = advance(firing, seen(1, False, 20.0), NOW + timedelta(minutes=1))
    assert resolved is not None and resolved.status == "resolved"
    assert resolved.resolved_at == NOW + timedelta(minutes=1)


def test_crossing_again_starts_a_new_unacknowledged_episode() -> None:
    firing = advance(None, seen(0, True), NOW)
    assert firing is not None
    acked = dataclasses.replace(firing, acknowledged_by="ana", acknowledged_at=NOW)
    resolved = advance(acked, seen(1, False), NOW)
    assert resolved is not None and resolved.acknowledged_by == "ana"
    again = advance(resolved, seen(2, True, 40.0), NOW + timedelta(minutes=2))
    assert again is not None
    assert (again.status, again.episodes, again.value) == ("firing", 2, 40.0)
    assert again.acknowledged_by is None and again.resolved_at is None
    assert again.fired_at == NOW + timedelta(minutes=2)


def test_an_older_window_changes_nothing() -> None:
    firing = advance(None, seen(5, True), NOW)
    assert advance(firing, seen(3, False), NOW) is firing
    assert advance(firing, seen(3, True, 99.0), NOW) is firing


def test_a_low_threshold_keeps_the_lowest_value() -> None:
    low = AlertObservation(1, "d", "s", T0, True, -5.0, "public", worse_is_higher=False)
    lower = AlertObservation(1, "d", "s", T0, True, -9.0, "public", worse_is_higher=False)
    state = advance(advance(None, low, NOW), lower, NOW)
    assert state is not None and state.value == -9.0


@pytest.fixture
def catalog(tmp_path: Path) -> Iterator[Catalog]:
    cat = Catalog(f"sqlite:///{tmp_path / 'cat.db'}")
    yield cat
    cat.close()


def test_the_catalog_applies_a_batch_once_and_reports_transitions(catalog: Catalog) -> None:
    rule = catalog.add_alert_rule("too hot", "temperature", "gt", 30)
    batch = [
        seen(0, True, 31, rule=rule),
        seen(1, True, 35, rule=rule),
        seen(0, False, 20, sensor="s2", rule=rule),
    ]
    changes = catalog.apply_alert_observations(batch)
    assert [(c.before, c.after.status, c.after.sensor_id) for c in changes] == [
        (None, "firing", "s1")
    ]
    assert catalog.apply_alert_observations(batch) == []  # a replayed batch
    (state,) = catalog.list_alert_states()
    assert (state.rule_name, state.sensor_id, state.value, state.episodes) == (
        "too hot",
        "s1",
        35.0,
        1,
    )
    assert state.window_start == T0 + timedelta(minutes=1)
    assert catalog.firing_alerts_per_rule() == {str(rule): 1}

    changes = catalog.apply_alert_observations([seen(2, False, 25, rule=rule)])
    assert [(c.before, c.after.status) for c in changes] == [("firing", "resolved")]
    assert catalog.list_alert_states(status="firing") == []
    assert catalog.firing_alerts_per_rule() == {str(rule): 0}


def test_acknowledging_names_who_and_when_and_keeps_the_first(catalog: Catalog) -> None:
    rule = catalog.add_alert_rule("too hot", "temperature", "gt", 30)
    catalog.apply_alert_observations([seen(0, True, rule=rule)])
    (state,) = catalog.list_alert_states()
    assert state.id is not None
    acked = catalog.acknowledge_alert(state.id, "ana")
    assert acked.acknowledged_by == "ana" and acked.acknowledged_at is not None
    assert catalog.acknowledge_alert(state.id, "bob").acknowledged_by == "ana"
    catalog.apply_alert_observations([seen(1, False, rule=rule), seen(2, True, rule=rule)])
    again = catalog.get_alert_state(state.id)
    assert (again.status, again.episodes, again.acknowledged_by) == ("firing", 2, None)


def test_unknown_alerts_and_statuses_are_refused(catalog: Catalog) -> None:
    with pytest.raises(NotFoundError, match="no alert with id 42"):
        catalog.acknowledge_alert(42, "ana")
    with pytest.raises(ConfigError, match="use one of firing, resolved"):
        catalog.list_alert_states(status="open")
