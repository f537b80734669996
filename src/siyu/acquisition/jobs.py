"""Jobs of the acquisition domain: create and maintain channel codes at WeCom, attribute adds to
them, and send each new customer their welcome (the channel's flow, else the corp default).

Every call to WeCom is made holding no database transaction (on SQLite a second transaction of
the same thread would wait for the first one's lock), claimed first under an effect key so that a
retried job never makes it twice (`siyu.wecom.service.claim_effect` / `call_claimed`)."""

from __future__ import annotations

import datetime as dt
import logging
import random
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.acquisition import lead_jobs, leads, service, welcome  # noqa: F401 - lead_jobs registers its jobs
from siyu.acquisition.models import ChannelCode
from siyu.db import session_scope, utcnow
from siyu.errors import NotFound
from siyu.jobs.events import job_name_for, subscribe
from siyu.jobs.registry import (
    DeadlinePassed,
    JobContext,
    PermanentFailure,
    RetryLater,
    batch_handler,
    builtin_schedule,
    job_handler,
)
from siyu.wecom import service as wecom

log = logging.getLogger(__name__)

WELCOME_WINDOW_SECONDS = 20.0  # WeCom accepts a welcome code this long after the add event
WELCOME_RETRY_SECONDS = 0.5
WELCOME_ELSEWHERE_RETRY_SECONDS = 1.0  # 41096: another application is sending its welcome now
WELCOME_QUEUE = "welcome"  # served newest first under backlog (SIYU_JOB_LIFO_QUEUES)
SEND_WELCOME_ENDPOINT = "externalcontact/send_welcome_msg"
BUSY = (45009, 45033, -1)  # answers that left nothing at WeCom


def _received_at(payload: Mapping[str, Any]) -> dt.datetime:
    try:
        at = dt.datetime.fromisoformat(str(payload["received_at"]))
    except (KeyError, ValueError):
        return utcnow()
    return at if at.tzinfo else at.replace(tzinfo=dt.UTC)


def welcome_deadline(payload: Mapping[str, Any]) -> dt.datetime | None:
    """The last moment a welcome may be sent: 20 s after the add, counted from the event's
    CreateTime (when WeCom issued the code), not from when the job was queued. An event that
    claims to come from the future (a clock ahead of ours) counts from its receipt instead, so the
    deadline is never later than 20 s after Siyu heard of the add. None without a welcome code."""
    if not payload.get("welcome_code"):
        return None
    received = _received_at(payload)
    create_time = payload.get("create_time")
    added = received
    if isinstance(create_time, int) and 0 < create_time < 2**33:
        added = min(received, dt.datetime.fromtimestamp(create_time, dt.UTC))
    return added + dt.timedelta(seconds=WELCOME_WINDOW_SECONDS)

def _code_id(payload: dict[str, Any]) -> int:
    code_id = payload.get("code_id")
    if not isinstance(code_id, int):
        raise PermanentFailure("payload.code_id must be an integer")
    return code_id


# --- channel codes at WeCom ---------------------------------------------------------------------------

@job_handler("acquisition.register_code", max_attempts=20)
def register_code(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    """Create the code's contact way (add_contact_way) once, under the effect key contact_way:{id}."""
    code_id, corp_id = _code_id(payload), job.corp_id
    if corp_id is None:
        raise PermanentFailure("the job has no corp")
    with session_scope() as s:
        code = service.get_channel_code(s, corp_id=corp_id, code_id=code_id)
        if code.status != "pending":
            return
        users, multi, state, remark = service.eligible_users(s, code=code), code.multi_advisor, code.state, code.name
        try:
            client = wecom.client_for_corp(s, corp_id=corp_id)
        except NotFound:
            client = None
        else:
            claim = wecom.claim_effect(s, corp_id=corp_id, effect_key=f"contact_way:{code_id}",
                                       endpoint="add_contact_way")
    if client is None:
        code = service.get_channel_code(session, corp_id=corp_id, code_id=code_id)
        code.status, code.wecom_detail = "failed", "the corp's WeCom connection is not set up"
        return
    made = []
    # The handler's session stays unused until the call is over: the client itself opens short
    # transactions (token, rate limit) that would wait for it on SQLite.
    outcome = wecom.call_claimed(claim, lambda: made.append(client.add_contact_way(
        type=2 if multi else 1, scene=2, user=users, state=state, remark=remark[:30])), record_in=session)
    if outcome.state == "failed" and outcome.errcode in BUSY:
        raise RetryLater(2.0, f"WeCom busy ({outcome.errcode})")
    code = service.get_channel_code(session, corp_id=corp_id, code_id=code_id)
    if made:
        code.status, code.config_id, code.qr_url = "active", made[0].config_id, made[0].qr_code
        code.wecom_users, code.users_version, code.wecom_detail = users, 1, ""
    else:
        code.status = "failed"
        code.wecom_detail = (outcome.detail or outcome.state)[:500]
    code.updated_at = utcnow()


@job_handler("acquisition.sync_code_users", max_attempts=20)
def sync_code_users(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    """Bring the advisors WeCom offers on a multi-advisor code in line with today's caps and who is
    active (update_contact_way), once per (code, version, list)."""
    code_id, corp_id = _code_id(payload), job.corp_id
    if corp_id is None:
        raise PermanentFailure("the job has no corp")
    with session_scope() as s:
        code = service.get_channel_code(s, corp_id=corp_id, code_id=code_id)
        if code.status != "active" or not code.config_id or not code.multi_advisor:
            return
        users = service.eligible_users(s, code=code)
        if users == list(code.wecom_users or []):
            return
        config_id, version = code.config_id, code.users_version
        client = wecom.client_for_corp(s, corp_id=corp_id)
        claim = wecom.claim_effect(s, corp_id=corp_id, effect_key=f"contact_way_users:{code_id}:{version}:"
                                   + ",".join(users)[:150], endpoint="update_contact_way")
    outcome = wecom.call_claimed(claim, lambda: client.update_contact_way(config_id=config_id, user=users),
                                 record_in=session)
    if outcome.state == "failed" and outcome.errcode in BUSY:
        raise RetryLater(2.0, f"WeCom busy ({outcome.errcode})")
    if outcome.state == "sent":
        code = service.get_channel_code(session, corp_id=corp_id, code_id=code_id)
        code.wecom_users, code.users_version, code.updated_at = users, version + 1, utcnow()


@job_handler("acquisition.daily_codes")
def daily_codes(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    """After midnight (Asia/Shanghai): advisors who were full yesterday are offered again, and codes
    past their expiry stop (del_contact_way)."""
    from siyu.jobs.service import enqueue

    now = utcnow()
    codes = session.scalars(select(ChannelCode).where(ChannelCode.status == "active")).all()
    day = service.shanghai_day(now)
    for code in codes:
        if code.expires_at is not None and code.expires_at <= now:
            enqueue(session, name="acquisition.expire_code", payload={"code_id": code.id}, corp_id=code.corp_id,
                    queue="wecom", idempotency_key=f"acquisition.expire_code:{code.id}")
        elif code.multi_advisor:
            service.request_user_sync(session, code=code, reason=f"new day {day}")


builtin_schedule("acquisition.daily_codes", cron="1 0 * * *", name="acquisition.daily_codes")


@job_handler("acquisition.expire_code", max_attempts=20)
def expire_code(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    code_id, corp_id = _code_id(payload), job.corp_id
    if corp_id is None:
        raise PermanentFailure("the job has no corp")
    with session_scope() as s:
        code = service.get_channel_code(s, corp_id=corp_id, code_id=code_id)
        if code.status != "active" or not code.config_id:
            return
        config_id = code.config_id
        client = wecom.client_for_corp(s, corp_id=corp_id)
        claim = wecom.claim_effect(s, corp_id=corp_id, effect_key=f"del_contact_way:{code_id}",
                                   endpoint="del_contact_way")
    outcome = wecom.call_claimed(claim, lambda: client.del_contact_way(config_id=config_id), record_in=session)
    if outcome.state == "failed" and outcome.errcode in BUSY:
        raise RetryLater(2.0, f"WeCom busy ({outcome.errcode})")
    code = service.get_channel_code(session, corp_id=corp_id, code_id=code_id)
    code.status, code.updated_at = "expired", utcnow()
    if outcome.state != "sent":
        code.wecom_detail = (outcome.detail or outcome.state)[:500]


# --- attribution ----------------------------------------------------------------------------------------

@subscribe("customer.added", name="acquisition.attribute", queue="default", together=True)
def attribute(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    """Record the add against the channel code its state names (渠道归因)."""
    corp_id, event_id = job.corp_id, payload.get("inbox_event_id")
    if corp_id is None or not isinstance(event_id, int) or not payload.get("state"):
        return
    if _is_transfer_add(session, corp_id, payload):  # a handover completing: the customer came by no channel
        return
    if leads.is_lead_state(str(payload["state"])):  # a lead's personal code (线索), not a channel code
        leads.mark_converted(session, corp_id=corp_id, state=str(payload["state"]),
                             external_userid=str(payload.get("external_userid") or ""), at=_received_at(payload))
        return
    service.attribute_add(session, corp_id=corp_id, state=str(payload["state"]), userid=str(payload.get("userid")),
                          external_userid=str(payload.get("external_userid")), inbox_event_id=event_id,
                          at=_received_at(payload))


@batch_handler(job_name_for("customer.added", "acquisition.attribute"))
def attribute_many(session: Session, payloads: list[dict[str, Any]], jobs: list[JobContext]) -> None:
    """One attribution pass for several adds, in one transaction."""
    for payload, job in zip(payloads, jobs, strict=True):
        attribute(session, payload, job)


@subscribe("customer.lost", name="acquisition.lost", together=True)
def customer_lost(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    _lost(session, payload, job)


@subscribe("customer.deleted", name="acquisition.deleted", together=True)
def customer_deleted(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    _lost(session, payload, job)


def _is_transfer_add(session: Session, corp_id: int, payload: dict[str, Any]) -> bool:
    """The take-over advisor's add_external_contact of a completed handover (see
    `siyu.customers.service.is_transfer_add`); an add with a welcome code is a real add."""
    from siyu.customers.service import is_transfer_add

    if payload.get("welcome_code") or not payload.get("userid") or not payload.get("external_userid"):
        return False
    return is_transfer_add(session, corp_id=corp_id, external_userid=str(payload["external_userid"]),
                           wecom_userid=str(payload["userid"]), at=_received_at(payload))


def _lost(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    if job.corp_id is None or not payload.get("userid") or not payload.get("external_userid"):
        return
    service.mark_lost(session, corp_id=job.corp_id, userid=str(payload["userid"]),
                      external_userid=str(payload["external_userid"]), at=_received_at(payload))


# --- the welcome ------------------------------------------------------------------------------------------

@subscribe("customer.added", name="acquisition.welcome", queue=WELCOME_QUEUE, priority=-10, max_attempts=60,
           deadline=welcome_deadline)
def send_welcome(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    """The channel's welcome flow (its variant for this customer, as its persona), else the corp
    default, through send_welcome_msg at most once per add (effect key welcome:{inbox event}).

    The job carries the code's deadline (`welcome_deadline`): the queue never starts it later, and
    a retry that would come later expires it; nothing is sent to WeCom for a code already dead.
    A corp's closed 45009 window defers the job to the window's end; 41096 (another application is
    sending a welcome now) retries after a second; 41051 (the customer already started chatting)
    records the welcome as superseded.

    No welcome code: WeCom sent none (the customer was welcomed elsewhere, or the add came another
    way), so the advisor gets a follow-up to greet them by hand."""
    code = payload.get("welcome_code")
    corp_id, event_id = job.corp_id, payload.get("inbox_event_id")
    if corp_id is None:
        return
    userid, external_userid = str(payload.get("userid") or ""), str(payload.get("external_userid") or "")
    state = str(payload["state"]) if payload.get("state") else None
    if not code:
        # No welcome code, so no welcome; a follow-up to greet by hand, except for a handover's
        # take-over (the customer was greeted by the transfer message, and is no new add).
        if isinstance(event_id, int) and userid and external_userid and not _is_transfer_add(session, corp_id,
                                                                                             payload):
            welcome.record_follow_up(session, corp_id=corp_id, inbox_event_id=event_id, userid=userid,
                                     external_userid=external_userid, state=state)
        return
    effect_key = f"welcome:{event_id}"
    received_at = _received_at(payload)
    deadline = job.deadline_at or welcome_deadline(payload)
    customer_name = None
    _before_deadline(deadline)
    # One short transaction plans the welcome, reviews it and claims the send; the calls hold none.
    with session_scope() as s:
        plan = welcome.plan_welcome(s, corp_id=corp_id, state=state, userid=userid, external_userid=external_userid)
        if plan is None:
            return
        if plan.held_reason is not None:
            # Nothing approved to send (compliance's content gate): hold it, visibly, with the reason.
            wecom.record_outcome(s, corp_id=corp_id, effect_key=effect_key, endpoint="send_welcome_msg",
                                 state="held", event_time=received_at, detail=f"approval: {plan.held_reason}")
            return
        try:
            client = wecom.client_for_corp(s, corp_id=corp_id)
        except NotFound:
            log.warning("no welcome for inbox event %s: the corp's WeCom connection is not set up", event_id)
            return
        window = wecom.rate_window_until(s, corp_id=corp_id, endpoint=SEND_WELCOME_ENDPOINT)
    if window is not None:
        _retry_at(window, deadline, "the corp's 45009 window is closed")
    if plan.needs_customer_name:
        customer_name = _customer_name(client, external_userid)
    with session_scope() as s:
        plan = welcome.plan_welcome(s, corp_id=corp_id, state=state, userid=userid, external_userid=external_userid,
                                    customer_name=customer_name)
        if plan is None or plan.held_reason is not None:
            return
        # Compliance's outbound guard on the approved text: the text to send (a product welcome ends
        # with its risk disclosure), reviewed as sent; a block, or a "review" finding the checker did
        # not see when approving (the welcome goes out unattended), holds it.
        guarded, text = welcome.prepare_send(s, corp_id=corp_id, plan=plan, external_userid=external_userid)
        if plan.stops(guarded):
            # The dictionary changed since the text was saved: hold it back, visibly.
            wecom.record_outcome(s, corp_id=corp_id, effect_key=effect_key, endpoint="send_welcome_msg",
                                 state="blocked", event_time=received_at, detail=guarded.summary())
            if isinstance(event_id, int) and plan.variant_id is not None:
                welcome.record_send(s, corp_id=corp_id, inbox_event_id=event_id, plan=plan,
                                    external_userid=external_userid, state="blocked")
            return
        _before_deadline(deadline)  # planning (a name lookup) took time: claim nothing for a dead code
        claim = wecom.claim_effect(s, corp_id=corp_id, effect_key=effect_key, endpoint="send_welcome_msg",
                                   event_time=received_at, repeat_safe=True)
    outcome = wecom.call_claimed(
        claim, lambda: client.send_welcome_msg(welcome_code=str(code), text=text or None,
                                               attachments=plan.attachments),
        repeat_safe=True, record_in=session)
    if outcome.state == "failed" and outcome.errcode in BUSY:  # nothing reached the customer
        if outcome.errcode == 45009 and outcome.retry_at is not None:
            _retry_at(outcome.retry_at, deadline, "WeCom answered 45009")
        _retry_at(utcnow() + dt.timedelta(seconds=WELCOME_RETRY_SECONDS), deadline,
                  f"WeCom busy ({outcome.errcode})")
    if outcome.state == "failed" and outcome.errcode == 41096:  # another application's welcome, now
        _retry_at(utcnow() + dt.timedelta(seconds=WELCOME_ELSEWHERE_RETRY_SECONDS), deadline,
                  "another application is sending a welcome now (41096)")
    if outcome.state == "superseded":
        log.info("no welcome for inbox event %s: the customer had already started chatting (41051)", event_id)
    if isinstance(event_id, int) and plan.variant_id is not None:  # a variant's results
        welcome.record_send(session, corp_id=corp_id, inbox_event_id=event_id, plan=plan,
                            external_userid=external_userid, state=outcome.state)


def _before_deadline(deadline: dt.datetime | None) -> None:
    if deadline is not None and utcnow() >= deadline:
        raise DeadlinePassed("the welcome code's 20 s passed before the welcome could be sent")


def _retry_at(at: dt.datetime, deadline: dt.datetime | None, reason: str) -> None:
    """Retry at `at` (plus a little jitter, so deferred jobs do not return in one instant) if
    that is before the code's deadline; else the job expires: nothing can reach the customer."""
    at = at + dt.timedelta(seconds=random.uniform(0.0, 0.1))
    if deadline is not None and at >= deadline:
        raise DeadlinePassed(f"{reason}; a retry would come after the welcome code's 20 s")
    raise RetryLater(max(0.0, (at - utcnow()).total_seconds()), reason)


def _customer_name(client, external_userid: str) -> str | None:
    """The customer's WeChat name for {客户称呼}; a failed lookup falls back to "您" rather than
    costing the welcome its 20 s window."""
    from siyu.wecom.errors import WeComError

    try:
        return client.get_external_contact(external_userid).external_contact.name or None
    except (WeComError, ValueError) as exc:
        log.info("no customer name for the welcome: %s", exc)
        return None


# --- keyword replies: their jobs live in keyword_jobs.py ------------------------------------------------

from siyu.acquisition import keyword_jobs  # noqa: E402, F401 - registers the keyword-reply jobs
