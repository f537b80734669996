"""Jobs of customer-asset handover (客户继承), see `siyu.handover`.

`compliance.handover_run` makes a handover's calls: the groups the advisor owns (when "all groups"
was chosen), then every pending customer and group in calls of at most 100, each through
`send_once` with a key kept on the items, so a run repeated after a crash never transfers twice
(a call whose outcome was lost leaves its customers waiting for the result query to decide).
`compliance.handover_poll` asks transfer_result until every customer is settled. The
`customer.transfer_failed` subscriber marks the customer failed and schedules the retry.

The handlers make their WeCom calls holding no transaction and write in short ones of their own."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from sqlalchemy.orm import Session

from siyu.db import session_scope, utcnow
from siyu.errors import NotFound
from siyu.handover import service
from siyu.handover.models import Handover
from siyu.jobs.events import subscribe
from siyu.jobs.registry import JobContext, PermanentFailure, RetryLater, job_handler
from siyu.jobs.service import enqueue

log = logging.getLogger(__name__)

RUN = "compliance.handover_run"
POLL = "compliance.handover_poll"
POLL_SECONDS = 3600.0  # between result queries while customers wait (WeCom takes them over after 24 h)
RETRY_SECONDS = 60.0  # before a failed customer is tried again


def _client(corp_id: int):
    from siyu.wecom.service import client_for_corp

    with session_scope() as s:
        try:
            return client_for_corp(s, corp_id=corp_id)
        except NotFound:
            return None


def _handover_id(payload: dict[str, Any], job: JobContext) -> tuple[int, int]:
    handover_id = payload.get("handover_id")
    if job.corp_id is None or not isinstance(handover_id, int):
        raise PermanentFailure("payload.handover_id and a corp are required")
    return job.corp_id, handover_id


def _load(s: Session, corp_id: int, handover_id: int) -> Handover:
    try:
        return service.get_handover(s, corp_id=corp_id, handover_id=handover_id)
    except NotFound:
        raise PermanentFailure("no such handover") from None


def schedule_poll(session: Session, *, handover: Handover, delay: float | None = None) -> None:
    """Queue the next result query unless one is queued already (one chain of polls per handover)."""
    now = utcnow()
    pending = handover.next_poll_at
    if pending is not None and (pending if pending.tzinfo else pending.replace(tzinfo=dt.UTC)) > now:
        return
    due = now + dt.timedelta(seconds=POLL_SECONDS if delay is None else delay)
    handover.next_poll_at = due
    enqueue(session, name=POLL, payload={"handover_id": handover.id}, corp_id=handover.corp_id, run_at=due,
            idempotency_key=f"{POLL}:{handover.id}:{due.isoformat()}")


def schedule_run(session: Session, *, handover: Handover) -> None:
    """Queue a run for the retries; keyed by the calls made so far, so the callback and the result
    query asking for the same retry queue one run."""
    due = utcnow() + dt.timedelta(seconds=RETRY_SECONDS)
    enqueue(session, name=RUN, payload={"handover_id": handover.id}, corp_id=handover.corp_id, run_at=due,
            idempotency_key=f"{RUN}:{handover.id}:round:{service.calls_made(session, handover=handover)}")


@job_handler(RUN, max_attempts=5)
def run(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    corp_id, handover_id = _handover_id(payload, job)
    client = _client(corp_id)
    if client is None:
        raise RetryLater(600, "the corp's WeCom connection is not set up")
    with session_scope() as s:
        handover = _load(s, corp_id, handover_id)
        kind, handing, all_groups = handover.kind, handover.handover_userid, not handover.groups_resolved
    if kind == "resigned":
        # Only what WeCom holds for a handover is handed over: a read, retried freely.
        listed = {u.external_userid for u in client.iter_unassigned() if u.handover_userid == handing}
        with session_scope() as s:
            service.check_unassigned(s, handover=_load(s, corp_id, handover_id), listed=listed)
    if all_groups:
        chats = [c.chat_id for c in client.iter_group_chats(owner_userids=[handing])]  # a read: retried freely
        with session_scope() as s:
            service.add_groups(s, handover=_load(s, corp_id, handover_id), chat_ids=chats)
    with session_scope() as s:
        batches = service.plan_batches(s, handover=_load(s, corp_id, handover_id))
    for batch in batches:
        _send(client, corp_id, handover_id, kind, handing, batch)
    with session_scope() as s:
        handover = _load(s, corp_id, handover_id)
        service.refresh_status(s, handover=handover)
        if service.waiting_takeovers(s, handover=handover):
            schedule_poll(s, handover=handover)
        if service.needs_run(s, handover=handover):
            schedule_run(s, handover=handover)


def _send(client, corp_id: int, handover_id: int, kind: str, handing: str, batch: service.Batch) -> None:
    from siyu.wecom.service import send_once

    answer: dict[str, Any] = {}
    if batch.kind == "customer":
        if kind == "resigned":
            endpoint = "resigned/transfer_customer"

            def call():
                answer["customers"] = client.resigned_transfer_customer(
                    handover_userid=handing, takeover_userid=batch.takeover_userid, external_userids=batch.targets)
        else:
            endpoint = "transfer_customer"
            with session_scope() as s:  # compliance's outbound guard, at send time (None when held back)
                message = service.message_to_send(s, handover=_load(s, corp_id, handover_id), recipients=batch.targets)

            def call():
                answer["customers"] = client.transfer_customer(
                    handover_userid=handing, takeover_userid=batch.takeover_userid, external_userids=batch.targets,
                    transfer_success_msg=message)
    else:
        endpoint = "groupchat/transfer" if kind == "resigned" else "groupchat/onjob_transfer"
        transfer = client.transfer_group_chats if kind == "resigned" else client.onjob_transfer_group_chats

        def call():
            answer["failed"] = transfer(chat_ids=batch.targets, new_owner=batch.takeover_userid)

    outcome = send_once(corp_id=corp_id, effect_key=batch.key, endpoint=endpoint, call=call)
    with session_scope() as s:
        service.record_batch(
            s, handover=_load(s, corp_id, handover_id), batch=batch,
            outcome_state="sent" if outcome.sent_now else ("unknown" if outcome.state in ("sent", "unknown",
                                                                                          "sending") else "failed"),
            errcode=outcome.errcode, detail=outcome.detail,
            customer_errcodes={r.external_userid: r.errcode for r in answer.get("customers", [])},
            failed_chats={f.chat_id: (f.errcode, f.errmsg) for f in answer.get("failed", [])})


@job_handler(POLL, max_attempts=5)
def poll(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    corp_id, handover_id = _handover_id(payload, job)
    client = _client(corp_id)
    if client is None:
        raise RetryLater(600, "the corp's WeCom connection is not set up")
    with session_scope() as s:
        handover = _load(s, corp_id, handover_id)
        handover.next_poll_at = None  # this is the queued query
        kind, handing = handover.kind, handover.handover_userid
        takeovers = service.waiting_takeovers(s, handover=handover)
    still = 0
    for takeover in takeovers:
        query = client.resigned_transfer_result if kind == "resigned" else client.transfer_result
        asked_at = utcnow()
        statuses = {r.external_userid: (r.status, r.takeover_time)
                    for r in query(handover_userid=handing, takeover_userid=takeover)}
        with session_scope() as s:
            still += service.apply_results(s, handover=_load(s, corp_id, handover_id), takeover_userid=takeover,
                                           statuses=statuses, asked_at=asked_at)
    with session_scope() as s:
        handover = _load(s, corp_id, handover_id)
        if still:
            schedule_poll(s, handover=handover)
        if service.needs_run(s, handover=handover):
            schedule_run(s, handover=handover)


@subscribe("customer.transfer_failed", name="compliance.handover_transfer_failed")
def on_transfer_failed(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    """客户接替失败: the customer is marked failed at once and the retry scheduled."""
    external_userid, userid = payload.get("external_userid"), payload.get("userid")
    if job.corp_id is None or not isinstance(external_userid, str) or not isinstance(userid, str):
        return
    reason = payload.get("fail_reason")
    for handover_id in service.transfer_failed(session, corp_id=job.corp_id, external_userid=external_userid,
                                               takeover_userid=userid,
                                               fail_reason=reason if isinstance(reason, str) else ""):
        handover = service.get_handover(session, corp_id=job.corp_id, handover_id=handover_id)
        if service.needs_run(session, handover=handover):
            schedule_run(session, handover=handover)
