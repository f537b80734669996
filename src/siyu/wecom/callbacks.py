"""The WeCom callback endpoint of each corp: `/wecom/callback/{corp_slug}`.

GET answers WeCom's URL verification with the decrypted echostr. POST verifies the signature,
decrypts, checks the corp, stores the event in the durable inbox under its natural key and, for an
event seen for the first time, publishes its domain event (enqueues one job per subscriber),
all in one transaction, then answers
"success". Nothing else happens before the answer, so it comes back in milliseconds whatever
the downstream load; WeCom's retries and duplicates find the stored event and enqueue nothing.

Refusals store nothing: unknown or unconnected corp 404, bad signature or another corp's
message 403, malformed envelope or event 400, body over the size limit 413."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import PlainTextResponse
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from siyu.db import get_session
from siyu.wecom import service
from siyu.wecom.crypto import MAX_BODY_BYTES, CallbackCryptoError
from siyu.wecom.events import EventParseError
from siyu.wecom.inbox import get_event, receive_callback

log = logging.getLogger(__name__)

router = APIRouter(prefix="/wecom/callback", include_in_schema=False)

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


def _ingest(session: Session, corp_slug: str, body: bytes, msg_signature: str, timestamp: str,
            nonce: str) -> PlainTextResponse:
    target = service.callback_target(session, corp_slug=corp_slug)
    if target is None:
        return _refuse(404, "no connected corp at this callback URL", corp_slug)
    try:
        received = receive_callback(session, crypto=target.crypto, body=body, msg_signature=msg_signature,
                                    timestamp=timestamp, nonce=nonce)
    except CallbackCryptoError as exc:
        return _refuse(exc.status_code, str(exc), corp_slug)
    except EventParseError as exc:
        return _refuse(400, f"not a WeCom event: {exc}", corp_slug)
    if received.created:
        # Processing is enqueued in this transaction: one job per subscriber of the event's domain
        # event (e.g. the welcome for customer.added), and the event marked processed.
        row = get_event(session, event_id=received.id)
        service.dispatch_event(session, corp_id=target.corp_id, row=row, event=received.event)
    # The request's session commits before this answer leaves (siyu.db.get_session).
    return PlainTextResponse("success")


@router.post("/{corp_slug}")
async def receive(
    request: Request,
    corp_slug: str,
    msg_signature: str = Query(..., max_length=128),
    timestamp: str = Query(..., max_length=32),
    nonce: str = Query(..., max_length=128),
    session: Session = Depends(get_session),
) -> PlainTextResponse:
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
        return _refuse(413, "body too large", corp_slug)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            return _refuse(413, "body too large", corp_slug)
    return await run_in_threadpool(_ingest, session, corp_slug, bytes(body), msg_signature, timestamp, nonce)
