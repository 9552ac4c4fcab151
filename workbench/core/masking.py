"""Masking secrets out of configs, URLs and free text before anything is shown or logged.

Pure functions, no I/O: every answer and log line that could carry a source config, a URL or an
error message about one passes through here first. What counts as secret:

* a config field its JSON schema marks ``"writeOnly": true`` or ``"format": "password"``;
* a config field the schema does not declare whose name says secret (``token``, ``password``,
  ``api_key``, ``client_secret``...), and every value inside a container so named;
* a ``headers``/``params``/``query`` entry whose name says secret (``Authorization``,
  ``Cookie``, ``X-Api-Key``, anything with token, secret, key, auth, password, session...),
  whether the entries are a mapping, ``{"name", "value"}`` objects, pairs or ``"Name: value"``;
* any string that carries an HTTP auth scheme (``Bearer ...``, ``Basic ...``);
* inside any URL: the password (or a lone user name, which is often a token) and the values of
  query or fragment parameters whose name says secret.

A present secret is always replaced by :data:`MASK`, even an empty one; an absent one (``None``)
stays ``None``. :func:`restore_masked` undoes the masking of a config a client echoes back.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import SplitResult, unquote_plus, urlsplit, urlunsplit

MASK = "***"
"""What a secret is shown as."""

_NAME_WORDS = (
    "auth",
    "token",
    "secret",
    "passw",
    "pwd",
    "cookie",
    "key",
    "credential",
    "session",
    "signature",
    "private",
)
_NAME_EXACT = frozenset({"sig", "pass", "code", "jwt"})
_FIELD_WORDS = (
    "token",
    "secret",
    "passw",
    "credential",
    "authorization",
    "cookie",
    "signature",
    "private",
    "apikey",
    "accesskey",
)
_FIELD_EXACT = frozenset({"key", "pass", "pwd", "auth", "jwt", "sig"})
_ENTRY_CONTAINERS = frozenset({"headers", "params", "query", "query_params", "cookies"})
_AUTH_VALUE = re.compile(r"\b(bearer|basic|digest|negotiate|token)\s+[A-Za-z0-9._~+/=:-]{8,}", re.I)
_PLACEHOLDER = re.compile(r"(^|[\s=:/])\*\*\*($|[\s&;#@])")
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>]+")


def _normalized(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", unquote_plus(name).lower())


def sensitive_name(name: str) -> bool:
    """Whether a header, query parameter or cookie called ``name`` carries a secret.

    Broad on purpose (case, separators and percent-encoding ignored): masking a harmless
    header costs a little readability, missing a secret one leaks it.
    """
    flat = _normalized(name)
    return flat in _NAME_EXACT or any(word in flat for word in _NAME_WORDS)


def secret_field(name: str) -> bool:
    """Whether a config field the schema does not declare looks secret by its name.

    Narrower than :func:`sensitive_name`: ``record_key`` or ``auth_type`` name data, not
    secrets, while ``api_key``, ``client_secret`` or ``password`` do.
    """
    flat = _normalized(name)
    return flat in _FIELD_EXACT or any(word in flat for word in _FIELD_WORDS)


def marked_secret(schema: Any) -> bool:
    """Whether a JSON schema marks its value secret (``writeOnly`` or ``format: password``)."""
    return isinstance(schema, dict) and (
        schema.get("writeOnly") is True or schema.get("format") == "password"
    )


def mask_url(url: str) -> str:
    """``url`` with its credentials masked; a URL without any comes back unchanged.

    ``https://user:pass@host/p?api_key=k&page=2`` becomes
    ``https://user:***@host/p?api_key=***&page=2``. The user info is everything before the last
    ``@`` of the authority, so an unencoded ``@`` in a password is still masked and one in the
    path is left alone.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        # Unparseable (a broken IPv6 literal...): show nothing of what follows the scheme.
        scheme, sep, _ = url.partition("://")
        return f"{scheme}{sep}{MASK}" if sep else url
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user, colon, _password = userinfo.partition(":")
        # A lone user name is as often a token (https://<token>@host) as a name: mask it too.
        netloc = f"{user}:{MASK}@{host}" if colon else f"{MASK}@{host}"
    masked = SplitResult(
        parts.scheme,
        netloc,
        parts.path,
        _mask_pairs(parts.query),
        _mask_pairs(parts.fragment),
    )
    return urlunsplit(masked) if masked != parts else url


def _mask_pairs(text: str) -> str:
    if "=" not in text:
        return text
    out = []
    for piece in re.split(r"([&;])", text):
        name, eq, _value = piece.partition("=")
        out.append(f"{name}={MASK}" if eq and sensitive_name(name) else piece)
    return "".join(out)


def mask_text(text: str) -> str:
    """Free text (an error message, a log line, a config value) with the credentials of every
    URL in it and every ``Bearer <credential>``-like value masked."""
    text = _URL.sub(lambda match: mask_url(match.group(0)), text) if "://" in text else text
    return _AUTH_VALUE.sub(rf"\1 {MASK}", text)


def mask_config(config: dict[str, Any], schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """A copy of a source config with every secret replaced by :data:`MASK`.

    Args:
        config: the stored config (never modified).
        schema: the connector type's JSON schema; None (an unknown type) masks by names only.
    """
    masked = _mask(config, schema or {}, name="", inherited=False)
    return masked if isinstance(masked, dict) else {}


def _mask(value: Any, schema: Any, *, name: str, inherited: bool) -> Any:
    if value is None or isinstance(value, bool):
        return value  # absent, or a flag: nothing secret to hide
    schema = schema if isinstance(schema, dict) else {}
    if marked_secret(schema):
        return _mask_all(value)
    if "enum" in schema or "const" in schema:
        return value  # one of a fixed, published set (an auth ``type``): never a secret
    if inherited:
        return _mask_all(value)
    if name.lower() in _ENTRY_CONTAINERS:
        return _mask_entries(value, schema)
    if isinstance(value, dict):
        return {
            key: _mask(
                item,
                _property_schema(schema, key),
                name=str(key),
                # An undeclared container named like a secret (``credentials``) hides all of it.
                inherited=not _declares(schema, key)
                and secret_field(str(key))
                and isinstance(item, (dict, list)),
            )
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_mask(item, schema.get("items"), name=name, inherited=False) for item in value]
    if secret_field(name):
        return MASK
    return mask_text(value) if isinstance(value, str) else value


def _mask_all(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _mask_all(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_mask_all(item) for item in value]
    return None if value is None else MASK


def _mask_entries(value: Any, schema: dict[str, Any]) -> Any:
    """Headers, query parameters or cookies, in any of the shapes configs write them."""
    if isinstance(value, dict):
        return {
            key: _mask_all(item)
            if sensitive_name(str(key))
            else _mask(item, _property_schema(schema, key), name="", inherited=False)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_mask_entry(item) for item in value]
    if isinstance(value, str):
        return _mask_entry(value)
    return value


def _mask_entry(entry: Any) -> Any:
    if isinstance(entry, dict):
        label_key = next((k for k in ("name", "key", "header") if k in entry), None)
        label = entry.get(label_key) if label_key else None
        if isinstance(label, str) and sensitive_name(label):
            return {k: v if k == label_key else _mask_all(v) for k, v in entry.items()}
        return _mask(entry, {}, name="", inherited=False)
    if isinstance(entry, (list, tuple)) and len(entry) == 2 and isinstance(entry[0], str):
        second = (
            _mask_all(entry[1])
            if sensitive_name(entry[0])
            else _mask(entry[1], {}, name="", inherited=False)
        )
        return [entry[0], second]
    if isinstance(entry, str):
        label, sep, _ = entry.partition(":" if ":" in entry else "=")
        if sep and sensitive_name(label):
            return f"{label}{sep} {MASK}" if sep == ":" else f"{label}{sep}{MASK}"
        return mask_text(entry)
    return entry


def _declares(schema: dict[str, Any], key: str) -> bool:
    props = schema.get("properties")
    return isinstance(props, dict) and key in props


def _property_schema(schema: dict[str, Any], key: str) -> Any:
    props = schema.get("properties")
    if isinstance(props, dict) and key in props:
        return props[key]
    extra = schema.get("additionalProperties")
    return extra if isinstance(extra, dict) else {}


def restore_masked(
    new: dict[str, Any], old: dict[str, Any], schema: dict[str, Any] | None = None
) -> dict[str, Any]:
    """``new`` with every value a client echoed back masked replaced by the stored one.

    A client that reads a source, edits one field and sends the config back sends the masks
    too; storing them would overwrite the secrets with ``***``. A value of ``new`` that equals
    the masked form of the value at the same place in ``old`` (and differs from it) is taken
    from ``old``: a URL whose password was masked gets its password back, a header left at
    ``***`` keeps its value.

    Raises:
        ValueError: naming the first place where ``new`` holds the mask but ``old`` has nothing
            to restore (the client must send the real secret).
    """
    restored = _restore(new, old, mask_config(old, schema), path="")
    return restored if isinstance(restored, dict) else dict(new)


def _restore(new: Any, old: Any, masked: Any, *, path: str) -> Any:
    if isinstance(new, dict):
        old_map = old if isinstance(old, dict) else {}
        masked_map = masked if isinstance(masked, dict) else {}
        return {
            key: _restore(
                item, old_map.get(key), masked_map.get(key), path=f"{path}/{key}".lstrip("/")
            )
            for key, item in new.items()
        }
    if isinstance(new, list):
        old_list = old if isinstance(old, list) else []
        masked_list = masked if isinstance(masked, list) else []
        return [
            _restore(
                item,
                old_list[i] if i < len(old_list) else None,
                masked_list[i] if i < len(masked_list) else None,
                path=f"{path}/{i}".lstrip("/"),
            )
            for i, item in enumerate(new)
        ]
    if new == masked and masked != old:
        return old
    if isinstance(new, str) and new != old and _PLACEHOLDER.search(new):
        raise ValueError(
            f"{path or '(root)'} holds the mask {MASK!r} but no stored secret matches it; "
            "send the real value"
        )
    return new
