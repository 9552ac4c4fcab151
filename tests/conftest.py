"""Root of the test suite: shared fixtures live in ``tests/fixtures`` and are registered here.

``settings`` (an isolated stack under ``tmp_path`` with free loopback ports), ``broker``,
``ingest`` and ``minio`` come from these plugin modules.
"""

pytest_plugins = ["tests.fixtures.services", "tests.fixtures.minio", "tests.fixtures.postgres"]
