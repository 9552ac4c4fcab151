"""Spark Connect behind Spark's pre-shared token, tried as an attacker would.

One real engine for the module: the right token runs SQL; no token, a wrong token of the same
length, a non-loopback address and a look at ``ps`` get nothing. The unit tests need no JVM.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from tests.fixtures.engine import start_engine, stop_engine
from tests.fixtures.services import make_settings
from workbench.core.errors import ConfigError
from workbench.core.settings import Settings, public_settings
from workbench.spark.session import (
    CONNECT_TOKEN_KEY,
    SPARK_REDACTION_REGEX,
    connect_session,
    connect_url_with_token,
    session_conf,
)

pytestmark = pytest.mark.spark


def _token(settings: Settings) -> str:
    assert settings.auth.connect_token is not None
    return settings.auth.connect_token.get_secret_value()


def _with_token(settings: Settings, token: str | None) -> Settings:
    """``settings`` with another connect token (make_settings fills in a missing one)."""
    value = None if token is None else SecretStr(token)
    auth = settings.auth.model_copy(update={"connect_token": value})
    return settings.model_copy(update={"auth": auth})


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    home = tmp_path_factory.mktemp("connect-auth")
    settings = make_settings(home)
    proc = start_engine(settings)
    yield settings
    assert stop_engine(proc) == 0, (home / "engine.log").read_text()[-3000:]


@pytest.fixture
def no_ambient_token(monkeypatch: pytest.MonkeyPatch) -> None:
    """pyspark's client falls back to this variable; an attacker's process has none."""
    monkeypatch.delenv("SPARK_CONNECT_AUTHENTICATE_TOKEN", raising=False)


def _refusal(url: str) -> str:
    """What a raw pyspark client on ``url`` gets for ``SELECT 1``: the error's text."""
    from pyspark.errors.exceptions.connect import SparkConnectGrpcException
    from pyspark.sql.connect.session import SparkSession as RemoteSparkSession

    # A session of its own (the builder would hand back any existing default session).
    session = RemoteSparkSession(connection=url)
    try:
        with pytest.raises(SparkConnectGrpcException) as refused:
            session.sql("SELECT 1").collect()
    finally:
        session.stop()
    return str(refused.value)


def test_the_right_token_runs_sql(
    engine: Settings, monkeypatch: pytest.MonkeyPatch, no_ambient_token: None
) -> None:
    # Connect mode for this test only (see tests/spark/test_engine.py's client fixture).
    monkeypatch.setenv("SPARK_CONNECT_MODE_ENABLED", "1")
    session: Any = connect_session(engine)
    try:
        assert [tuple(r) for r in session.sql("SELECT 1 AS one").collect()] == [(1,)]
    finally:
        session.stop()


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_no_token_is_refused(engine: Settings, no_ambient_token: None, host: str) -> None:
    text = _refusal(f"sc://{host}:{engine.engine.connect_port}")
    assert "StatusCode.UNAUTHENTICATED" in text
    assert "No authentication token provided" in text


def test_a_wrong_token_of_the_same_length_is_refused(
    engine: Settings, no_ambient_token: None
) -> None:
    token = _token(engine)
    wrong = ("A" if token[0] != "A" else "B") + token[1:]
    assert len(wrong) == len(token) and wrong != token
    text = _refusal(f"sc://localhost:{engine.engine.connect_port}/;token={wrong}")
    assert "StatusCode.UNAUTHENTICATED" in text
    assert "Invalid authentication token" in text
    assert token not in text


def test_connect_listens_on_loopback_only(engine: Settings) -> None:
    if shutil.which("ss") is None:
        pytest.skip("no ss(8) here")
    port = engine.engine.connect_port
    lines = subprocess.run(
        ["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    # The JVM's dual-stack socket shows an IPv4 address as [::ffff:127.0.0.1].
    local = {line.split()[3].rsplit(":", 1)[0].strip("[]") for line in lines}
    assert {address.removeprefix("::ffff:") for address in local} == {"127.0.0.1"}, lines


def _own_addresses() -> set[tuple[int, str]]:
    """This machine's non-loopback addresses: (family, address)."""
    found: set[tuple[int, str]] = set()
    try:
        for family, _, _, _, sockaddr in socket.getaddrinfo(socket.gethostname(), None):
            found.add((family, str(sockaddr[0])))
    except OSError:
        pass
    for family, probe in ((socket.AF_INET, "203.0.113.1"), (socket.AF_INET6, "2001:db8::1")):
        # A UDP "connection" sends nothing; it only picks the outgoing address.
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            try:
                sock.connect((probe, 9))
                found.add((family, str(sock.getsockname()[0])))
            except OSError:
                pass
    import ipaddress

    return {
        (family, address)
        for family, address in found
        if family in (socket.AF_INET, socket.AF_INET6)
        and not ipaddress.ip_address(address.split("%")[0]).is_loopback
    }


def test_connect_port_is_closed_on_other_addresses(engine: Settings) -> None:
    addresses = _own_addresses()
    if not addresses:
        pytest.skip("this machine has no non-loopback address")
    for family, address in sorted(addresses):
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(2)
            assert sock.connect_ex((address, engine.engine.connect_port)) != 0, address


def test_the_token_is_in_no_command_line_nor_log(engine: Settings) -> None:
    token = _token(engine).encode()
    lines = []
    for path in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            lines.append(path.read_bytes())
        except OSError:
            continue  # gone, or not ours
    # The engine's JVM is there, with its conf on the command line (pyspark's spark-submit)...
    binding = f"spark.connect.grpc.binding.port={engine.engine.connect_port}".encode()
    assert any(binding in line for line in lines)
    # ...but not the token, which every local user could read there.
    assert not [line for line in lines if token in line]
    assert token not in (Path(engine.home) / "engine.log").read_bytes()


# --- no JVM from here on -------------------------------------------------------------------


def test_session_conf_sets_the_token_and_spark_redacts_its_key(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    conf = session_conf(settings, connect=True)
    assert conf[CONNECT_TOKEN_KEY] == _token(settings)
    assert conf["spark.connect.grpc.binding.address"] == "127.0.0.1"
    assert CONNECT_TOKEN_KEY not in session_conf(settings)
    # Spark's own default pattern (read from the jar) covers the key: no spark.redaction.regex.
    import pyspark

    core = next((Path(pyspark.__file__).parent / "jars").glob("spark-core_2.13-*.jar"))
    with zipfile.ZipFile(core) as jar:
        assert SPARK_REDACTION_REGEX.encode() in jar.read(
            "org/apache/spark/internal/config/package$.class"
        )
    assert re.search(SPARK_REDACTION_REGEX, CONNECT_TOKEN_KEY)
    assert "spark.redaction.regex" not in conf


def test_an_operator_redaction_pattern_still_covers_the_token(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, spark={"extra_conf": {"spark.redaction.regex": "(?i)pass"}})
    regex = session_conf(settings, connect=True)["spark.redaction.regex"]
    assert regex.startswith("(?i)pass|") and re.search(regex, CONNECT_TOKEN_KEY)
    assert session_conf(settings)["spark.redaction.regex"] == "(?i)pass"  # no Connect, no change


def test_connect_without_a_token_is_refused(tmp_path: Path) -> None:
    settings = _with_token(make_settings(tmp_path), None)
    for call in (lambda: session_conf(settings, connect=True), lambda: connect_session(settings)):
        with pytest.raises(ConfigError, match="set WORKBENCH__AUTH__CONNECT_TOKEN") as refused:
            call()
        assert "workbench up" in str(refused.value)
        assert refused.value.fields == {"setting": "auth.connect_token"}
    assert "spark.plugins" not in session_conf(settings)  # a driver without Connect needs none
    blank = _with_token(make_settings(tmp_path), "  ")
    with pytest.raises(ConfigError, match="CONNECT_TOKEN"):
        connect_url_with_token(blank)


def test_the_token_is_never_shown(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    token = _token(settings)
    assert token not in str(public_settings(settings))
    assert token not in repr(settings) and token not in str(settings)
    # Set twice (also in extra_conf): refused, without showing either value.
    twice = make_settings(tmp_path, spark={"extra_conf": {CONNECT_TOKEN_KEY: "other-secret"}})
    with pytest.raises(ConfigError, match="must not set") as refused:
        session_conf(twice, connect=True)
    shown = f"{refused.value} {refused.value.to_dict()}"
    assert _token(twice) not in shown and "other-secret" not in shown
    assert "other-secret" not in str(public_settings(twice))


def test_connect_url_carries_the_token_the_way_pyspark_reads_it(tmp_path: Path) -> None:
    from pyspark.sql.connect.client.core import DefaultChannelBuilder

    odd = "a;b=c/d?e#f%g h"
    loopback = _with_token(make_settings(tmp_path), odd)
    url = connect_url_with_token(loopback)
    builder = DefaultChannelBuilder(url)
    # Local gRPC credentials (pyspark's only non-TLS way to send a token): host "localhost".
    assert (builder.host, builder.token, builder.use_ssl) == ("localhost", odd, False)
    assert builder.endpoint == f"localhost:{loopback.engine.connect_port}"
    assert builder.metadata() == []  # the token travels as a bearer credential only
    for host in ("::1", "127.0.0.1"):
        assert connect_url_with_token(make_settings(tmp_path, engine={"host": host})).startswith(
            "sc://localhost:"
        )

    remote = make_settings(tmp_path, engine={"host": "engine.example.org"})
    builder = DefaultChannelBuilder(connect_url_with_token(remote))
    assert (builder.host, builder.use_ssl, builder.token) == (
        "engine.example.org",
        True,
        _token(remote),
    )
    assert _token(remote) not in remote.engine.connect_url  # what is shown stays token-free
