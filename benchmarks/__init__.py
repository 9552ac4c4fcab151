"""Benchmarks of the workbench, run as ``workbench bench <name> [--seconds N]``.

Each benchmark module (``ingest_mqtt``, ``ingest_rest``) exposes ``run(settings, *, seconds)``
returning one result dict (see :func:`benchmarks.harness.result`). Every service is a real child
process on loopback; baselines are measured in the same run. Results live in ``RESULTS.md``.
"""
