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

from siyu.db import dialect_insert, utcnow
from siyu.pii import decrypt, encrypt

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

    def __init__(self, scope: Callable[[], AbstractContextManager[Session]] = _default_scope, *,
                 memo_margin: float = 900.0) -> None:
        self._scope = scope
        # A token read or stored here is remembered in this process while it has more than
        # `memo_margin` seconds to live (more than the client's refresh margin), so that calls do
        # not read the database each time; a token WeCom refused is forgotten with `discard`.
        self._memo: dict[TokenKey, CachedToken] = {}
        self._memo_margin = dt.timedelta(seconds=memo_margin)
        self._memo_lock = threading.Lock()

    def _remember(self, key: TokenKey, token: CachedToken | None) -> CachedToken | None:
        with self._memo_lock:
            if token is None:
                self._memo.pop(key, None)
            else:
                self._memo[key] = token
        return token

    @contextlib.contextmanager
    def _session(self) -> Iterator[Session]:
        with self._scope() as session:
            yield session
            session.flush()

    def get(self, key: TokenKey) -> CachedToken | None:
        from siyu.wecom.models import WecomAccessToken

        with self._memo_lock:
            memo = self._memo.get(key)
        if memo is not None and memo.usable(margin=self._memo_margin):
            return memo
        with self._session() as s:
            row = s.scalar(select(WecomAccessToken).where(WecomAccessToken.corp_id == key.corp_id,
                                                          WecomAccessToken.secret_sha256 == key.secret_sha256))
            token = None if row is None else CachedToken(decrypt(row.access_token_encrypted, context=_PII_CONTEXT),
                                                         row.expires_at)
        return self._remember(key, token)

    def put(self, key: TokenKey, token: CachedToken) -> None:
        from siyu.wecom.models import WecomAccessToken

        self._remember(key, token)
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

        self._remember(key, None)
        # The column is encrypted with a random nonce, so compare in Python, then delete by id;
        # the row lock keeps a token another process stored meanwhile from being deleted.
        with self._session() as s:
            row = s.scalar(select(WecomAccessToken).where(WecomAccessToken.corp_id == key.corp_id,
                                                          WecomAccessToken.secret_sha256 == key.secret_sha256)
                           .with_for_update())
            if row is not None and decrypt(row.access_token_encrypted, context=_PII_CONTEXT) == access_token:
                s.execute(delete(WecomAccessToken).where(WecomAccessToken.id == row.id))

