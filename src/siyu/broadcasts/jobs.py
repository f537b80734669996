"""The broadcast jobs: start (plan into the ledger), send (one advisor's WeCom task, at most once),
check (results per advisor) and remind (advisors who have not confirmed). See `service`."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.broadcasts.models import Broadcast, BroadcastSend
from siyu.db import session_scope, utcnow
from siyu.errors import NotFound
from siyu.jobs.registry import JobContext, PermanentFailure, RetryLater, job_handler
from siyu.jobs.service import enqueue

log = logging.getLogger(__name__)

QUEUE = "wecom"
START, SEND, CHECK, REMIND = "broadcasts.start", "broadcasts.send", "broadcasts.check", "broadcasts.remind"
CHECK_SECONDS = 60
CONFIRM_DAYS = 3  # after this an unconfirmed task is given up (WeCom's tasks expire)
REMIND_AFTER = dt.timedelta(hours=2)
RECONCILE_SLACK = 120
# A send found `calling` is reconciled only once a call made before the crash has surely landed at
# WeCom or been given up (twice the client's 10 s timeout): else a slow call still in flight when the
# worker died would be missing from WeCom's list, and the customers would get the message twice.
SETTLE = dt.timedelta(seconds=20)


def _id(payload: dict[str, Any], key: str) -> int:
    value = payload.get(key)
    if not isinstance(value, int):
        raise PermanentFailure(f"payload.{key} must be an integer")
    return value


def wecom_client(corp_id: int):
    from siyu.wecom.service import client_for_corp

    with session_scope() as s:
        try:
            return client_for_corp(s, corp_id=corp_id)
        except NotFound:
            return None


# --- start -----------------------------------------------------------------------------------------------


def start_one(broadcast_id: int, *, now: dt.datetime | None = None) -> str:
    from siyu.broadcasts import service
    from siyu.broadcasts.content import KIND, OWNER
    from siyu.compliance.service import content_for_send
    from siyu.delivery import service as delivery

    now = now or utcnow()
    with session_scope() as s:
        row = s.get(Broadcast, broadcast_id)
        if row is None or row.status != "scheduled":
            return row.status if row else "gone"
        if row.scheduled_at is not None and row.scheduled_at > now + dt.timedelta(seconds=5):
            return row.status  # rescheduled later: that time's job starts it
        sendable = content_for_send(s, corp_id=row.corp_id, kind=KIND, owner=(OWNER, row.id))
        if sendable.held:
            row.detail = f"not sent: {sendable.held_reason}"[:300]
            raise RetryLater(300, "the broadcast's text is not approved yet")
        policy = delivery.policy_for(s, corp_id=row.corp_id)
        if delivery.in_quiet_hours(policy, now):  # held whole, released at the next allowed minute
            release = delivery.release_at(policy, now)
            row.detail = f"held for the quiet hours until {release.isoformat()}"
            enqueue(s, name=START, payload={"broadcast_id": row.id}, corp_id=row.corp_id, queue=QUEUE,
                    run_at=release, idempotency_key=f"{START}:{row.id}:{int(release.timestamp())}")
            return "held"
        row.plan = service.record_plan(s, row=row, at=now)
        row.status, row.started_at, row.content_version, row.detail = "sending", now, sendable.version, ""
        sends = list(s.scalars(select(BroadcastSend.id).where(BroadcastSend.broadcast_id == row.id)))
        # Rate spreading: the advisors' calls are spaced to the corp's sends per minute (WeCom's API
        # limits are per corp), each a job of its own at its time.
        gap = 60.0 / max(1, policy.sends_per_minute)
        for i, send_id in enumerate(sends):
            enqueue(s, name=SEND, payload={"send_id": send_id}, corp_id=row.corp_id, queue=QUEUE,
                    run_at=now + dt.timedelta(seconds=i * gap), idempotency_key=f"{SEND}:{send_id}")
        service.refresh_status(s, row=row)
        return row.status


@job_handler(START, max_attempts=300)
def start(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    start_one(_id(payload, "broadcast_id"))


# --- send ------------------------------------------------------------------------------------------------


def _prepare(s: Session, send: BroadcastSend) -> list[str] | None:
    """planned -> calling: the approved text through the send-time guard for this advisor's customers
    (those who opted out since the plan are aborted). None when nothing is to be called."""
    from siyu.acquisition.content import from_gate
    from siyu.broadcasts import service
    from siyu.broadcasts.content import KIND, OWNER
    from siyu.compliance.approval import attachment_titles
    from siyu.compliance.service import content_for_send, prepare_outbound
    from siyu.delivery import service as delivery

    row = s.get(Broadcast, send.broadcast_id)
    sendable = content_for_send(s, corp_id=send.corp_id, kind=KIND, owner=(OWNER, row.id))
    customers = service.part_customers(s, send=send)
    if sendable.held:
        send.state, send.detail = "failed", f"not sent: {sendable.held_reason}"[:300]
        return None
    out = prepare_outbound(s, corp_id=send.corp_id, kind=KIND, text=sendable.text or "",
                           recipients=[ext for _c, ext in customers], product_types=sendable.product_types,
                           shown=attachment_titles(list(sendable.attachments)))
    if sendable.held_by(out):
        send.state, send.detail = "failed", out.summary()[:300]
        return None
    refused = {cid for cid, ext in customers if ext in out.refused}
    if refused:
        delivery.record_outcome(s, source=service.source(row.id), customer_ids=refused, state="aborted",
                                reason="opted_out")
    targets = [ext for cid, ext in customers if cid not in refused]
    if not targets:
        send.state, send.detail = "done", "no customer left to send to"
        return None
    send.text, send.attachments = out.text, from_gate(sendable.attachments)
    send.intent_at, send.state = utcnow(), "calling"
    return targets


def _find_made(client, *, sender: str, text: str, intent_at: dt.datetime, taken: set[str]) -> str | None:
    start_ = int(intent_at.timestamp()) - RECONCILE_SLACK
    end = int(utcnow().timestamp()) + RECONCILE_SLACK
    for msg in client.iter_groupmsg_list(chat_type="single", start_time=start_, end_time=end, creator=sender,
                                         filter_type=0):
        if msg.content == text and msg.msgid not in taken:
            return msg.msgid
    return None


def send_one(send_id: int) -> str:
    """Hand one advisor's task to WeCom, at most once. Returns the send's state afterwards."""
    from siyu.broadcasts import service
    from siyu.delivery import service as delivery

    with session_scope() as s:
        send = s.get(BroadcastSend, send_id)
        if send is None or send.state not in ("planned", "calling"):
            return send.state if send else "gone"
        reconcile = send.state == "calling"
        if reconcile:
            targets = [ext for _c, ext in service.part_customers(s, send=send)]
        else:
            targets = _prepare(s, send)
            if targets is None:
                service.refresh_status(s, row=s.get(Broadcast, send.broadcast_id))
                return send.state
        corp_id, advisor, text = send.corp_id, send.advisor_userid, send.text
        attachments, intent_at = list(send.attachments or []), send.intent_at
        allow_select = s.get(Broadcast, send.broadcast_id).allow_select
    # The intent is committed: from here a crash leaves `calling`, which the next run reconciles.
    client = wecom_client(corp_id)
    if client is None:
        raise RetryLater(300, "the corp's WeCom connection is not set up")
    msgid, fail_list = None, set()
    if reconcile and intent_at is not None and utcnow() < intent_at + SETTLE:
        raise RetryLater((intent_at + SETTLE - utcnow()).total_seconds() + 0.5,
                         "an earlier call may still be landing at WeCom")
    if reconcile:
        with session_scope() as s:
            taken = set(s.scalars(select(BroadcastSend.msgid).where(BroadcastSend.corp_id == corp_id,
                                                                    BroadcastSend.advisor_userid == advisor,
                                                                    BroadcastSend.msgid.is_not(None))))
        msgid = _find_made(client, sender=advisor, text=text, intent_at=intent_at, taken=taken)
        if msgid is not None:
            log.info("broadcast send %s reconciled: WeCom had made %s before the crash", send_id, msgid)
    if msgid is None:
        from siyu.wecom.errors import InvalidRequest, InvalidUserId

        try:
            result = client.add_msg_template(chat_type="single", sender=advisor, external_userids=targets,
                                             text=text or None, attachments=attachments,
                                             allow_select=allow_select or None)
        except (InvalidUserId, InvalidRequest) as exc:
            with session_scope() as s:
                send = s.get(BroadcastSend, send_id)
                send.state, send.detail = "failed", f"WeCom refused the mass message: {exc}"[:300]
                service.refresh_status(s, row=s.get(Broadcast, send.broadcast_id))
                return send.state
        msgid, fail_list = result.msgid, set(result.fail_list)
    with session_scope() as s:
        send = s.get(BroadcastSend, send_id)
        send.msgid, send.state = msgid, "waiting"
        if fail_list:
            ids = [cid for cid, ext in service.part_customers(s, send=send) if ext in fail_list]
            delivery.record_outcome(s, source=service.source(send.broadcast_id), customer_ids=ids, state="failed",
                                    reason="not_friend")
            send.not_friend = len(ids)
        enqueue(s, name=CHECK, payload={"send_id": send.id}, corp_id=corp_id, queue=QUEUE,
                run_at=utcnow() + dt.timedelta(seconds=CHECK_SECONDS), idempotency_key=f"{CHECK}:{send.id}")
        enqueue(s, name=REMIND, payload={"send_id": send.id}, corp_id=corp_id, queue=QUEUE,
                run_at=utcnow() + REMIND_AFTER, idempotency_key=f"{REMIND}:{send.id}")
        return send.state


@job_handler(SEND, max_attempts=8)
def send(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    send_one(_id(payload, "send_id"))


# --- results ---------------------------------------------------------------------------------------------


def check_one(send_id: int, *, now: dt.datetime | None = None) -> str:
    """Read WeCom's results of one advisor's task into the ledger: sent, not a friend, over the
    allowance; while the advisor has not confirmed, `waiting` (until CONFIRM_DAYS)."""
    from siyu.broadcasts import service
    from siyu.delivery import service as delivery

    now = now or utcnow()
    with session_scope() as s:
        send = s.get(BroadcastSend, send_id)
        if send is None or send.state != "waiting" or not send.msgid:
            return send.state if send else "gone"
        corp_id, msgid, advisor, intent = send.corp_id, send.msgid, send.advisor_userid, send.intent_at
    client = wecom_client(corp_id)
    if client is None:
        return "waiting"
    tasks = [t for t in client.iter_groupmsg_task(msgid=msgid) if t.userid == advisor]
    confirmed = bool(tasks) and all(t.status == 2 for t in tasks)
    rows = list(client.iter_groupmsg_send_result(msgid=msgid, userid=advisor)) if confirmed else []
    with session_scope() as s:
        send = s.get(BroadcastSend, send_id)
        src = service.source(send.broadcast_id)
        by_ext = {ext: cid for cid, ext in service.part_customers(s, send=send)}
        if confirmed:
            outcome: dict[int, list[int]] = {0: [], 1: [], 2: [], 3: []}
            times = {}
            for r in rows:
                cid = by_ext.get(r.external_userid or "")
                if cid is not None:
                    outcome.setdefault(r.status, []).append(cid)
                    times[cid] = r.send_time
            sent_at = max((t for t in times.values() if t), default=None)
            delivery.record_outcome(s, source=src, customer_ids=outcome[1], state="sent",
                                    sent_at=dt.datetime.fromtimestamp(sent_at, dt.UTC) if sent_at else now)
            delivery.record_outcome(s, source=src, customer_ids=outcome[2], state="failed", reason="not_friend")
            delivery.record_outcome(s, source=src, customer_ids=outcome[3], state="failed", reason="over_allowance")
            delivery.record_outcome(s, source=src, customer_ids=outcome[0], state="failed", reason="not_selected")
            send.sent, send.over_allowance = len(outcome[1]), len(outcome[3])
            send.not_friend += len(outcome[2])
            send.unconfirmed, send.state = 0, "done"
        elif now >= (intent or now) + dt.timedelta(days=CONFIRM_DAYS):
            ids = [cid for cid in by_ext.values()]
            delivery.record_outcome(s, source=src, customer_ids=ids, state="failed", reason="not_confirmed")
            send.unconfirmed, send.state = len(ids), "failed"
            send.detail = "the advisor did not confirm the task in WeCom"
        else:
            send.unconfirmed = send.customers - send.not_friend
        service.refresh_status(s, row=s.get(Broadcast, send.broadcast_id))
        return send.state


@job_handler(CHECK, max_attempts=100_000)
def check(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    if check_one(_id(payload, "send_id")) == "waiting":
        raise RetryLater(CHECK_SECONDS, "the advisor has not confirmed yet")


def remind_one(send_id: int) -> bool:
    """Remind an advisor who has not confirmed their task (the corp's application message), once."""
    from siyu.sop.service import settings_for

    with session_scope() as s:
        send = s.get(BroadcastSend, send_id)
        if send is None or send.state != "waiting" or send.reminded_at is not None:
            return False
        row = s.get(Broadcast, send.broadcast_id)
        agent = settings_for(s, corp_id=send.corp_id).app_agent_id
        corp_id, advisor, name, n = send.corp_id, send.advisor_userid, row.name, send.customers - send.not_friend
    if not agent:
        return False
    client = wecom_client(corp_id)
    if client is None:
        return False
    client.send_app_text(agentid=agent, touser=[advisor],
                         content=f"群发任务「{name}」待您确认：共 {n} 位客户。"
                                 "请在企业微信「客户联系 · 群发助手」中确认发送。")
    with session_scope() as s:
        s.get(BroadcastSend, send_id).reminded_at = utcnow()
    return True


@job_handler(REMIND, max_attempts=5)
def remind(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    remind_one(_id(payload, "send_id"))
