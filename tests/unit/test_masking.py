"""Secrets masked out of source configs, URLs and messages, and restored when echoed back."""

from __future__ import annotations

import json
from typing import Any

import pytest

from workbench.connectors import mqtt, rest_poll, rest_push
from workbench.connectors.registry import default_registry
from workbench.core.errors import ConfigError
from workbench.core.masking import (
    MASK,
    mask_config,
    mask_text,
    mask_url,
    restore_masked,
    sensitive_name,
)

POLL = rest_poll.CONFIG_SCHEMA


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://user:pass@host/readings", "https://user:***@host/readings"),
        ("https://host:8443/readings?page=2", "https://host:8443/readings?page=2"),
        # An unencoded '@' in the password: the user info runs to the last '@' of the authority.
        ("https://user:p@ss@host/x", "https://user:***@host/x"),
        # An '@' in the path is not user info.
        ("https://host/users/@me?x=1", "https://host/users/@me?x=1"),
        ("https://user:p%40ss%3Aw@host/", "https://user:***@host/"),
        ("https://user:@host/", "https://user:***@host/"),  # even an empty password
        ("https://ghp_0123456789@github.com/x", "https://***@github.com/x"),  # token as user
        ("HTTP://U:P@HOST/", "http://U:***@HOST/"),
        ("https://h/p?api_key=k1&page=2&Token=t2", "https://h/p?api_key=***&page=2&Token=***"),
        ("https://h/p?API%5FKEY=k1", "https://h/p?API%5FKEY=***"),  # percent-encoded name
        ("https://h/p?sig=abc;x=1", "https://h/p?sig=***;x=1"),
        ("https://h/cb#access_token=t3&state=s", "https://h/cb#access_token=***&state=s"),
        ("https://[::1]:8080/p?password=x", "https://[::1]:8080/p?password=***"),
        ("not a url", "not a url"),
    ],
)
def test_mask_url(url: str, shown: str) -> None:
    assert mask_url(url) == shown


def test_an_unparseable_url_shows_nothing_after_the_scheme() -> None:
    assert mask_url("http://u:secret@[::1/x") == "http://***"


@pytest.mark.parametrize(
    "name",
    [
        "Authorization",
        "proxy-authorization",
        "COOKIE",
        "X-Api-Key",
        "x_api_key",
        "X-Auth-Token",
        "X-Amz-Security-Token",
        "client_secret",
        "Password",
        "X-Session-Id",
        "sig",
        "api%5Fkey",
    ],
)
def test_sensitive_names(name: str) -> None:
    assert sensitive_name(name)


@pytest.mark.parametrize("name", ["Accept", "Content-Type", "User-Agent", "page", "If-None-Match"])
def test_harmless_names(name: str) -> None:
    assert not sensitive_name(name)


def test_mask_text_masks_every_url_and_bearer_value_in_a_message() -> None:
    text = (
        "HTTP 401 from 'https://u:pw1@a/x?token=t1' after https://b/y?key=k2, "
        "sent Authorization: Bearer abcdefghijklmnop"
    )
    masked = mask_text(text)
    for secret in ("pw1", "t1", "k2", "abcdefghijklmnop"):
        assert secret not in masked
    assert "https://u:***@a/x?token=***" in masked and "Bearer ***" in masked


def poll_config() -> dict[str, Any]:
    return {
        "url": "https://reader:url-pass@api.example.com/v1/readings?api_key=url-key&page=1",
        "headers": {
            "AUTHORIZATION": "Bearer header-token-123456",
            "x-API-key": "header-key",
            "Cookie": "session=cookie-value",
            "Accept": "application/json",
            "X-Forwarded": "Basic dXNlcjpwYXNzd29yZA==",
        },
        "params": {"Api_Key": "param-key", "limit": 50},
        "auth": {"type": "basic", "username": "me", "password": "auth-pass"},
        "body": {"client_secret": "body-secret", "credentials": {"id": "c1", "value": "c2"}},
        "record_key": "id",
        "allow_private": True,
    }


SECRETS = (
    "url-pass",
    "url-key",
    "header-token-123456",
    "header-key",
    "cookie-value",
    "dXNlcjpwYXNzd29yZA==",
    "param-key",
    "auth-pass",
    "body-secret",
    "c1",
    "c2",
)


def test_mask_config_hides_every_secret_and_keeps_the_rest() -> None:
    config = poll_config()
    masked = mask_config(config, POLL)
    text = json.dumps(masked)
    for secret in SECRETS:
        assert secret not in text, secret
    assert masked["url"] == "https://reader:***@api.example.com/v1/readings?api_key=***&page=1"
    assert masked["headers"]["AUTHORIZATION"] == MASK
    assert masked["headers"]["x-API-key"] == MASK
    assert masked["headers"]["Accept"] == "application/json"
    assert masked["headers"]["X-Forwarded"] == "Basic ***"  # an auth scheme, whatever the name
    assert masked["params"] == {"Api_Key": MASK, "limit": 50}
    assert masked["auth"] == {"type": "basic", "username": "me", "password": MASK}
    assert masked["body"] == {"client_secret": MASK, "credentials": {"id": MASK, "value": MASK}}
    assert masked["record_key"] == "id" and masked["allow_private"] is True
    assert config == poll_config()  # the stored config is never modified


def test_headers_as_lists_of_objects_pairs_and_lines() -> None:
    config = {
        "headers": [
            {"name": "authorization", "value": "Bearer zzz-secret-1"},
            {"name": "Accept", "value": "text/plain"},
            ["Proxy-Authorization", "zzz-secret-2"],
            ["X-Trace", "t-1"],
            "X-Auth-Token: zzz-secret-3",
            "Accept: */*",
        ]
    }
    masked = mask_config(config)
    assert "zzz-secret" not in json.dumps(masked)
    assert masked["headers"] == [
        {"name": "authorization", "value": MASK},
        {"name": "Accept", "value": "text/plain"},
        ["Proxy-Authorization", MASK],
        ["X-Trace", "t-1"],
        "X-Auth-Token: ***",
        "Accept: */*",
    ]


def test_nested_auth_objects_of_unknown_types_are_masked_whole() -> None:
    config = {
        "endpoint": {"url": "wss://u:nested-pass@h/stream"},
        "oauth": {"client_id": "app", "client_secret": "nested-secret"},
        "auth": {"kind": "hmac", "material": {"seed": "nested-seed"}},
        "passwords": ["p1-secret", "p2-secret"],
        "retries": 3,
        "enabled": True,
    }
    masked = mask_config(config, None)
    for secret in ("nested-pass", "nested-secret", "nested-seed", "p1-secret", "p2-secret"):
        assert secret not in json.dumps(masked)
    assert masked["oauth"]["client_id"] == "app"
    assert masked["auth"] == {"kind": MASK, "material": {"seed": MASK}}
    assert masked["retries"] == 3 and masked["enabled"] is True


def test_schema_marks_decide_for_declared_fields() -> None:
    schema = {"properties": {"pin": {"type": "string", "writeOnly": True}, "mode": {"enum": ["a"]}}}
    assert mask_config({"pin": "1234", "mode": "a"}, schema) == {"pin": MASK, "mode": "a"}
    assert mask_config({"pin": 1234}, schema) == {"pin": MASK}  # a secret of the wrong type too


def test_empty_and_absent_secrets() -> None:
    masked = mask_config({"password": "", "token": None, "headers": {"Authorization": ""}})
    assert masked == {"password": MASK, "token": None, "headers": {"Authorization": MASK}}


@pytest.mark.parametrize(
    ("schema", "field"),
    [
        (rest_poll.CONFIG_SCHEMA["properties"]["auth"]["properties"], "token"),
        (rest_poll.CONFIG_SCHEMA["properties"]["auth"]["properties"], "password"),
        (rest_push.CONFIG_SCHEMA["properties"], "token"),
        (mqtt.CONFIG_SCHEMA["properties"], "password"),
    ],
)
def test_builtin_schemas_mark_their_secrets(schema: dict[str, Any], field: str) -> None:
    assert schema[field]["writeOnly"] is True and schema[field]["format"] == "password"


def test_a_config_echoed_back_masked_keeps_every_stored_secret() -> None:
    stored = poll_config()
    echoed = json.loads(json.dumps(mask_config(stored, POLL)))
    echoed["interval_seconds"] = 5  # the one change the client made
    restored = restore_masked(echoed, stored, POLL)
    assert restored == {**stored, "interval_seconds": 5}


def test_new_values_replace_stored_ones() -> None:
    stored = poll_config()
    echoed = mask_config(stored, POLL)
    echoed["headers"]["AUTHORIZATION"] = "Bearer rotated-token-0001"
    echoed["url"] = "https://reader:new-pass@api.example.com/v2"
    restored = restore_masked(echoed, stored, POLL)
    assert restored["headers"]["AUTHORIZATION"] == "Bearer rotated-token-0001"
    assert restored["url"] == "https://reader:new-pass@api.example.com/v2"
    assert restored["headers"]["x-API-key"] == "header-key"  # untouched ones are kept


@pytest.mark.parametrize(
    "echoed",
    [
        {"url": "https://h/x", "auth": {"type": "bearer", "token": MASK}},
        {"url": "https://reader:***@elsewhere.example.com/"},
        {"url": "https://h/x", "headers": {"Authorization": "Bearer ***"}},
    ],
)
def test_a_mask_with_nothing_to_restore_is_refused(echoed: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="no stored secret"):
        restore_masked(echoed, poll_config(), POLL)


def test_a_mask_in_a_list_restores_by_position() -> None:
    stored = {"headers": [["Authorization", "Bearer list-secret-01"], ["Accept", "x"]]}
    echoed = mask_config(stored)
    assert restore_masked(echoed, stored) == stored


def test_registry_masks_and_restores_by_the_type_schema() -> None:
    registry = default_registry()
    stored = {"token": "push-token-0123456789"}
    assert registry.public_config("rest_push", stored) == {"token": MASK}
    assert registry.restore_config("rest_push", {"token": MASK}, stored) == stored
    with pytest.raises(ConfigError, match="no stored secret"):
        registry.restore_config("rest_push", {"token": MASK}, {})
    # A type no longer installed is still masked, by names.
    assert registry.public_config("gone", {"password": "x"}) == {"password": MASK}


@pytest.mark.parametrize(
    ("kind", "config", "secret"),
    [
        ("rest_push", {"token": "too-short-tok"}, "too-short-tok"),
        ("rest_poll", {"url": "ftp://u:url-pw-9@h/"}, "url-pw-9"),
        ("rest_poll", {"url": "https://h/", "headers": {"Authorization": 123456789}}, "123456789"),
        ("rest_poll", {"url": "https://h/", "auth": "Bearer inline-token-xyz"}, "inline-token"),
        ("mqtt", {"topic": "t", "password": ["listed-pw"]}, "listed-pw"),
    ],
)
def test_validation_errors_never_quote_a_secret(
    kind: str, config: dict[str, Any], secret: str
) -> None:
    with pytest.raises(ConfigError) as info:
        default_registry().validate(kind, config)
    assert secret not in info.value.message
    assert secret not in json.dumps(info.value.to_dict())
    assert info.value.fields["problems"]  # still says where and what


def test_check_target_errors_carry_no_credentials() -> None:
    with pytest.raises(ConfigError) as info:
        rest_poll.check_target("https://u:target-pw@127.0.0.1/x", allow_private=False)
    assert "target-pw" not in json.dumps(info.value.to_dict())
    assert "u:***@127.0.0.1" in info.value.message
