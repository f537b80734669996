"""Where access tokens are cached: behind a small protocol, in memory (one process, tests) or in
the application database (shared by every serve/worker process; the default in production).

WeCom hands out the same token again while it is valid, so two processes refreshing at once do
no harm; what must not happen is one process deleting a token another one just stored, hence
`discard` only removes the token that failed."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from siyu.db import utcnow
from siyu.pii import decrypt, encrypt
from siyu.wecom._db import dialect_insert

_PII_CONTEXT = "wecom_access_token"


@dataclass(frozen=True)
class TokenKey:
    corp_id: str
    secret_sha256: str

    @classmethod
    def for_secret(cls, corp_id: str, secret: str) -> TokenKey:
        return cls(corp_id, hashlib.sha256(secret.encode()).hexdigest())


@dataclass(frozen=True)
class CachedToken:
    access_token: str
    expires_at: dt.datetime

    def usable(self, *, margin: dt.timedelta, now: dt.datetime | None = None) -> bool:
        return (now or utcnow()) < self.expires_at - margin


class TokenStore(Protocol):
    def get(self, key: TokenKey) -> CachedToken | None: ...

    def put(self, key: TokenKey, token: CachedToken) -> None: ...

    def discard(self, key: TokenKey, access_token: str) -> None:
        """Forget `access_token` if it is still the stored one (WeCom refused it)."""
        ...


class InMemoryTokenStore:
    """One process only (tests, scripts): several processes would each fetch their own token."""

    def __init__(self) -> None:
        self._tokens: dict[TokenKey, CachedToken] = {}
        self._lock = threading.Lock()

    def get(self, key: TokenKey) -> CachedToken | None:
        with self._lock:
            return self._tokens.get(key)

    def put(self, key: TokenKey, token: CachedToken) -> None:
        with self._lock:
            self._tokens[key] = token

    def discard(self, key: TokenKey, access_token: str) -> None:
        with self._lock:
            if (current := self._tokens.get(key)) is not None and current.access_token == access_token:
                del self._tokens[key]


def _default_scope() -> AbstractContextManager[Session]:
    from siyu.db import session_scope

    return session_scope()


class DatabaseTokenStore:
    """Tokens in `wecom_access_token` (encrypted at rest), one row per (corp id, secret hash).

    `scope` opens a unit of work (default `siyu.db.session_scope`); each operation is its own
    short transaction and never spans the HTTP call to WeCom."""

    def __init__(self, scope: Callable[[], AbstractContextManager[Session]] = _default_scope) -> None:
        self._scope = scope

    @contextlib.contextmanager
    def _session(self) -> Iterator[Session]:
        with self._scope() as session:
            yield session
            session.flush()

    def get(self, key: TokenKey) -> CachedToken | None:
        from siyu.wecom.models import WecomAccessToken

        with self._session() as s:
            row = s.scalar(select(WecomAccessToken).where(WecomAccessToken.corp_id == key.corp_id,
                                                          WecomAccessToken.secret_sha256 == key.secret_sha256))
            return None if row is None else CachedToken(decrypt(row.access_token_encrypted, context=_PII_CONTEXT),
                                                        row.expires_at)

    def put(self, key: TokenKey, token: CachedToken) -> None:
        from siyu.wecom.models import WecomAccessToken

        with self._session() as s:
            table = WecomAccessToken.__table__
            values = {"corp_id": key.corp_id, "secret_sha256": key.secret_sha256,
                      "access_token_encrypted": encrypt(token.access_token, context=_PII_CONTEXT),
                      "expires_at": token.expires_at, "updated_at": utcnow()}
            insert = dialect_insert(s)(table).values(**values)
            # Upsert: two processes refreshing the same token at once must both succeed.
            s.execute(insert.on_conflict_do_update(
                index_elements=["corp_id", "secret_sha256"],
                set_={"access_token_encrypted": insert.excluded.access_token_encrypted,
                      "expires_at": insert.excluded.expires_at,
                      "updated_at": insert.excluded.updated_at},
            ))

    def discard(self, key: TokenKey, access_token: str) -> None:
        from siyu.wecom.models import WecomAccessToken

        # The column is encrypted with a random nonce, so compare in Python, then delete by id;
        # the row lock keeps a token another process stored meanwhile from being deleted.
        with self._session() as s:
            row = s.scalar(select(WecomAccessToken).where(WecomAccessToken.corp_id == key.corp_id,
                                                          WecomAccessToken.secret_sha256 == key.secret_sha256)
                           .with_for_update())
            if row is not None and decrypt(row.access_token_encrypted, context=_PII_CONTEXT) == access_token:
                s.execute(delete(WecomAccessToken).where(WecomAccessToken.id == row.id))

