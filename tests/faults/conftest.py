"""Fault tests: real services under load, one fault each, exact counts.

They are excluded from the default run (``-m 'not fault'`` in addopts). Naming this directory
is asking for them, so ``pytest tests/faults`` runs them without ``-m fault``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def pytest_configure(config: pytest.Config) -> None:
    given = config.invocation_params.args
    explicit_marks = any(a.startswith("-m") for a in given)
    only_faults = bool(config.args) and all(
        Path(a.split("::")[0]).resolve().is_relative_to(HERE) for a in config.args
    )
    # Fixtures live in each test module: the R tests each need a different stack.
    if only_faults and not explicit_marks:
        config.option.markexpr = "fault"
