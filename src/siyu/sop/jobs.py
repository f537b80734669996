"""The SOP jobs: planning, the owners' reminders, the sends and their delivery results.

- `sop.plan` (every ten minutes, and when a calendar changes) plans the coming slot times of every
  corp into runs and per-owner sends (`service.plan`), each with a `sop.notify` job ahead of its
  time and a `sop.send` job at its time whose deadline is the end of the confirmation window.
- `sop.notify` gives the owner their task: a WeCom application message (`message/send`) naming the
  slot, its time and the groups, when the corp set its application's agent id.
- `sop.send` hands the slot's approved text to WeCom (`add_msg_template`, chat_type=group, the owner
  as sender, the owner's groups of the set as chat_id_list; a Moments slot: `add_moment_task`). It
  records its intent (state `calling`, with the exact text) in a committed transaction BEFORE the
  call, and the msgid after it. A send found `calling` (its job killed mid-send, or the answer lost)
  is reconciled with `get_groupmsg_list_v2` — the owner's messages since the intent with the same
  text — and called again only when WeCom has none: a slot never goes out twice.
- `sop.check` reads the results (`get_groupmsg_task`, then `get_groupmsg_send_result` per owner)
  every `check_seconds` until the owner confirmed or the confirmation window passed.
- Customer SOP: `customer.added` enrols the new customer in the matching journeys; `sop.step_send`
  sends one step one-to-one (the advisor as sender) under the same intent-then-call rule.

No job holds a database transaction during a WeCom call."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.db import session_scope, utcnow
from siyu.delivery import service as delivery
from siyu.errors import NotFound
from siyu.jobs.events import subscribe
from siyu.jobs.registry import DeadlinePassed, JobContext, PermanentFailure, RetryLater, builtin_schedule, job_handler
from siyu.jobs.service import enqueue, enqueue_many
from siyu.sop.content import MOMENTS_KIND, SLOT, SLOT_KIND, STEP
from siyu.sop.models import (
    Channel,
    SendState,
    SopJourney,
    SopJourneySend,
    SopRun,
    SopSend,
    SopSlot,
)

log = logging.getLogger(__name__)

PLAN, NOTIFY, SEND, CHECK = "sop.plan", "sop.notify", "sop.send", "sop.check"
STEP_SEND, STEP_CHECK = "sop.step_send", "sop.step_check"
QUEUE = "sop"
RECONCILE_SLACK = 120  # seconds either side of the intent when looking for what WeCom made


def _corp_id(job: JobContext) -> int:
    if job.corp_id is None:
        raise PermanentFailure("an SOP job without a corp")
    return job.corp_id


def _id(payload: dict[str, Any], key: str) -> int:
    value = payload.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 2**63:
        raise PermanentFailure(f"payload.{key} is missing")
    return value


def wecom_client(corp_id: int):
    from siyu.wecom.service import client_for_corp

    with session_scope() as s:
        try:
            return client_for_corp(s, corp_id=corp_id)
        except NotFound:
            return None


# --- planning ---------------------------------------------------------------------------------------------------


def enqueue_send_jobs(session: Session, *, corp_id: int, sends: list[SopSend]) -> None:
    """Each new send's reminder (ahead of its time) and send job (at its time, with the confirmation
    window as deadline), in the caller's transaction."""
    from siyu.sop.service import settings_for

    cfg = settings_for(session, corp_id=corp_id)
    runs = {r.id: r for r in session.scalars(select(SopRun).where(SopRun.id.in_({s.run_id for s in sends})))}
    now = utcnow()
    jobs = []
    for send in sends:
        due = runs[send.run_id].due_at
        deadline = due + dt.timedelta(minutes=cfg.confirm_window_minutes)
        if send.owner_userid:
            jobs.append({"name": NOTIFY, "payload": {"send_id": send.id}, "corp_id": corp_id, "queue": QUEUE,
                         "run_at": max(now, due - dt.timedelta(minutes=cfg.notice_lead_minutes)),
                         "deadline_at": due, "idempotency_key": f"{NOTIFY}:{send.id}"})
        jobs.append({"name": SEND, "payload": {"send_id": send.id}, "corp_id": corp_id, "queue": QUEUE,
                     "run_at": due, "deadline_at": deadline, "idempotency_key": f"{SEND}:{send.id}",
                     "priority": -5})
    enqueue_many(session, jobs, returning=False)


@job_handler(PLAN, max_attempts=5)
def plan_corp(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    """Plan the coming slot times of one corp (payload corp_id via the job), or of every corp."""
    from siyu.communities.models import GroupSet
    from siyu.sop.service import PLAN_HORIZON, plan

    now = utcnow()
    corp_ids = [job.corp_id] if job.corp_id is not None else list(session.scalars(
        select(GroupSet.corp_id).distinct()))
    for corp_id in corp_ids:
        result = plan(session, corp_id=corp_id, start=now, end=now + PLAN_HORIZON)
        if result.runs or result.sends:
            log.info("SOP of corp %s planned: %d slot times, %d sends", corp_id, result.runs, result.sends)


builtin_schedule("sop.plan", cron="*/10 * * * *", name=PLAN)


def request_plan(session: Session, *, corp_id: int) -> None:
    """Plan the corp again now (after a calendar changed)."""
    enqueue(session, name=PLAN, corp_id=corp_id, queue=QUEUE)


# --- the owner's reminder ---------------------------------------------------------------------------------------


@job_handler(NOTIFY, max_attempts=5)
def notify_owner(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    from siyu.communities.models import GroupSet
    from siyu.sop.service import format_time, local_day, settings_for

    send_id = _id(payload, "send_id")
    with session_scope() as s:
        send = s.get(SopSend, send_id)
        if send is None or send.notified_at is not None or send.state in (SendState.HELD.value,):
            return
        run = s.get(SopRun, send.run_id)
        slot = s.get(SopSlot, run.slot_id)
        set_name = s.scalar(select(GroupSet.name).where(GroupSet.id == run.group_set_id))
        agent = settings_for(s, corp_id=send.corp_id).app_agent_id
        text = (f"【群SOP待发送】{local_day(run.due_at).isoformat()} {format_time(slot.minute_of_day)}"
                f"「{slot.title}」将发往您在「{set_name}」的 {len(send.chat_ids)} 个群。"
                f"届时请在企业微信「群发助手」中确认发送。")
        owner, corp_id = send.owner_userid, send.corp_id
    if agent is None:
        notified = utcnow()  # the task is in Siyu's list; no application to message from
    else:
        client = wecom_client(corp_id)
        if client is None:
            return
        client.send_app_text(agentid=agent, touser=[owner], content=text)
        notified = utcnow()
    with session_scope() as s:
        send = s.get(SopSend, send_id)
        if send is not None and send.notified_at is None:
            send.notified_at = notified


# --- the send ---------------------------------------------------------------------------------------------------


def _hold(s: Session, send: SopSend, run: SopRun, reason: str) -> None:
    from siyu.sop.service import refresh_run

    send.state, send.detail = SendState.HELD.value, reason[:300]
    run.held_reason = reason[:300]
    refresh_run(s, run=run)


def _prepare(s: Session, send: SopSend) -> bool:
    """Planned -> calling: the approved text through the send-time guard, the owner's groups as
    they are now. False when nothing is to be called (held, or no group left)."""
    from siyu.acquisition.content import from_gate
    from siyu.compliance.approval import attachment_titles
    from siyu.compliance.service import content_for_send, prepare_outbound
    from siyu.sop.service import owners_of_set, refresh_run

    run = s.get(SopRun, send.run_id)
    slot = s.get(SopSlot, run.slot_id)
    kind = MOMENTS_KIND if slot.channel == Channel.MOMENTS.value else SLOT_KIND
    sendable = content_for_send(s, corp_id=send.corp_id, kind=kind, owner=f"{SLOT}:{slot.id}")
    if sendable.held:
        _hold(s, send, run, sendable.held_reason or "held")
        return False
    out = prepare_outbound(s, corp_id=send.corp_id, kind=kind, text=sendable.text or "",
                           product_types=sendable.product_types,
                           shown=attachment_titles(list(sendable.attachments)))
    if sendable.held_by(out):
        _hold(s, send, run, out.summary())
        return False
    if slot.channel == Channel.GROUP.value:
        chats = owners_of_set(s, corp_id=send.corp_id, set_id=run.group_set_id,
                              owner=send.owner_userid).get(send.owner_userid, [])
        if not chats:
            send.state, send.detail = SendState.FAILED.value, "the owner has no group of the set left"
            refresh_run(s, run=run)
            return False
        send.chat_ids, send.total_chats = chats, len(chats)
    run.content_version = sendable.version
    send.text, send.attachments = out.text, from_gate(sendable.attachments)
    send.state, send.intent_at = SendState.CALLING.value, utcnow()
    return True


def _find_made(client, send: SopSend, *, chat_type: str, sender: str, taken: set[str]) -> str | None:
    """The msgid of the mass message WeCom made for this send, if it made one: the sender's
    messages since the intent with exactly this text, not already another send's."""
    start = int(send.intent_at.timestamp()) - RECONCILE_SLACK
    end = int(utcnow().timestamp()) + RECONCILE_SLACK
    for msg in client.iter_groupmsg_list(chat_type=chat_type, start_time=start, end_time=end, creator=sender,
                                         filter_type=0):
        if msg.content == send.text and msg.msgid not in taken:
            return msg.msgid
    return None


def send_one(send_id: int) -> str:
    """Hand one send to WeCom, at most once. Returns the send's state afterwards."""
    with session_scope() as s:
        send = s.get(SopSend, send_id)
        if send is None:
            return "gone"
        if send.state != SendState.PLANNED.value and send.state != SendState.CALLING.value:
            return send.state  # done before (a redelivered job)
        reconcile = send.state == SendState.CALLING.value
        if not reconcile and not _prepare(s, send):
            return send.state
        corp_id = send.corp_id
        slot = s.get(SopSlot, s.get(SopRun, send.run_id).slot_id)
        channel, tags = slot.channel, list(slot.moment_tag_ids or [])
        snapshot = SopSend(id=send.id, corp_id=corp_id, run_id=send.run_id, owner_userid=send.owner_userid,
                           chat_ids=list(send.chat_ids), text=send.text, attachments=list(send.attachments or []),
                           intent_at=send.intent_at)
    # The intent is committed: from here a crash leaves `calling`, which the next run reconciles.
    client = wecom_client(corp_id)
    if client is None:
        raise RetryLater(300, "the corp's WeCom connection is not set up")
    if channel == Channel.MOMENTS.value:
        if reconcile:  # WeCom lists no Moments tasks by creator: never post again on a guess
            return _record(send_id, msgid=None, failed="the Moments task's outcome is unknown after a crash; "
                                                       "not posted again — check WeCom")
        jobid = client.add_moment_task(text=snapshot.text, attachments=snapshot.attachments,
                                       sender_userids=snapshot.chat_ids, tag_ids=tags)
        return _record(send_id, msgid=jobid)
    if reconcile:
        with session_scope() as s:
            taken = set(s.scalars(select(SopSend.msgid).where(SopSend.corp_id == corp_id,
                                                              SopSend.owner_userid == snapshot.owner_userid,
                                                              SopSend.msgid.is_not(None), SopSend.id != send_id)))
        found = _find_made(client, snapshot, chat_type="group", sender=snapshot.owner_userid, taken=taken)
        if found is not None:
            log.info("SOP send %s reconciled: WeCom had made %s before the crash", send_id, found)
            return _record(send_id, msgid=found)
    from siyu.wecom.errors import InvalidRequest, InvalidUserId

    try:
        result = client.add_msg_template(chat_type="group", sender=snapshot.owner_userid, chat_ids=snapshot.chat_ids,
                                         text=snapshot.text, attachments=snapshot.attachments)
    except (InvalidUserId, InvalidRequest) as exc:
        return _record(send_id, msgid=None, failed=f"WeCom refused the mass message: {exc}"[:300])
    failed = set(result.fail_list)
    return _record(send_id, msgid=result.msgid, fail_list=failed)


def _record(send_id: int, *, msgid: str | None, failed: str | None = None, fail_list: set[str] = frozenset()) -> str:
    from siyu.sop.service import refresh_run, settings_for

    with session_scope() as s:
        send = s.get(SopSend, send_id)
        run = s.get(SopRun, send.run_id)
        if failed is not None:
            send.state, send.detail = SendState.FAILED.value, failed
        else:
            send.msgid, send.called_at, send.state = msgid, utcnow(), SendState.WAITING.value
            if fail_list:
                send.detail = f"WeCom refused {len(fail_list)} of the groups (dismissed or no longer the owner's)"
                send.total_chats = max(0, len(send.chat_ids) - len(fail_list))
            cfg = settings_for(s, corp_id=send.corp_id)
            enqueue(s, name=CHECK, payload={"send_id": send.id}, corp_id=send.corp_id, queue=QUEUE,
                    run_at=utcnow() + dt.timedelta(seconds=cfg.check_seconds),
                    idempotency_key=f"{CHECK}:{send.id}")
        refresh_run(s, run=run)
        return send.state


@job_handler(SEND, max_attempts=8)
def send_slot(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    state = send_one(_id(payload, "send_id"))
    log.debug("SOP send %s: %s", payload.get("send_id"), state)


# --- delivery results -------------------------------------------------------------------------------------------


def check_one(send_id: int, *, now: dt.datetime | None = None) -> tuple[str, float | None]:
    """Read the send's results; returns its state and, while it waits, seconds until the next read."""
    from siyu.sop.service import refresh_run, settings_for

    with session_scope() as s:
        send = s.get(SopSend, send_id)
        if send is None or send.state != SendState.WAITING.value or not send.msgid:
            return (send.state if send else "gone"), None
        run = s.get(SopRun, send.run_id)
        slot = s.get(SopSlot, run.slot_id)
        cfg = settings_for(s, corp_id=send.corp_id)
        window_end = run.due_at + dt.timedelta(minutes=cfg.confirm_window_minutes)
        corp_id, msgid, owner, channel = send.corp_id, send.msgid, send.owner_userid, slot.channel
        interval = cfg.check_seconds
    client = wecom_client(corp_id)
    if client is None:
        return SendState.WAITING.value, 300
    now = now or utcnow()
    if channel == Channel.MOMENTS.value:
        outcome = client.get_moment_task_result(msgid)
        done = outcome.status == 3
        sent_chats, sent_at = 0, now if done else None
        confirmed = done
    else:
        tasks = [t for t in client.iter_groupmsg_task(msgid=msgid) if t.userid == owner]
        confirmed = bool(tasks) and all(t.status == 2 for t in tasks)
        sent_at = None
        sent_chats = 0
        if confirmed:
            rows = list(client.iter_groupmsg_send_result(msgid=msgid, userid=owner))
            sent_chats = sum(1 for r in rows if r.status == 1)
            times = [r.send_time for r in rows if r.send_time]
            sent_at = dt.datetime.fromtimestamp(max(times), dt.UTC) if times else now
    with session_scope() as s:
        send = s.get(SopSend, send_id)
        run = s.get(SopRun, send.run_id)
        if confirmed:
            send.sent_at, send.sent_chats = sent_at, sent_chats
            full = channel == Channel.MOMENTS.value or sent_chats >= send.total_chats
            send.state = SendState.SENT.value if full else SendState.PARTLY.value
        elif now >= window_end:
            send.state, send.detail = SendState.MISSED.value, "the owner did not confirm within the window"
        refresh_run(s, run=run, now=now)
        state = send.state
    return state, (interval if state == SendState.WAITING.value else None)


@job_handler(CHECK, max_attempts=10_000)
def check_send(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    state, again = check_one(_id(payload, "send_id"))
    if again is not None:
        raise RetryLater(again, "the owner has not confirmed yet")


# --- customer SOP -----------------------------------------------------------------------------------------------


def enqueue_journey_jobs(session: Session, *, corp_id: int, sends: list[SopJourneySend]) -> None:
    enqueue_many(session, [{"name": STEP_SEND, "payload": {"send_id": s.id}, "corp_id": corp_id, "queue": QUEUE,
                            "run_at": s.due_at, "deadline_at": s.due_at + dt.timedelta(days=1),
                            "idempotency_key": f"{STEP_SEND}:{s.id}"} for s in sends], returning=False)


def delivery_source(send_id: int) -> str:
    """The delivery ledger's source of a customer SOP step send."""
    return f"sop_step_send:{send_id}"


def step_send_one(send_id: int) -> str:
    from siyu.compliance.service import content_for_send, prepare_outbound
    from siyu.customers.models import Customer

    with session_scope() as s:
        send = s.get(SopJourneySend, send_id)
        if send is None or send.state not in (SendState.PLANNED.value, SendState.CALLING.value):
            return send.state if send else "gone"
        customer = s.get(Customer, send.customer_id)
        reconcile = send.state == SendState.CALLING.value
        if not reconcile:
            sendable = content_for_send(s, corp_id=send.corp_id, kind=SLOT_KIND, owner=f"{STEP}:{send.step_id}")
            if sendable.held:
                send.state, send.detail = SendState.HELD.value, (sendable.held_reason or "held")[:300]
                return send.state
            out = prepare_outbound(s, corp_id=send.corp_id, kind=SLOT_KIND, text=sendable.text or "",
                                   recipients=[customer.external_userid], product_types=sendable.product_types)
            if sendable.held_by(out) or customer.external_userid in out.refused:
                send.state, send.detail = SendState.HELD.value, out.summary()[:300]
                return send.state
            # The delivery policy (caps across every marketing send, quiet hours, the control group):
            # the ledger row is claimed in the transaction that records the intent.
            got = delivery.claim(s, corp_id=send.corp_id, customer_id=send.customer_id, kind="sop_step",
                                 source=delivery_source(send.id), advisor_userid=send.advisor_userid)
            if got.state == "held":  # quiet hours: the same job again at the next allowed minute
                send.detail = f"quiet hours: released at {got.due_at.isoformat()}"
                enqueue(s, name=STEP_SEND, payload={"send_id": send.id}, corp_id=send.corp_id, queue=QUEUE,
                        run_at=got.due_at, deadline_at=got.due_at + dt.timedelta(days=1),
                        idempotency_key=f"{STEP_SEND}:{send.id}:{int(got.due_at.timestamp())}")
                return send.state
            if got.state != "planned":
                send.state, send.detail = SendState.HELD.value, f"delivery policy: {got.reason or got.state}"
                return send.state
            send.text, send.intent_at, send.state = out.text, utcnow(), SendState.CALLING.value
        corp_id, advisor, ext = send.corp_id, send.advisor_userid, customer.external_userid
        snapshot = SopSend(id=send.id, text=send.text, intent_at=send.intent_at)
    client = wecom_client(corp_id)
    if client is None:
        raise RetryLater(300, "the corp's WeCom connection is not set up")
    msgid = None
    if reconcile:
        with session_scope() as s:
            taken = set(s.scalars(select(SopJourneySend.msgid).where(SopJourneySend.corp_id == corp_id,
                                                                     SopJourneySend.msgid.is_not(None))))
        msgid = _find_made(client, snapshot, chat_type="single", sender=advisor, taken=taken)
    if msgid is None:
        from siyu.wecom.errors import InvalidRequest, InvalidUserId

        try:
            result = client.add_msg_template(chat_type="single", sender=advisor, external_userids=[ext],
                                             text=snapshot.text)
        except (InvalidUserId, InvalidRequest) as exc:
            with session_scope() as s:
                send = s.get(SopJourneySend, send_id)
                send.state, send.detail = SendState.FAILED.value, f"WeCom refused: {exc}"[:300]
                return send.state
        msgid = result.msgid
        if ext in result.fail_list:
            with session_scope() as s:
                send = s.get(SopJourneySend, send_id)
                delivery.record_outcome(s, source=delivery_source(send.id), customer_ids=[send.customer_id],
                                        state="failed", reason="not_friend")
                send.msgid, send.state = msgid, SendState.FAILED.value
                send.detail = "the customer is no longer the advisor's contact"
                return send.state
    with session_scope() as s:
        send = s.get(SopJourneySend, send_id)
        send.msgid, send.state = msgid, SendState.WAITING.value
        enqueue(s, name=STEP_CHECK, payload={"send_id": send.id}, corp_id=corp_id, queue=QUEUE,
                run_at=utcnow() + dt.timedelta(seconds=60), idempotency_key=f"{STEP_CHECK}:{send.id}")
        return send.state


@job_handler(STEP_SEND, max_attempts=8)
def step_send(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    step_send_one(_id(payload, "send_id"))


def step_check_one(send_id: int) -> str:
    from siyu.customers.models import Customer

    with session_scope() as s:
        send = s.get(SopJourneySend, send_id)
        if send is None or send.state != SendState.WAITING.value:
            return send.state if send else "gone"
        ext = s.scalar(select(Customer.external_userid).where(Customer.id == send.customer_id))
        corp_id, msgid, advisor, due = send.corp_id, send.msgid, send.advisor_userid, send.due_at
    client = wecom_client(corp_id)
    if client is None:
        return SendState.WAITING.value
    rows = [r for r in client.iter_groupmsg_send_result(msgid=msgid, userid=advisor) if r.external_userid == ext]
    with session_scope() as s:
        send = s.get(SopJourneySend, send_id)
        src, who = delivery_source(send.id), [send.customer_id]
        if rows and rows[0].status == 1:
            send.state = SendState.SENT.value
            send.sent_at = dt.datetime.fromtimestamp(rows[0].send_time, dt.UTC) if rows[0].send_time else utcnow()
            delivery.record_outcome(s, source=src, customer_ids=who, state="sent", sent_at=send.sent_at)
        elif rows and rows[0].status in (2, 3):
            send.state = SendState.FAILED.value
            send.detail = ("not the advisor's contact any more" if rows[0].status == 2
                           else "the customer already received a mass message in this period")
            delivery.record_outcome(s, source=src, customer_ids=who, state="failed",
                                    reason="not_friend" if rows[0].status == 2 else "over_allowance")
        elif utcnow() >= due + dt.timedelta(days=1):
            send.state, send.detail = SendState.MISSED.value, "the advisor did not confirm within a day"
            delivery.record_outcome(s, source=src, customer_ids=who, state="failed", reason="not_confirmed")
        return send.state


@job_handler(STEP_CHECK, max_attempts=10_000)
def step_check(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    if step_check_one(_id(payload, "send_id")) == SendState.WAITING.value:
        raise RetryLater(60, "the advisor has not confirmed yet")


@subscribe("customer.added", name="sop.enrol_added", together=True)
def enrol_added(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    """A new contact: enrolled in each active "added" journey whose filter they match (the add's
    channel state, the follow's tags, the customer's stage). It only writes to the database, so it
    runs in the add's shared job after the contact is recorded: an add costs no job more for it."""
    from siyu.customers import contacts
    from siyu.sop.service import enrol, matches

    corp_id = _corp_id(job)
    ext, userid = payload.get("external_userid"), payload.get("userid")
    if not isinstance(ext, str) or not isinstance(userid, str):
        raise PermanentFailure("payload.external_userid and userid are required")
    journeys = list(session.scalars(select(SopJourney).where(SopJourney.corp_id == corp_id,
                                                             SopJourney.event == "added",
                                                             SopJourney.active.is_(True))))
    if not journeys:
        return
    customer = contacts.get_by_external_id(session, corp_id=corp_id, external_userid=ext)
    if customer is None:  # the customers subscriber has not stored the contact yet
        if job.attempt >= 10:
            raise DeadlinePassed("the contact never arrived")
        raise RetryLater(5, "the customer record is not there yet")
    at = payload.get("create_time")
    numeric = isinstance(at, (int, str)) and str(at).isdigit()
    event_at = dt.datetime.fromtimestamp(int(at), dt.UTC) if numeric else utcnow()
    tags = payload.get("tags") if isinstance(payload.get("tags"), list) else []
    for journey in journeys:
        if matches(journey, channel=payload.get("state") if isinstance(payload.get("state"), str) else None,
                   tags=tags, stage=getattr(customer, "stage", None)):
            enrol(session, corp_id=corp_id, journey=journey, customer_id=customer.id, advisor_userid=userid,
                  event_at=event_at)

