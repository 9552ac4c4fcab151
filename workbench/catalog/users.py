"""Users, roles and API tokens: who may call the services, and as what.

A mixin of :class:`workbench.catalog.store.Catalog`; it needs only ``self.engine``.

- Passwords are hashed with argon2id (``argon2-cffi``'s defaults, which follow RFC 9106's
  second recommended parameter set); the hash carries its own parameters, so raising them
  later re-hashes on the next successful login.
- API tokens are 256 random bits, shown once when issued and stored as their SHA-256. A slow
  hash buys nothing for a secret that cannot be guessed, and a fast one lets every request be
  checked by one indexed look-up. Tokens expire and can be revoked; a revoked or expired token
  is refused the same way as an unknown one, so an answer never tells which it was.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, get_args

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError

from workbench.catalog import tables as t
from workbench.catalog.dialect import stored_utc
from workbench.core.clock import utcnow
from workbench.core.errors import CatalogError, ConfigError, NotFoundError

Role = Literal["viewer", "user", "admin"]
#: Roles from least to most privileged.
ROLES: tuple[Role, ...] = get_args(Role)
#: Every token starts with this, so a leaked one is easy to recognise (and to scan for).
TOKEN_PREFIX = "wbt_"
#: How long a token lives unless its issuer says otherwise.
DEFAULT_TOKEN_DAYS = 90
#: How precisely a token's ``last_used_at`` is kept (see :meth:`UserTables.identify`).
LAST_USED_RESOLUTION = timedelta(minutes=1)

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
_HASHER = PasswordHasher()


@dataclass(frozen=True)
class User:
    """A user of the workbench (never carries a password or a token)."""

    name: str
    role: Role
    created_at: datetime
    has_password: bool


@dataclass(frozen=True)
class Identity:
    """Who a request speaks for: taken from its token, never from its body."""

    user: str
    role: Role
    token_id: int

    def has_role(self, role: Role) -> bool:
        """True when this identity's role is ``role`` or a more privileged one."""
        return ROLES.index(self.role) >= ROLES.index(role)


@dataclass(frozen=True)
class TokenInfo:
    """An issued token as listed: its id and dates, never its value."""

    id: int
    user: str
    label: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


@dataclass(frozen=True)
class IssuedToken:
    """A token just issued. ``value`` is shown once; the catalog keeps only its hash."""

    info: TokenInfo
    value: str

    def __repr__(self) -> str:
        return f"IssuedToken(info={self.info!r}, value='{TOKEN_PREFIX}…')"


def token_hash(value: str) -> str:
    """The stored form of a token value."""
    return hashlib.sha256(value.encode()).hexdigest()


class UserTables:
    """Users and their API tokens over the catalog database."""

    engine: Engine

    def add_user(self, name: str, role: Role, *, password: str | None = None) -> User:
        """Create a user. Without a password the user signs in with tokens only.

        Raises:
            ConfigError: for a malformed name, an unknown role or an empty password.
            CatalogError: when the name is taken.
        """
        _check_name(name)
        _check_role(role)
        if password is not None and not password:
            raise ConfigError("a password may not be empty; omit it for a token-only user")
        now = utcnow()
        hashed = _HASHER.hash(password) if password is not None else None
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(t.users).values(
                        name=name, role=role, password_hash=hashed, created_at=now
                    )
                )
        except IntegrityError as err:
            raise CatalogError(f"user {name!r} exists already", user=name) from err
        return User(name=name, role=role, created_at=now, has_password=hashed is not None)

    def list_users(self) -> list[User]:
        """Every user, by name."""
        with self.engine.begin() as conn:
            rows = conn.execute(select(t.users).order_by(t.users.c.name)).mappings()
            return [_user(row) for row in rows]

    def get_user(self, name: str) -> User:
        """One user by name.

        Raises:
            NotFoundError: for an unknown name.
        """
        with self.engine.begin() as conn:
            row = conn.execute(select(t.users).where(t.users.c.name == name)).mappings().first()
        if row is None:
            raise NotFoundError(f"no user {name!r}; see `workbench users list`", user=name)
        return _user(row)

    def set_role(self, name: str, role: Role) -> User:
        """Change a user's role (takes effect on the user's next request).

        Raises:
            ConfigError: for an unknown role.
            NotFoundError: for an unknown user.
        """
        _check_role(role)
        with self.engine.begin() as conn:
            done = conn.execute(update(t.users).where(t.users.c.name == name).values(role=role))
        if done.rowcount == 0:
            raise NotFoundError(f"no user {name!r}; see `workbench users list`", user=name)
        return self.get_user(name)

    def delete_user(self, name: str) -> None:
        """Delete a user and every token issued to them.

        Raises:
            NotFoundError: for an unknown user.
        """
        with self.engine.begin() as conn:
            conn.execute(delete(t.api_tokens).where(t.api_tokens.c.user == name))
            done = conn.execute(delete(t.users).where(t.users.c.name == name))
        if done.rowcount == 0:
            raise NotFoundError(f"no user {name!r}; see `workbench users list`", user=name)

    def check_password(self, name: str, password: str) -> User | None:
        """The user when ``password`` is theirs; ``None`` otherwise (unknown users included)."""
        with self.engine.begin() as conn:
            row = conn.execute(select(t.users).where(t.users.c.name == name)).mappings().first()
        stored = row["password_hash"] if row is not None else None
        if row is None or stored is None:
            # Hash anyway, so an unknown name costs the same time as a wrong password.
            _HASHER.hash(password)
            return None
        try:
            _HASHER.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return None
        if _HASHER.check_needs_rehash(stored):
            with self.engine.begin() as conn:
                conn.execute(
                    update(t.users)
                    .where(t.users.c.name == name)
                    .values(password_hash=_HASHER.hash(password))
                )
        return _user(row)

    def issue_token(
        self, name: str, *, label: str = "", days: float | None = DEFAULT_TOKEN_DAYS
    ) -> IssuedToken:
        """A new API token for user ``name``, valid ``days`` (``None``: until revoked).

        Raises:
            NotFoundError: for an unknown user.
            ConfigError: for a lifetime that is not positive.
        """
        if days is not None and days <= 0:
            raise ConfigError("a token's lifetime must be a positive number of days", days=days)
        self.get_user(name)
        value = TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = utcnow()
        expires = now + timedelta(days=days) if days is not None else None
        with self.engine.begin() as conn:
            token_id = conn.execute(
                insert(t.api_tokens)
                .values(
                    token_hash=token_hash(value),
                    user=name,
                    label=label,
                    created_at=now,
                    expires_at=expires,
                )
                .returning(t.api_tokens.c.id)
            ).scalar_one()
        info = TokenInfo(token_id, name, label, now, expires, None, None)
        return IssuedToken(info=info, value=value)

    def list_tokens(self, name: str | None = None) -> list[TokenInfo]:
        """Issued tokens (of one user, or all), newest first; never their values."""
        query = select(t.api_tokens).order_by(t.api_tokens.c.id.desc())
        if name is not None:
            query = query.where(t.api_tokens.c.user == name)
        with self.engine.begin() as conn:
            return [_token(row) for row in conn.execute(query).mappings()]

    def revoke_token(self, token_id: int) -> None:
        """Revoke a token at once (its next request is refused).

        Raises:
            NotFoundError: for an unknown token id.
        """
        with self.engine.begin() as conn:
            done = conn.execute(
                update(t.api_tokens)
                .where(t.api_tokens.c.id == token_id, t.api_tokens.c.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            )
        if done.rowcount == 0:
            raise NotFoundError(f"no live token {token_id}", token=token_id)

    def identify(self, value: str) -> Identity | None:
        """The identity a token value stands for; ``None`` when unknown, expired or revoked.

        Every request asks this, so it reads one indexed row and writes only when the token's
        ``last_used_at`` is older than :data:`LAST_USED_RESOLUTION` (a write per request would
        queue every reader behind SQLite's write lock).
        """
        if not value.startswith(TOKEN_PREFIX):
            return None
        now = utcnow()
        query = (
            select(
                t.api_tokens.c.id,
                t.users.c.name,
                t.users.c.role,
                t.api_tokens.c.expires_at,
                t.api_tokens.c.last_used_at,
            )
            .join(t.users, t.users.c.name == t.api_tokens.c.user)
            .where(t.api_tokens.c.token_hash == token_hash(value))
            .where(t.api_tokens.c.revoked_at.is_(None))
        )
        with self.engine.begin() as conn:
            row = conn.execute(query).mappings().first()
            if row is None:
                return None
            expires = stored_utc(row["expires_at"])
            if expires is not None and expires <= now:
                return None
            used = stored_utc(row["last_used_at"])
            if used is None or now - used >= LAST_USED_RESOLUTION:
                conn.execute(
                    update(t.api_tokens)
                    .where(t.api_tokens.c.id == row["id"])
                    .values(last_used_at=now)
                )
        return Identity(user=row["name"], role=row["role"], token_id=row["id"])


def _check_name(name: str) -> None:
    if not _NAME.fullmatch(name):
        raise ConfigError(
            f"user name {name!r} is not allowed: 1-64 letters, digits and . _ @ -, "
            "starting with a letter or digit",
            user=name,
        )


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise ConfigError(f"unknown role {role!r}; choose one of {', '.join(ROLES)}", role=role)


def _user(row: RowMapping) -> User:
    return User(
        name=row["name"],
        role=row["role"],
        created_at=stored_utc(row["created_at"]),
        has_password=row["password_hash"] is not None,
    )


def _token(m: RowMapping) -> TokenInfo:
    return TokenInfo(
        id=m["id"],
        user=m["user"],
        label=m["label"],
        created_at=stored_utc(m["created_at"]),
        expires_at=stored_utc(m["expires_at"]),
        revoked_at=stored_utc(m["revoked_at"]),
        last_used_at=stored_utc(m["last_used_at"]),
    )
