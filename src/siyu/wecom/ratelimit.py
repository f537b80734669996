"""Client-side limits on calls to WeCom: a token bucket per (corp, endpoint), shared through the
database across processes (or in memory for one process), and an adaptive concurrency limit.

WeCom's documented frequency limits are per corp and API (10,000 calls a minute and 150,000 an
hour per API); going over answers 45009 for the rest of the window. Pacing ourselves below that
is cheaper than being told, and a 45009 seen by one process blocks the bucket for all of them."""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from siyu.db import utcnow


@dataclass(frozen=True)
class RateLimit:
    per_second: float
    burst: float

    def __post_init__(self) -> None:
        if self.per_second <= 0 or self.burst < 1:
            raise ValueError("a rate limit needs per_second > 0 and burst >= 1")


# WeCom allows each corp 10,000 calls of one API a minute and 150,000 an hour. 40/s sustained with
# bursts of up to 5,000 stays under both windows: at most 5,000 + 60*40 = 7,400 calls in any minute
# and 5,000 + 3,600*40 = 149,000 in any hour. The large burst is what lets a rush of adds (a poster
# in a branch, an ad going live) be welcomed at 100 a second within their 20 s windows.
DEFAULT_RATE_LIMIT = RateLimit(per_second=40.0, burst=5000.0)


def take_token(tokens: float, elapsed: float, limit: RateLimit) -> tuple[float, float]:
    """Refill a bucket holding `tokens` after `elapsed` seconds and try to take one.
    Returns (tokens left, seconds to wait before a token is available; 0 when one was taken)."""
    tokens = min(limit.burst, tokens + max(0.0, elapsed) * limit.per_second)
    if tokens >= 1.0 - 1e-9:  # refills land a rounding error short of a whole token
        return max(0.0, tokens - 1.0), 0.0
    return tokens, (1.0 - tokens) / limit.per_second


class RateLimiter(Protocol):
    def reserve(self, corp_id: str, endpoint: str) -> float:
        """Take a token if one is available (returns 0) or say how long to wait (takes nothing)."""
        ...

    def block(self, corp_id: str, endpoint: str, seconds: float) -> None:
        """WeCom answered 45009: nobody calls this endpoint for this corp for `seconds`."""
        ...


class Limits:
    """Per-endpoint limits with one default."""

    def __init__(self, default: RateLimit = DEFAULT_RATE_LIMIT, per_endpoint: dict[str, RateLimit] | None = None):
        self.default = default
        self.per_endpoint = dict(per_endpoint or {})

    def __call__(self, endpoint: str) -> RateLimit:
        return self.per_endpoint.get(endpoint, self.default)


class InMemoryRateLimiter:
    """One process only (tests, scripts)."""

    def __init__(self, limits: Limits | None = None, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._limits = limits or Limits()
        self._clock = clock
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}  # key -> (tokens, at)
        self._blocked: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def reserve(self, corp_id: str, endpoint: str) -> float:
        key, limit = (corp_id, endpoint), self._limits(endpoint)
        with self._lock:
            now = self._clock()
            if (until := self._blocked.get(key, 0.0)) > now:
                return until - now
            tokens, at = self._buckets.get(key, (limit.burst, now))
            tokens, wait = take_token(tokens, now - at, limit)
            self._buckets[key] = (tokens, now)
            return wait

    def block(self, corp_id: str, endpoint: str, seconds: float) -> None:
        with self._lock:
            key = (corp_id, endpoint)
            self._blocked[key] = max(self._blocked.get(key, 0.0), self._clock() + seconds)


def _default_scope() -> AbstractContextManager[Session]:
    from siyu.db import session_scope

    return session_scope()


class DatabaseRateLimiter:
    """Buckets in `wecom_rate_bucket`, one short transaction per reservation (the row is locked
    FOR UPDATE on PostgreSQL; SQLite's BEGIN IMMEDIATE serialises writers anyway). A database
    round trip per WeCom call is small beside the call itself, and it is what makes the limit
    hold across machines."""

    def __init__(self, limits: Limits | None = None,
                 scope: Callable[[], AbstractContextManager[Session]] = _default_scope, *,
                 chunk: int = 10, chunk_seconds: float = 1.0) -> None:
        self._limits = limits or Limits()
        self._scope = scope
        # Tokens are taken from the shared bucket `chunk` at a time and spent here within
        # `chunk_seconds` (what is not spent by then lapses): one database write per `chunk`
        # calls instead of one per call, and never more calls than the bucket allowed.
        self._chunk = max(1, chunk)
        self._chunk_seconds = chunk_seconds
        self._local: dict[tuple[str, str], tuple[int, float]] = {}
        self._local_lock = threading.Lock()

    @contextlib.contextmanager
    def _session(self) -> Iterator[Session]:
        with self._scope() as session:
            yield session
            session.flush()

    def _row(self, s: Session, corp_id: str, endpoint: str, limit: RateLimit):
        from siyu.wecom.models import WecomRateBucket

        query = (select(WecomRateBucket)
                 .where(WecomRateBucket.corp_id == corp_id, WecomRateBucket.endpoint == endpoint)
                 .with_for_update())
        row = s.scalar(query)
        if row is None:
            try:
                with s.begin_nested():
                    s.add(WecomRateBucket(corp_id=corp_id, endpoint=endpoint, tokens=limit.burst, updated_at=utcnow()))
            except IntegrityError:
                pass  # another process created it first
            row = s.scalar(query)
        return row

    def reserve(self, corp_id: str, endpoint: str) -> float:
        key = (corp_id, endpoint)
        with self._local_lock:
            left, until = self._local.get(key, (0, 0.0))
            if left > 0 and until > time.monotonic():
                self._local[key] = (left - 1, until)
                return 0.0
        limit = self._limits(endpoint)
        with self._session() as s:
            row = self._row(s, corp_id, endpoint, limit)
            now = utcnow()
            if row.blocked_until is not None and row.blocked_until > now:
                return (row.blocked_until - now).total_seconds()
            tokens, wait = take_token(row.tokens, (now - row.updated_at).total_seconds(), limit)
            if wait == 0.0 and self._chunk > 1:
                extra = min(self._chunk - 1, int(tokens))  # more of what is there, for the next calls
                tokens -= extra
                with self._local_lock:
                    # Added to what another thread of this process may have taken meanwhile,
                    # never written over it (that would throw tokens away).
                    left, until = self._local.get(key, (0, 0.0))
                    now_m = time.monotonic()
                    self._local[key] = ((left if until > now_m else 0) + extra, now_m + self._chunk_seconds)
            row.tokens, row.updated_at = tokens, now
            return wait

    def block(self, corp_id: str, endpoint: str, seconds: float) -> None:
        from siyu.wecom.models import WecomRateBucket

        with self._local_lock:
            self._local.pop((corp_id, endpoint), None)
        limit = self._limits(endpoint)
        with self._session() as s:
            row = self._row(s, corp_id, endpoint, limit)
            until = utcnow() + dt.timedelta(seconds=seconds)
            if row.blocked_until is None or row.blocked_until < until:
                s.execute(update(WecomRateBucket).where(WecomRateBucket.id == row.id).values(blocked_until=until))


class AdaptiveConcurrency:
    """How many calls this process runs at once, halved on 45033 and grown back by one after
    `limit` successes in a row (additive increase, multiplicative decrease)."""

    def __init__(self, limit: int = 16, *, minimum: int = 1, maximum: int = 64) -> None:
        if not 1 <= minimum <= limit <= maximum:
            raise ValueError("need 1 <= minimum <= limit <= maximum")
        self.limit = limit
        self.minimum, self.maximum = minimum, maximum
        self._in_flight = 0
        self._successes = 0
        self._cond = threading.Condition()

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: self._in_flight < self.limit)
            self._in_flight += 1
        try:
            yield
        finally:
            with self._cond:
                self._in_flight -= 1
                self._cond.notify()

    def overloaded(self) -> None:
        with self._cond:
            self.limit = max(self.minimum, self.limit // 2)
            self._successes = 0

    def succeeded(self) -> None:
        with self._cond:
            self._successes += 1
            if self._successes >= self.limit and self.limit < self.maximum:
                self.limit += 1
                self._successes = 0
                self._cond.notify()
