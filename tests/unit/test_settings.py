from pathlib import Path

import pytest

from workbench.core.errors import ConfigError
from workbench.core.settings import load_settings, settings_env


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
