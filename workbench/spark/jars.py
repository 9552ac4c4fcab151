"""The JVM jar cache: jars fetched once by ``make setup`` (Maven), never at session start.

``delta-spark`` on PyPI ships no jars, nor does pyspark ship S3A. Rather than letting Spark
resolve ``--packages`` through Ivy on every start (slow, and impossible offline),
``kernels/jvm/pom.xml`` declares the artifacts (Delta, hadoop-aws and the AWS SDK v2 modules it
loads) and ``make setup`` copies them into ``settings.spark.jar_cache``, next to
``workbench-functions.jar``, the project's own JVM functions (``kernels/jvm/src``, compiled
against pyspark's jars); sessions read the list from here.
"""

from __future__ import annotations

from pathlib import Path

from workbench.core.errors import ConfigError
from workbench.core.settings import Settings
from workbench.lake.storage import is_object_store_root

#: Jar name prefixes a working Delta session cannot do without.
REQUIRED_JARS: tuple[str, ...] = ("delta-spark_2.13-", "delta-storage-", "workbench-functions")
#: ...and those a session on an ``s3a://`` lake needs too (S3A and the AWS SDK's S3 client).
S3A_JARS: tuple[str, ...] = ("hadoop-aws-", "s3-transfer-manager-", "apache-client-")

_SETUP_HINT = (
    "run `make setup` (it runs: mvn -q -f kernels/jvm/pom.xml dependency:copy-dependencies "
    "-DoutputDirectory=<jar_cache> -DincludeScope=runtime, then compiles kernels/jvm/src "
    "into <jar_cache>/workbench-functions.jar)"
)


def jar_paths(settings: Settings) -> list[str]:
    """The absolute paths of the cached jars, sorted by name.

    Args:
        settings: the workbench settings (``settings.spark.jar_cache`` names the directory).

    Returns:
        Every ``*.jar`` in the cache.

    Raises:
        ConfigError: if the cache is missing, empty, or lacks a required Delta jar (or, for an
            ``s3a://`` lake, an S3A jar).
    """
    cache = Path(settings.spark.jar_cache)
    if not cache.is_dir():
        raise ConfigError(
            f"the JVM jar cache {cache} does not exist; {_SETUP_HINT}",
            jar_cache=str(cache),
        )
    jars = sorted(str(p.resolve()) for p in cache.glob("*.jar") if p.is_file())
    names = [Path(j).name for j in jars]
    required = REQUIRED_JARS + (S3A_JARS if is_object_store_root(settings.lake.root) else ())
    missing = [req for req in required if not any(n.startswith(req) for n in names)]
    if missing:
        raise ConfigError(
            f"the JVM jar cache {cache} lacks {', '.join(m.rstrip('-') for m in missing)} "
            f"(found {names or 'no jars'}); {_SETUP_HINT}",
            jar_cache=str(cache),
            missing=missing,
        )
    return jars
