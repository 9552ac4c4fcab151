"""``workbench users`` as a user runs it: a child process on the stack's catalog.

The token printed is the one the services accept; lists never show a token or a hash;
revoking and deleting take effect on the next request; a wrong role is refused before the
catalog is touched.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.services import ROOT, child_env, make_settings
from workbench.catalog.store import Catalog
from workbench.catalog.users import TOKEN_PREFIX, token_hash
from workbench.core.errors import NotFoundError
from workbench.core.settings import Settings


@pytest.fixture
def stack_settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def catalog(stack_settings: Settings) -> Iterator[Catalog]:
    opened = Catalog(stack_settings.catalog.url)
    yield opened
    opened.close()


def workbench(
    settings: Settings, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "workbench", *args],
        env=child_env(settings),
        cwd=ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def added_token(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    token = result.stdout.rstrip("\n").splitlines()[-1]
    assert token.startswith(TOKEN_PREFIX) and " " not in token, result.stdout
    return token


def test_users_add_prints_a_working_token_as_its_last_line(
    stack_settings: Settings, catalog: Catalog
) -> None:
    result = workbench(stack_settings, "users", "add", "vera", "--role", "viewer")
    token = added_token(result)
    assert "created user 'vera' with role 'viewer'" in result.stderr
    assert token not in result.stderr  # only stdout carries it
    identity = catalog.identify(token)
    assert identity is not None and (identity.user, identity.role) == ("vera", "viewer")


def test_users_add_with_a_password_from_stdin(stack_settings: Settings, catalog: Catalog) -> None:
    result = workbench(
        stack_settings, "users", "add", "ulla", "--role", "user", "--password", stdin="s3cret!\n"
    )
    token = added_token(result)
    assert catalog.check_password("ulla", "s3cret!") is not None
    assert catalog.check_password("ulla", "wrong") is None
    assert catalog.identify(token) is not None


def test_lists_show_no_token_and_no_hash(stack_settings: Settings, catalog: Catalog) -> None:
    token = added_token(
        workbench(
            stack_settings, "users", "add", "ulla", "--role", "user", "--password", stdin="pw\n"
        )
    )
    listed = workbench(stack_settings, "users", "list")
    assert listed.returncode == 0, listed.stderr
    users = {u["name"]: u for u in json.loads(listed.stdout)}
    assert users["ulla"]["role"] == "user" and users["ulla"]["has_password"] is True
    assert users["test-admin"]["role"] == "admin"  # the stack's own admin
    tokens = workbench(stack_settings, "users", "tokens", "ulla")
    assert tokens.returncode == 0, tokens.stderr
    [info] = json.loads(tokens.stdout)
    assert info["user"] == "ulla" and info["label"] == "cli" and info["revoked_at"] is None
    for shown in (listed, tokens):
        text = shown.stdout + shown.stderr
        assert token not in text and token_hash(token) not in text
        assert TOKEN_PREFIX not in text and "argon2" not in text and "hash" not in text


def test_revoke_and_delete_make_tokens_stop_working(
    stack_settings: Settings, catalog: Catalog
) -> None:
    first = added_token(workbench(stack_settings, "users", "add", "vera", "--role", "viewer"))
    second = added_token(workbench(stack_settings, "users", "token", "vera", "--label", "laptop"))
    assert catalog.identify(first) is not None and catalog.identify(second) is not None
    infos = json.loads(workbench(stack_settings, "users", "tokens", "vera").stdout)
    first_id = next(i["id"] for i in infos if i["label"] == "cli")

    revoked = workbench(stack_settings, "users", "revoke", str(first_id))
    assert revoked.returncode == 0, revoked.stderr
    assert json.loads(revoked.stdout) == {"revoked": first_id}
    assert catalog.identify(first) is None
    assert catalog.identify(second) is not None  # only the one revoked
    again = workbench(stack_settings, "users", "revoke", str(first_id))
    assert again.returncode == 1 and "not_found" in again.stderr

    deleted = workbench(stack_settings, "users", "delete", "vera")
    assert deleted.returncode == 0, deleted.stderr
    assert catalog.identify(second) is None
    with pytest.raises(NotFoundError):
        catalog.get_user("vera")
    names = [u["name"] for u in json.loads(workbench(stack_settings, "users", "list").stdout)]
    assert "vera" not in names
    gone = workbench(stack_settings, "users", "delete", "vera")
    assert gone.returncode == 1 and "no user 'vera'" in gone.stderr


def test_a_bad_role_is_refused_clearly_and_nothing_is_created(
    stack_settings: Settings, catalog: Catalog
) -> None:
    result = workbench(stack_settings, "users", "add", "mallory", "--role", "boss")
    assert result.returncode != 0 and result.stdout == ""
    assert "invalid choice: 'boss'" in result.stderr
    assert all(role in result.stderr for role in ("viewer", "user", "admin"))
    with pytest.raises(NotFoundError):
        catalog.get_user("mallory")


def test_bad_names_and_taken_names_are_refused(stack_settings: Settings, catalog: Catalog) -> None:
    bad = workbench(stack_settings, "users", "add", "no spaces", "--role", "viewer")
    assert bad.returncode == 2 and bad.stdout == ""  # a configuration to fix
    assert "workbench: config_error: user name 'no spaces' is not allowed" in bad.stderr
    added_token(workbench(stack_settings, "users", "add", "vera", "--role", "viewer"))
    taken = workbench(stack_settings, "users", "add", "vera", "--role", "admin")
    assert taken.returncode == 1 and "exists already" in taken.stderr and taken.stdout == ""
    assert catalog.get_user("vera").role == "viewer"


def test_users_role_changes_what_existing_tokens_may_do(
    stack_settings: Settings, catalog: Catalog
) -> None:
    token = added_token(workbench(stack_settings, "users", "add", "vera", "--role", "viewer"))
    changed = workbench(stack_settings, "users", "role", "vera", "--role", "user")
    assert changed.returncode == 0, changed.stderr
    assert json.loads(changed.stdout)["role"] == "user"
    identity = catalog.identify(token)
    assert identity is not None and identity.role == "user"
    unknown = workbench(stack_settings, "users", "role", "nobody", "--role", "user")
    assert unknown.returncode == 1 and "no user 'nobody'" in unknown.stderr
