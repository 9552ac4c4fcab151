"""A failing micro-batch is retried, then fails loudly; a terminal failure is not retried."""

from __future__ import annotations

import pytest

from workbench.core.errors import ConfigError, EngineError
from workbench.streams.queries import run_batch_with_retries


def test_a_transient_failure_is_retried() -> None:
    calls: list[int] = []

    def flaky() -> None:
        calls.append(1)
        if len(calls) < 3:
            raise OSError("object store hiccup")

    run_batch_with_retries(flaky, query="q", batch_id=7, attempts=3, backoff=0.0)
    assert len(calls) == 3


def test_a_persistent_failure_fails_the_query_with_the_cause() -> None:
    calls: list[int] = []

    def broken() -> None:
        calls.append(1)
        raise ValueError("bad plan")

    with pytest.raises(EngineError, match=r"q batch 7 failed 2 times.*bad plan") as info:
        run_batch_with_retries(broken, query="q", batch_id=7, attempts=2, backoff=0.0)
    assert len(calls) == 2
    assert isinstance(info.value.__cause__, ValueError)


def test_a_terminal_failure_is_not_retried() -> None:
    calls: list[int] = []
    broken = ConfigError("rule 7 names no field", rule_id=7)

    def misconfigured() -> None:
        calls.append(1)
        raise broken

    with pytest.raises(ConfigError) as info:
        run_batch_with_retries(misconfigured, query="q", batch_id=7, attempts=5, backoff=0.0)
    assert len(calls) == 1  # at once, as raised: the stream manager reads its class
    assert info.value is broken
