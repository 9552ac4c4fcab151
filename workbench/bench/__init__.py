"""Benchmarks of the workbench, run as ``workbench bench <name> [--seconds N]``.

Each benchmark module exposes ``run(settings, **options)`` returning one result dict (see
:func:`workbench.bench.harness.result`). Every service is a real child process on loopback;
baselines are measured in the same run. Results are recorded in ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Benchmark = Callable[..., dict[str, Any]]

#: Every benchmark's name, as ``workbench bench`` takes it.
BENCHMARKS = ("ingest-mqtt", "ingest-rest", "enrich", "latency", "tiles", "backfill", "lake-size")


def benchmark(name: str) -> Benchmark:
    """The ``run`` function of the benchmark called ``name``, its module imported only now.

    Raises:
        KeyError: for a name not in :data:`BENCHMARKS`.
    """
    # Explicit imports, so the architecture contracts see every benchmark module.
    if name == "ingest-mqtt":
        from workbench.bench.ingest_mqtt import run
    elif name == "ingest-rest":
        from workbench.bench.ingest_rest import run
    elif name == "enrich":
        from workbench.bench.enrich import run
    elif name == "latency":
        from workbench.bench.sensor_latency import run
    elif name == "tiles":
        from workbench.bench.dashboard_tiles import run
    elif name == "backfill":
        from workbench.bench.backfill import run
    elif name == "lake-size":
        from workbench.bench.lake_size import run
    else:
        raise KeyError(f"no benchmark {name!r}; choose one of {', '.join(BENCHMARKS)}")
    return run
