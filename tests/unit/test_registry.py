import pytest

from workbench.connectors.registry import ConnectorRegistry, ConnectorType, default_registry
from workbench.connectors.rest_poll import check_target, dig
from workbench.core.errors import ConfigError


def test_builtins_are_registered_in_one_place() -> None:
    assert default_registry().names() == ["mqtt", "rest_poll", "rest_push"]


def test_builtin_config_schemas_are_valid_json_schemas() -> None:
    from jsonschema import Draft202012Validator

    registry = default_registry()
    for name in registry.names():
        Draft202012Validator.check_schema(registry.get(name).config_schema)


def test_every_config_error_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as info:
        default_registry().validate(
            "rest_poll", {"url": "ftp://x", "interval_seconds": 0, "bogus": 1}
        )
    paths = sorted(p["path"] for p in info.value.fields["problems"])
    assert paths == ["(root)", "interval_seconds", "url"]


def test_unknown_type_names_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="known: mqtt, rest_poll, rest_push"):
        default_registry().get("modbus")


def test_a_name_registers_once() -> None:
    registry = ConnectorRegistry()
    kind = ConnectorType("x", {"type": "object"}, lambda *a: None)
    registry.register(kind)
    with pytest.raises(ConfigError, match="already registered"):
        registry.register(kind)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/x",
        "http://localhost/",
        "http://169.254.169.254/latest/meta-data",
        "http://10.1.2.3/",
        "http://192.168.0.1/",
        "http://[::1]/",
        "http://0.0.0.0/",
    ],
)
def test_poller_refuses_non_public_targets(url: str) -> None:
    with pytest.raises(ConfigError, match="allow_private"):
        check_target(url, allow_private=False)
    check_target(url, allow_private=True)  # deliberate opt-in


def test_dot_paths() -> None:
    body = {"data": {"items": [{"id": 1}, {"id": 2}]}}
    assert dig(body, "data.items.1.id") == 2
    assert dig(body, "data.missing") is None
    assert dig(body, None) is body
