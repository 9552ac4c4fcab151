import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

from workbench.core.errors import ConfigError
from workbench.core.masking import MASK
from workbench.core.settings import load_settings, public_settings, settings_env


def test_env_overrides_toml_overrides_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    toml = tmp_path / "wb.toml"
    toml.write_text('[mqtt]\nport = 1999\ntopic = "plant/#"\n[ingest]\nflush_seconds = 3.5\n')
    monkeypatch.setenv("WORKBENCH__CONFIG", str(toml))
    monkeypatch.setenv("WORKBENCH__MQTT__PORT", "2001")
    s = load_settings()
    assert s.mqtt.port == 2001  # env wins
    assert s.mqtt.topic == "plant/#"  # from the file
    assert s.ingest.flush_seconds == 3.5
    assert s.engine.connect_port == 15002  # default


def test_every_problem_is_reported_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKBENCH__MQTT__QOS", "7")
    monkeypatch.setenv("WORKBENCH__INGEST__PORT", "eighty")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "mqtt.qos" in info.value.message and "ingest.port" in info.value.message
    assert len(info.value.fields["problems"]) == 2


def test_settings_survive_the_trip_to_a_child_process(monkeypatch: pytest.MonkeyPatch) -> None:
    original = load_settings(mqtt={"port": 1234, "username": None})
    for key, value in settings_env(original).items():
        monkeypatch.setenv(key, value)
    assert load_settings() == original


def test_local_paths_become_absolute() -> None:
    s = load_settings(lake={"root": "rel/lake"}, catalog={"url": "sqlite:///rel/c.db"})
    assert Path(s.lake.root).is_absolute()
    assert s.catalog.url.startswith("sqlite:////")


SECRETS = {
    "WORKBENCH__S3__ACCESS_KEY": "access-key-id-7F3Q",
    "WORKBENCH__S3__SECRET_KEY": "s3-secret-value-9XKD",
    "WORKBENCH__MQTT__USERNAME": "plant",
    "WORKBENCH__MQTT__PASSWORD": "mqtt-password-4PZT",
    "WORKBENCH__SIMULATOR__REST_TOKEN": "rest-token-2MWV",
    "WORKBENCH__CATALOG__URL": "postgresql+psycopg://wb:catalog-pass-8RTY@db.internal/wb",
    "WORKBENCH__SPARK__EXTRA_CONF": '{"spark.hadoop.fs.s3a.session.token": "spark-token-5HJN"}',
}
SECRET_VALUES = ("7F3Q", "9XKD", "4PZT", "2MWV", "8RTY", "5HJN")


def test_secrets_are_typed_as_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in SECRETS.items():
        monkeypatch.setenv(key, value)
    s = load_settings()
    for secret in (s.s3.access_key, s.s3.secret_key, s.mqtt.password, s.simulator.rest_token):
        assert isinstance(secret, SecretStr)
    assert s.s3.secret_key is not None
    assert s.s3.secret_key.get_secret_value() == "s3-secret-value-9XKD"  # usable where needed
    shown = repr(s) + str(s) + repr(s.catalog)  # what tracebacks and log lines would show
    for value in SECRET_VALUES[:5]:
        assert value not in shown, value
    dumped = s.model_dump_json()  # the catalog URL is a plain string for SQLAlchemy
    for value in SECRET_VALUES[:4]:
        assert value not in dumped, value


def test_workbench_settings_never_prints_a_secret(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKBENCH__")}
    env.update(SECRETS, WORKBENCH__CONFIG=str(tmp_path / "absent.toml"))
    result = subprocess.run(
        [sys.executable, "-m", "workbench", "settings"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    for value in SECRET_VALUES:
        assert value not in result.stdout and value not in result.stderr, value
    shown = json.loads(result.stdout)
    assert shown["s3"]["secret_key"] == MASK and shown["s3"]["access_key"] == MASK
    assert shown["mqtt"]["password"] == MASK and shown["mqtt"]["username"] == "plant"
    assert shown["simulator"]["rest_token"] == MASK
    assert shown["catalog"]["url"] == "postgresql+psycopg://wb:***@db.internal/wb"
    assert shown["spark"]["extra_conf"] == {"spark.hadoop.fs.s3a.session.token": MASK}
    assert shown["mqtt"]["port"] == 1883  # the rest is shown as it is


def test_unset_secrets_show_as_null() -> None:
    shown = public_settings(load_settings(s3={"secret_key": None}, mqtt={"password": None}))
    assert shown["s3"]["secret_key"] is None and shown["mqtt"]["password"] is None


def test_children_receive_the_real_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    original = load_settings(
        s3={"access_key": "child-access", "secret_key": "child-secret"},
        mqtt={"username": "u", "password": "child-password"},
        simulator={"rest_token": "child-token"},
    )
    env = settings_env(original)
    assert env["WORKBENCH__S3__SECRET_KEY"] == "child-secret"
    assert env["WORKBENCH__MQTT__PASSWORD"] == "child-password"
    assert env["WORKBENCH__SIMULATOR__REST_TOKEN"] == "child-token"
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert load_settings() == original
