"""The WeCom callback endpoint of each corp: `/wecom/callback/{corp_slug}`.

GET answers WeCom's URL verification with the decrypted echostr. POST verifies the signature,
decrypts, checks the corp, stores the event in the durable inbox under its natural key and, for an
event seen for the first time, publishes its domain event (enqueues one job per subscriber), all
in one transaction, then answers "success". Nothing else happens before the answer, so it comes
back in milliseconds whatever the downstream load; WeCom's retries and duplicates find the stored
event and enqueue nothing.

Refusals store nothing: unknown or unconnected corp 404, bad signature or another corp's
message 403, malformed envelope or event 400, body over the size limit 413.

How a POST runs: the body is read, verified, decrypted and parsed on the event loop (pure CPU,
tens of microseconds); the database work goes to a group committer, which stores the events of
all requests that arrived meanwhile in one transaction, and the answer goes back after its
commit. On SQLite the write lock is then taken once per batch rather than once per event.

When the database cannot take the event (down, unreachable, its connections dropped, SQLite's lock
not obtained, or no commit within `STORE_WAIT_SECONDS`, well inside WeCom's 5 s), the verified,
decrypted event goes to this process's callback spool (`siyu.wecom.spool`), fsync'd, and is
acknowledged; the spool's drainer stores it when the database is back, deduped by the natural key
like any delivery. Only a full spool (or a disk that refuses the write) is answered 503, so WeCom
retries: a database outage is never answered with 500. The corp's keys come from the per-process
cache, which keeps its last known value while the database is unreachable."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import threading

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import PlainTextResponse
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.routing import Route

from siyu import metrics
from siyu.config import get_settings
from siyu.db import GroupCommitter, get_engine, get_session, session_factory, session_scope, utcnow
from siyu.errors import InvalidInput
from siyu.wecom import service
from siyu.wecom.crypto import MAX_BODY_BYTES, CallbackCryptoError
from siyu.wecom.events import EventParseError, WecomEvent, parse_event
from siyu.wecom.inbox import Delivery, open_callback
from siyu.wecom.spool import (
    CallbackSpool,
    GroupAppender,
    SpoolDrainer,
    SpooledEvent,
    SpoolFull,
    database_unavailable,
    encode,
)

log = logging.getLogger(__name__)

router = APIRouter(prefix="/wecom/callback", include_in_schema=False)

def _store_batch(session: Session, deliveries: list[tuple[int, Delivery]]) -> list[bool]:
    return service.store_and_dispatch(session, deliveries)


# Units are (corp id, delivery): a batch is stored and published in a few multi-row statements.
_committer = GroupCommitter(name="wecom-callbacks", run_many=_store_batch)


# How long a callback waits for its commit before it is spooled instead (WeCom waits 5 s).
STORE_WAIT_SECONDS = 3.0


def _refuse(status: int, reason: str, slug: str) -> PlainTextResponse:
    # The reason is ours (never the body or the plaintext): safe to log and to answer.
    log.warning("wecom callback for %s refused (%d): %s", slug, status, reason)
    metrics.count_callback("refused")
    return PlainTextResponse(reason, status_code=status)


# --- the spool of this process ----------------------------------------------------------------------

_spool_lock = threading.Lock()
_spool: CallbackSpool | None = None
_drainer: SpoolDrainer | None = None
_appender: GroupAppender | None = None


def callback_spool() -> CallbackSpool:
    """This process's spool, in the configured directory (created on first use)."""
    global _spool
    settings = get_settings()
    directory = settings.resolved_spool_dir()
    with _spool_lock:
        if _spool is None or _spool.directory != directory:
            _spool = CallbackSpool(directory, max_bytes=settings.callback_spool_max_bytes)
        _spool.max_bytes = settings.callback_spool_max_bytes
        return _spool


def store_spooled(session: Session, event: SpooledEvent) -> bool:
    """The drainer's store: exactly what the endpoint does with a delivery. True when stored now."""
    return store_spooled_many(session, [event])[0]


def store_spooled_many(session: Session, events: list[SpooledEvent]) -> list[bool]:
    """The drainer's store of a batch, in the few statements of the endpoint's group commit."""
    return service.store_and_dispatch(session, [
        (e.corp_id, Delivery(event=parse_event(e.plaintext), plaintext=e.plaintext, received_at=e.received_at))
        for e in events])


def _drained(result) -> None:
    log.info("callback spool: %d event(s) stored, %d already stored, %d rejected", result.stored,
             result.duplicates, result.rejected)
    metrics.count_spool_drained("stored", result.stored)
    metrics.count_spool_drained("duplicate", result.duplicates)
    metrics.count_spool_drained("rejected", result.rejected)


def spool_drainer() -> SpoolDrainer:
    global _drainer
    spool = callback_spool()
    with _spool_lock:
        if _drainer is None or _drainer.spool is not spool:
            if _drainer is not None:
                _drainer.stop(timeout=0)
            _drainer = SpoolDrainer(spool, sessions=lambda: session_factory()(), store=store_spooled,
                                   store_many=store_spooled_many, on_result=_drained)
        return _drainer


def spool_appender() -> GroupAppender:
    """This process's group appender to its spool (journal acknowledgement)."""
    global _appender
    spool = callback_spool()
    with _spool_lock:
        sync = get_settings().callback_journal_fsync
        if _appender is None or _appender.spool is not spool or _appender.sync != sync:
            _appender = GroupAppender(spool, sync=sync)
        return _appender


def journal_acks() -> bool:
    """Whether callbacks are acknowledged once journaled in the spool (`Settings.callback_ack`;
    "auto": on SQLite)."""
    ack = get_settings().callback_ack
    if ack == "auto":
        return get_engine().dialect.name == "sqlite"
    return ack == "journal"


def start_spool_drainer() -> None:
    """Started with each serve process: drains this process's spool and what dead ones left."""
    spool_drainer().start()


def stop_spool_drainer() -> None:
    """At shutdown: the drainer stops, and the spool's lock is released (its files, if any, are
    then taken over by another serve process or by this one's successor)."""
    if _drainer is not None:
        _drainer.stop()
    if _spool is not None:
        _spool.close()


@router.get("/{corp_slug}")
def verify_url(
    corp_slug: str,
    msg_signature: str = Query(..., max_length=128),
    timestamp: str = Query(..., max_length=32),
    nonce: str = Query(..., max_length=128),
    echostr: str = Query(..., max_length=4096),
    session: Session = Depends(get_session),
) -> PlainTextResponse:
    target = service.callback_target(session, corp_slug=corp_slug)
    if target is None:
        return _refuse(404, "no connected corp at this callback URL", corp_slug)
    try:
        return PlainTextResponse(target.crypto.verify_url(msg_signature, timestamp, nonce, echostr))
    except CallbackCryptoError as exc:
        return _refuse(exc.status_code, f"URL verification failed: {exc}", corp_slug)


def _load_target(corp_slug: str) -> service.CallbackTarget | None:
    with session_scope() as session:
        return service.callback_target(session, corp_slug=corp_slug)


def _store_and_dispatch(session: Session, *, corp_id: int, event: WecomEvent, plaintext: str,
                        received_at: dt.datetime | None = None) -> bool:
    delivery = Delivery(event=event, plaintext=plaintext, received_at=received_at or utcnow())
    return service.store_and_dispatch(session, [(corp_id, delivery)])[0]


def _spool_event(corp_id: int, plaintext: str, received_at: dt.datetime) -> None:
    callback_spool().append(corp_id=corp_id, plaintext=plaintext, received_at=received_at)


_QUERY_LIMITS = {"msg_signature": 128, "timestamp": 32, "nonce": 128}


async def receive(request: Request) -> PlainTextResponse:
    """POST: a plain Starlette endpoint rather than a FastAPI route. It is the endpoint every
    event of every corp goes through, and FastAPI's parameter and dependency machinery was half of
    its cost; the three query parameters are checked here, with the same errors naming the field."""
    corp_slug = request.path_params["corp_slug"]
    params = {}
    for name, limit in _QUERY_LIMITS.items():
        value = request.query_params.get(name)
        if not value:
            raise InvalidInput("this field is required", field=name)
        if len(value) > limit:
            raise InvalidInput("at most %(n)s characters", field=name, params={"n": limit})
        params[name] = value
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
        return _refuse(413, "body too large", corp_slug)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            return _refuse(413, "body too large", corp_slug)
    target = service.cached_callback_target(corp_slug)
    if target is service.MISS:
        try:
            target = await run_in_threadpool(_load_target, corp_slug)
        except Exception as exc:
            if not database_unavailable(exc):
                raise
            # The database is unreachable: the keys this process knew last still verify WeCom.
            target = service.cached_callback_target(corp_slug, stale=True)
            if target is service.MISS:
                return _refuse(503, "the database is unavailable and this corp's keys are not known yet", corp_slug)
    if target is None:
        return _refuse(404, "no connected corp at this callback URL", corp_slug)
    try:
        event, plaintext = open_callback(crypto=target.crypto, body=bytes(body), **params)
    except CallbackCryptoError as exc:
        return _refuse(exc.status_code, str(exc), corp_slug)
    except EventParseError as exc:
        return _refuse(400, f"not a WeCom event: {exc}", corp_slug)
    corp_id = target.corp_id
    received_at = utcnow()
    if journal_acks():
        # Answered once the event is in the spool (written, or with SIYU_CALLBACK_JOURNAL_FSYNC
        # fsync'd together with whatever other requests arrived meanwhile); the drainer stores it,
        # in batches, moments later.
        try:
            if get_settings().callback_journal_fsync:
                await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(
                    spool_appender().submit(corp_id=corp_id, plaintext=plaintext, received_at=received_at))),
                    STORE_WAIT_SECONDS)
            else:  # one write of a line to the kernel: no thread to hand it to
                callback_spool().append_lines([encode(corp_id=corp_id, plaintext=plaintext, received_at=received_at)],
                                              sync=False)
        except (SpoolFull, OSError, TimeoutError) as exc:
            # The spool cannot take it (full, the disk refuses, or too slow): the database directly.
            log.warning("wecom callback for %s: the spool cannot take the event (%s); stored directly", corp_slug,
                        type(exc).__name__)
        else:
            metrics.count_callback("journaled")
            spool_drainer().wake()
            return PlainTextResponse("success")
        return await _commit_or_spool(corp_slug, corp_id, event, plaintext, received_at, spool=False)
    return await _commit_or_spool(corp_slug, corp_id, event, plaintext, received_at, spool=True)


async def _commit_or_spool(corp_slug: str, corp_id: int, event: WecomEvent, plaintext: str,
                           received_at: dt.datetime, *, spool: bool) -> PlainTextResponse:
    """Answered only once the event is committed, or else on disk in the spool (`spool`)."""
    future = _committer.submit((corp_id, Delivery(event=event, plaintext=plaintext, received_at=received_at)))
    try:
        created = await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)), STORE_WAIT_SECONDS)
    except Exception as exc:
        if not isinstance(exc, TimeoutError) and not database_unavailable(exc):
            raise
        # Not committed (or not in time: if it commits later, the drainer finds it stored).
        try:
            if not spool:
                raise SpoolFull("the spool refused it already")
            await run_in_threadpool(_spool_event, corp_id, plaintext, received_at)
        except (SpoolFull, OSError) as spool_exc:
            log.error("wecom callback for %s: the database is unavailable (%s) and the spool cannot take the "
                      "event (%s)", corp_slug, type(exc).__name__, spool_exc)
            return _refuse(503, "temporarily unable to store the event", corp_slug)
        log.warning("wecom callback for %s spooled: the database is unavailable (%s)", corp_slug,
                    type(exc).__name__)
        metrics.count_callback("spooled")
        spool_drainer().wake()
        return PlainTextResponse("success")
    metrics.count_callback("stored" if created else "duplicate")
    return PlainTextResponse("success")


# Mounted by the app factory ahead of every other route (see `siyu.app.create_app`).
hot_routes = [Route("/wecom/callback/{corp_slug}", receive, methods=["POST"], include_in_schema=False)]
# Run by the app factory's lifespan in each serve process.
on_startup = [start_spool_drainer]
on_shutdown = [stop_spool_drainer]


async def bench_empty(request: Request) -> PlainTextResponse:
    """The baseline of `siyu bench callbacks`: the callback's route shape and mounting, no work."""
    return PlainTextResponse("success")


# Mounted right after `hot_routes` only when `Settings.bench_routes` is on (the benchmark's server).
bench_routes = [Route("/wecom/bench-empty/{corp_slug}", bench_empty, methods=["POST"], include_in_schema=False)]
