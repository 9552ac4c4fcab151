"""Benchmarks of the workbench, run as ``workbench bench <name> [--seconds N]``.

Each benchmark module exposes ``run(settings, **options)`` returning one result dict (see
:func:`workbench.bench.harness.result`). Every service is a real child process on loopback;
baselines are measured in the same run. Results are recorded in ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from workbench.core.settings import Settings

Benchmark = Callable[..., dict[str, Any]]

#: Benchmark name → its module under ``workbench.bench`` (imported only when run).
BENCHMARKS: dict[str, str] = {
    "ingest-mqtt": "ingest_mqtt",
    "ingest-rest": "ingest_rest",
    "enrich": "enrich",
    "latency": "sensor_latency",
}


def run_benchmark(name: str, settings: Settings, **options: Any) -> dict[str, Any]:
    """Run the benchmark called ``name`` with the options given; returns its result.

    Raises:
        KeyError: for a name not in :data:`BENCHMARKS`.
    """
    # Explicit imports, so the architecture contracts see every benchmark module.
    if name == "ingest-mqtt":
        from workbench.bench import ingest_mqtt as module
    elif name == "ingest-rest":
        from workbench.bench import ingest_rest as module  # type: ignore[no-redef]
    elif name == "enrich":
        from workbench.bench import enrich as module  # type: ignore[no-redef]
    elif name == "latency":
        from workbench.bench import sensor_latency as module  # type: ignore[no-redef]
    else:
        raise KeyError(f"no benchmark {name!r}; choose one of {', '.join(BENCHMARKS)}")
    run: Benchmark = module.run
    return run(settings, **options)
