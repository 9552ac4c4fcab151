"""Root fixtures: an isolated settings object per test (no developer config leaks in)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.services import make_settings
from workbench.core.settings import Settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings for a stack living under ``tmp_path``, with free loopback ports."""
    return make_settings(tmp_path)
