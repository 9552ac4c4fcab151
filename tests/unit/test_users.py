"""Users, roles and API tokens in the catalog (SQLite, PostgreSQL), tried as an attacker would."""

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from workbench.catalog import tables as t
from workbench.catalog.store import Catalog
from workbench.catalog.users import TOKEN_PREFIX, Identity, token_hash
from workbench.core.clock import utcnow
from workbench.core.errors import CatalogError, ConfigError, NotFoundError


def test_a_token_identifies_its_user_and_role(catalog: Catalog) -> None:
    catalog.add_user("ana", "user")
    issued = catalog.issue_token("ana", label="laptop")
    assert issued.value.startswith(TOKEN_PREFIX)
    assert issued.value not in repr(issued)
    who = catalog.identify(issued.value)
    assert who == Identity(user="ana", role="user", token_id=issued.info.id)
    assert who.has_role("viewer") and who.has_role("user") and not who.has_role("admin")
    [listed] = catalog.list_tokens("ana")
    assert listed.label == "laptop" and listed.last_used_at is not None


def test_identifying_writes_last_use_at_most_once_a_minute(catalog: Catalog) -> None:
    catalog.add_user("ana", "user")
    issued = catalog.issue_token("ana")
    assert catalog.identify(issued.value) is not None
    [first] = catalog.list_tokens("ana")
    assert catalog.identify(issued.value) is not None
    assert catalog.list_tokens("ana")[0].last_used_at == first.last_used_at  # no second write
    with catalog.engine.begin() as conn:
        conn.execute(update(t.api_tokens).values(last_used_at=utcnow() - timedelta(minutes=2)))
    assert catalog.identify(issued.value) is not None
    [later] = catalog.list_tokens("ana")
    assert later.last_used_at is not None
    assert later.last_used_at > utcnow() - timedelta(seconds=30)  # written again


def test_only_the_hash_of_a_token_is_stored(catalog: Catalog) -> None:
    catalog.add_user("ana", "admin")
    issued = catalog.issue_token("ana")
    with catalog.engine.begin() as conn:
        stored = conn.execute(select(t.api_tokens.c.token_hash)).scalars().all()
    assert stored == [token_hash(issued.value)]
    assert issued.value not in stored[0]
    # The stored hash is not itself a token.
    assert catalog.identify(stored[0]) is None
    assert catalog.identify(TOKEN_PREFIX + stored[0]) is None


@pytest.mark.parametrize(
    "forged",
    ["", "wbt_", "wbt_x", "Bearer wbt_x", " wbt_x", "' OR 1=1 --", "wbt_' OR '1'='1", "%"],
)
def test_forged_tokens_are_refused(catalog: Catalog, forged: str) -> None:
    catalog.add_user("ana", "admin")
    catalog.issue_token("ana")
    assert catalog.identify(forged) is None


def test_a_revoked_token_is_refused_at_once(catalog: Catalog) -> None:
    catalog.add_user("ana", "user")
    first, second = catalog.issue_token("ana"), catalog.issue_token("ana")
    catalog.revoke_token(first.info.id)
    assert catalog.identify(first.value) is None
    assert catalog.identify(second.value) is not None
    with pytest.raises(NotFoundError):
        catalog.revoke_token(first.info.id)  # revoked already


def test_an_expired_token_is_refused(catalog: Catalog) -> None:
    catalog.add_user("ana", "user")
    issued = catalog.issue_token("ana", days=1)
    assert catalog.identify(issued.value) is not None
    with catalog.engine.begin() as conn:
        conn.execute(update(t.api_tokens).values(expires_at=utcnow() - timedelta(seconds=1)))
    assert catalog.identify(issued.value) is None
    with pytest.raises(ConfigError):
        catalog.issue_token("ana", days=0)


def test_a_role_change_applies_to_existing_tokens(catalog: Catalog) -> None:
    catalog.add_user("ana", "admin")
    issued = catalog.issue_token("ana", days=None)
    catalog.set_role("ana", "viewer")
    assert catalog.identify(issued.value).role == "viewer"  # type: ignore[union-attr]


def test_deleting_a_user_kills_their_tokens(catalog: Catalog) -> None:
    catalog.add_user("ana", "admin")
    issued = catalog.issue_token("ana")
    catalog.delete_user("ana")
    assert catalog.identify(issued.value) is None
    # A new user of the same name does not inherit the old tokens.
    catalog.add_user("ana", "viewer")
    assert catalog.identify(issued.value) is None
    assert catalog.list_tokens("ana") == []


def test_passwords_are_argon2id_hashes_and_checked(catalog: Catalog) -> None:
    catalog.add_user("ana", "user", password="correct horse")
    with catalog.engine.begin() as conn:
        stored = conn.execute(select(t.users.c.password_hash)).scalar_one()
    assert stored.startswith("$argon2id$") and "correct horse" not in stored
    assert catalog.check_password("ana", "correct horse") == catalog.get_user("ana")
    assert catalog.check_password("ana", "Correct horse") is None
    assert catalog.check_password("nobody", "correct horse") is None
    catalog.add_user("bot", "viewer")  # token only
    assert catalog.check_password("bot", "") is None
    assert not catalog.get_user("bot").has_password


@pytest.mark.parametrize("name", ["", "-x", "a b", "x" * 65, "ana;drop", "../ana", "ana\n"])
def test_bad_user_names_are_refused(catalog: Catalog, name: str) -> None:
    with pytest.raises(ConfigError, match="not allowed"):
        catalog.add_user(name, "user")


def test_roles_and_duplicates(catalog: Catalog) -> None:
    with pytest.raises(ConfigError, match="choose one of viewer, user, admin"):
        catalog.add_user("ana", "root")  # type: ignore[arg-type]
    catalog.add_user("ana", "viewer")
    with pytest.raises(CatalogError, match="exists already"):
        catalog.add_user("ana", "admin")
    with pytest.raises(NotFoundError):
        catalog.issue_token("bob")
    assert [u.name for u in catalog.list_users()] == ["ana"]
