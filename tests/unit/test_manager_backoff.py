"""The stream manager's restart backoff doubles per failure up to its cap, no sleeping; a
terminal failure is not restarted at all.

:class:`StreamManager` reads ``time.monotonic()`` itself (no clock can be injected), so these
tests bracket each monitor pass with the same clock: ``retry_at`` is the pass's own ``now``
plus the delay, which pins the delay to within the pass's duration (milliseconds), far less
than the differences between the delays tested. Instead of waiting out a delay, a test moves the
query's ``retry_at`` to the present. Queries are stand-ins for a failed ``StreamingQuery``,
with the attributes the manager reads.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from workbench.core.errors import ConfigError
from workbench.streams.supervisor import HEALTHY_SECONDS, ManagedQuery, StreamManager

BASE, CAP = 10.0, 45.0
#: min(CAP, BASE * 2**(n - 1)) for failures n = 1..6.
DELAYS = [10.0, 20.0, 40.0, 45.0, 45.0, 45.0]


class FailedQuery:
    """A streaming query that has ended with an error."""

    isActive = False
    lastProgress = None

    def __init__(self, n: int) -> None:
        self.id = f"query-{n}"
        self.error = RuntimeError(f"boom {n}")

    def exception(self) -> Exception:
        return self.error


@dataclass(frozen=True)
class Span:
    """The delay a pass chose, known to lie within the pass's duration: equal to any value in it."""

    low: float
    high: float

    def __eq__(self, other: object) -> bool:
        return isinstance(other, int | float) and self.low - 1e-9 <= other <= self.high + 1e-9


def _delay_of(managed: ManagedQuery, action: Callable[[], Any]) -> Span:
    """Run ``action`` (a pass that schedules a restart); return the delay it chose."""
    before = time.monotonic()
    action()
    after = time.monotonic()
    # retry_at = now + delay with before <= now <= after: the delay is pinned to that span.
    return Span(managed.retry_at - after, managed.retry_at - before)


def test_restart_delays_double_per_failure_up_to_the_cap() -> None:
    started: list[FailedQuery] = []

    def start() -> Any:
        started.append(FailedQuery(len(started)))
        return started[-1]

    failures: list[tuple[str, str]] = []
    manager = StreamManager(
        backoff_base=BASE, backoff_cap=CAP, on_failure=lambda *f: failures.append(f)
    )
    manager.register("q", start)
    manager.start("q")
    managed = manager._queries["q"]

    chosen = []
    for n in range(1, len(DELAYS) + 1):
        chosen.append(_delay_of(managed, manager.check))  # finds the query failed
        assert managed.failures == n and managed.query is None
        assert manager.status_of("q").state == "failed"
        manager.check()  # the delay has not passed: no restart yet
        assert (len(started), managed.restarts) == (n, n - 1)
        managed.retry_at = time.monotonic()  # the delay has passed
        manager.check()  # restarts (the new query has failed already, like the last)
        assert (len(started), managed.restarts) == (n + 1, n)
    assert chosen == DELAYS
    assert [name for name, _ in failures] == ["q"] * len(DELAYS)
    assert failures[0][1] == "boom 0"

    # A query that ran HEALTHY_SECONDS before failing starts the backoff afresh.
    managed.started_at -= HEALTHY_SECONDS
    assert _delay_of(managed, manager.check) == BASE
    assert managed.failures == 1

    # A start by name is a fresh start too: no backoff carried over.
    manager.start("q")
    assert (managed.failures, managed.retry_at) == (0, 0.0)
    assert _delay_of(managed, manager.check) == BASE


def test_failed_starts_back_off_the_same_way() -> None:
    attempts: list[int] = []

    def start() -> Any:
        attempts.append(1)
        raise OSError("object store down")

    manager = StreamManager(backoff_base=BASE, backoff_cap=CAP)
    manager.register("q", start)
    managed = manager._queries["q"]
    try:
        chosen = [_delay_of(managed, lambda: manager.start_all(poll_seconds=3600))]
        for _ in range(len(DELAYS) - 1):
            manager.check()  # not due: not even tried
            assert len(attempts) == len(chosen)
            managed.retry_at = time.monotonic()
            chosen.append(_delay_of(managed, manager.check))  # tried, failed again
        assert chosen == DELAYS and len(attempts) == len(DELAYS)
        assert managed.failures == len(DELAYS) and managed.restarts == 0
        status = manager.status_of("q")
        assert status.state == "failed" and status.restart_scheduled
        assert status.exception == "start failed: object store down"
        assert status.error_code == "os_error"
    finally:
        manager.stop_all(timeout=1)


@pytest.mark.parametrize(("base", "cap"), [(0.5, 3.0), (2.0, 2.0)])
def test_fractional_bases_and_a_cap_at_the_base(base: float, cap: float) -> None:
    def start() -> Any:
        return FailedQuery(0)

    manager = StreamManager(backoff_base=base, backoff_cap=cap)
    manager.register("q", start)
    manager.start("q")
    managed = manager._queries["q"]
    chosen = []
    for _ in range(5):
        chosen.append(_delay_of(managed, manager.check))
        managed.retry_at = time.monotonic()
        manager.check()
    assert chosen == [min(cap, base * 2**n) for n in range(5)]  # [0.5, 1, 2, 3, 3], [2] * 5


def test_a_terminal_batch_failure_stops_the_query_for_good() -> None:
    started: list[FailedQuery] = []

    def start() -> Any:
        started.append(FailedQuery(len(started)))
        return started[-1]

    stopped: list[tuple[str, str]] = []
    manager = StreamManager(
        backoff_base=0.0, backoff_cap=0.0, on_terminal=lambda *s: stopped.append(s)
    )
    manager.register("q", start)
    manager.start("q")
    # What start_batch_query keeps when a batch raises: the error as raised, by query name.
    manager.failures.note("q", ConfigError("value rule 3 names no field", rule_id=3))

    manager.check()  # finds it failed, terminally
    for _ in range(3):
        manager.check()  # no backoff at all here, and still no restart
    status = manager.status_of("q")
    assert (status.state, status.error_code, status.restart_scheduled) == (
        "failed",
        "config_error",
        False,
    )
    assert status.exception == "value rule 3 names no field"
    assert len(started) == 1 and status.restarts == 0
    assert stopped == [("q", "config_error")]

    # An operator's start by name is a fresh start; a later failure of unknown cause (the
    # stand-in's RuntimeError) is restarted with backoff again.
    assert manager.start("q").state == "failed"  # the stand-in has failed already
    manager.check()
    assert manager.status_of("q").restart_scheduled
    manager.check()
    assert len(started) == 3 and stopped == [("q", "config_error")]


def test_a_terminal_start_failure_is_not_retried() -> None:
    attempts: list[int] = []

    def start() -> Any:
        attempts.append(1)
        raise ConfigError("silver table path is not a Delta table", setting="lake.root")

    manager = StreamManager(backoff_base=0.0, backoff_cap=0.0)
    manager.register("q", start)
    try:
        manager.start_all(poll_seconds=3600)
        for _ in range(3):
            manager.check()
        status = manager.status_of("q")
        assert len(attempts) == 1
        assert status.state == "failed" and status.error_code == "config_error"
        assert not status.restart_scheduled
    finally:
        manager.stop_all(timeout=1)
