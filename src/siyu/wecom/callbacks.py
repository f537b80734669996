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
commit. On SQLite the write lock is then taken once per batch rather than once per event."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import PlainTextResponse
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.routing import Route

from siyu.db import GroupCommitter, get_session, session_scope
from siyu.errors import InvalidInput
from siyu.wecom import service
from siyu.wecom.crypto import MAX_BODY_BYTES, CallbackCryptoError
from siyu.wecom.events import EventParseError, WecomEvent
from siyu.wecom.inbox import open_callback, store_event

log = logging.getLogger(__name__)

router = APIRouter(prefix="/wecom/callback", include_in_schema=False)

_committer = GroupCommitter(name="wecom-callbacks")


def _refuse(status: int, reason: str, slug: str) -> PlainTextResponse:
    # The reason is ours (never the body or the plaintext): safe to log and to answer.
    log.warning("wecom callback for %s refused (%d): %s", slug, status, reason)
    return PlainTextResponse(reason, status_code=status)


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


def _store_and_dispatch(session: Session, *, corp_id: int, event: WecomEvent, plaintext: str) -> None:
    received = store_event(session, event=event, plaintext=plaintext)
    if received.created:
        service.dispatch_event(session, corp_id=corp_id, event_id=received.id, natural_key=received.natural_key,
                               received_at=received.received_at, event=event)


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
        target = await run_in_threadpool(_load_target, corp_slug)
    if target is None:
        return _refuse(404, "no connected corp at this callback URL", corp_slug)
    try:
        event, plaintext = open_callback(crypto=target.crypto, body=bytes(body), **params)
    except CallbackCryptoError as exc:
        return _refuse(exc.status_code, str(exc), corp_slug)
    except EventParseError as exc:
        return _refuse(400, f"not a WeCom event: {exc}", corp_slug)
    corp_id = target.corp_id
    # Answered only once the event is committed: a failure here is a 500 and WeCom retries.
    await asyncio.wrap_future(_committer.submit(
        lambda session: _store_and_dispatch(session, corp_id=corp_id, event=event, plaintext=plaintext)))
    return PlainTextResponse("success")


# Mounted by the app factory ahead of every other route (see `siyu.app.create_app`).
hot_routes = [Route("/wecom/callback/{corp_slug}", receive, methods=["POST"], include_in_schema=False)]


async def bench_empty(request: Request) -> PlainTextResponse:
    """The baseline of `siyu bench callbacks`: the callback's route shape and mounting, no work."""
    return PlainTextResponse("success")


# Mounted right after `hot_routes` only when `Settings.bench_routes` is on (the benchmark's server).
bench_routes = [Route("/wecom/bench-empty/{corp_slug}", bench_empty, methods=["POST"], include_in_schema=False)]
