"""Jobs of the WeCom connector: turn stored callback events into domain events, and send the
corp-wide default welcome on every add that carries a welcome code."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from sqlalchemy.orm import Session

from siyu.db import session_scope, utcnow
from siyu.jobs.events import subscribe
from siyu.jobs.registry import JobContext, PermanentFailure, RetryLater, job_handler
from siyu.tenancy.service import get_corp_by_wecom_id
from siyu.wecom import inbox, service
from siyu.wecom.events import parse_event

log = logging.getLogger(__name__)

WELCOME_WINDOW_SECONDS = 20.0  # WeCom accepts a welcome code this long after the add event
WELCOME_RETRY_SECONDS = 0.5


@job_handler("wecom.process_event", max_attempts=10)
def process_event(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    """Publish the domain event of a stored callback event that was not dispatched when it arrived
    (the console's "process again", or an event stored before its corp was connected)."""
    event_id = payload.get("event_id")
    if not isinstance(event_id, int):
        raise PermanentFailure("payload.event_id must be an integer")
    row = inbox.get_event(session, event_id=event_id)
    if row.processed_at is not None:
        return
    corp = get_corp_by_wecom_id(session, wecom_corp_id=row.wecom_corp_id)
    if corp is None:
        raise PermanentFailure("no corp has this WeCom corp id any more")
    service.dispatch_event(session, corp_id=corp.id, event_id=row.id, natural_key=row.natural_key,
                           received_at=row.received_at, event=parse_event(row.plaintext))


def _received_at(payload: dict[str, Any]) -> dt.datetime:
    try:
        at = dt.datetime.fromisoformat(str(payload["received_at"]))
    except (KeyError, ValueError):
        return utcnow()
    return at if at.tzinfo else at.replace(tzinfo=dt.UTC)


@subscribe("customer.added", name="wecom.default_welcome", queue="wecom", priority=-10, max_attempts=60)
def send_default_welcome(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    """The corp-wide welcome, through send_welcome_msg, at most once per add.

    The claim is committed in a short transaction of its own before the call (see
    `service.send_once`); the outcome is recorded in the handler's session, which the worker
    commits with the job's completion."""
    code = payload.get("welcome_code")
    corp_id = job.corp_id
    if not code or corp_id is None:
        return  # no welcome code: WeCom (or the advisor) greets this customer, not the API
    from siyu.compliance.service import review_outbound

    effect_key = f"welcome:{payload.get('inbox_event_id')}"
    received_at = _received_at(payload)
    # One short transaction reads the settings, reviews the text and claims the send; the call
    # itself holds no transaction.
    with session_scope() as s:
        cfg = service.get_config(s, corp_id=corp_id)
        if cfg is None or not cfg.welcome_enabled or not cfg.welcome_text:
            return
        text = cfg.welcome_text
        verdict = review_outbound(s, corp_id=corp_id, text=text)
        if verdict.verdict != "pass":
            # The dictionary changed since the text was saved: hold it back, visibly.
            service.record_outcome(s, corp_id=corp_id, effect_key=effect_key, endpoint="send_welcome_msg",
                                   state="blocked", event_time=received_at,
                                   detail=f"compliance review: {verdict.verdict}")
            return
        client = service.client_for_corp(s, corp_id=corp_id)
        claim = service.claim_effect(s, corp_id=corp_id, effect_key=effect_key, endpoint="send_welcome_msg",
                                     event_time=received_at)
    outcome = service.call_claimed(claim, lambda: client.send_welcome_msg(welcome_code=str(code), text=text),
                                   repeat_safe=True, record_in=session)
    if outcome.state == "failed" and outcome.errcode in (45009, 45033, -1):  # nothing reached the customer
        left = WELCOME_WINDOW_SECONDS - (utcnow() - received_at).total_seconds()
        if left > WELCOME_RETRY_SECONDS:
            raise RetryLater(WELCOME_RETRY_SECONDS, f"WeCom busy ({outcome.errcode}), {left:.0f} s of the window left")
        log.warning("welcome for inbox event %s missed its window after errcode %s", payload.get("inbox_event_id"),
                    outcome.errcode)
