"""Fault tests: real services under load, one fault each, exact counts (SPEC R-table).

They are excluded from the default run (``-m 'not fault'`` in addopts). Naming this directory
is asking for them, so ``pytest tests/faults`` runs them without ``-m fault``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.minio import MinioServer
from tests.fixtures.services import Broker, IngestProcess, make_settings
from workbench.core.settings import Settings

HERE = Path(__file__).resolve().parent


def pytest_configure(config: pytest.Config) -> None:
    given = config.invocation_params.args
    explicit_marks = any(a.startswith("-m") for a in given)
    only_faults = bool(config.args) and all(
        Path(a.split("::")[0]).resolve().is_relative_to(HERE) for a in config.args
    )
    if only_faults and not explicit_marks:
        config.option.markexpr = "fault"


@pytest.fixture
def minio(tmp_path: Path) -> Iterator[MinioServer]:
    server = MinioServer(tmp_path / "minio")
    server.directory.mkdir(parents=True)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def settings(tmp_path: Path, minio: MinioServer) -> Settings:
    """A stack whose lake is ``s3a://bronze-faults/lake`` on the test MinIO."""
    return make_settings(
        tmp_path,
        lake={"root": "s3a://bronze-faults/lake"},
        s3={**minio.s3_settings(), "spill_dir": str(tmp_path / "spill")},
    )


@pytest.fixture
def broker(settings: Settings) -> Iterator[Broker]:
    b = Broker(settings)
    b.start()
    yield b
    b.stop()


@pytest.fixture
def ingest(settings: Settings, broker: Broker) -> Iterator[IngestProcess]:
    proc = IngestProcess(settings)
    proc.start()
    yield proc
    proc.stop()
