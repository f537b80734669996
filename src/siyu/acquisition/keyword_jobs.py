"""Jobs of keyword replies: answer a customer's 1-on-1 message (`chat.customer_message`) and send a
task's prepared reply when the advisor clicks it; and a channel code's group invitation to a customer
who answers its group keyword. Both send through add_msg_template (chat_type
single, the advisor as sender, that one customer) at most once per effect key; the call holds no
database transaction."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from sqlalchemy.orm import Session

from siyu.acquisition import keywords, welcome
from siyu.db import session_scope
from siyu.errors import NotFound
from siyu.jobs.events import subscribe
from siyu.jobs.registry import JobContext, PermanentFailure, RetryLater, job_handler
from siyu.wecom import service as wecom

log = logging.getLogger(__name__)

BUSY = (45009, 45033, -1)  # answers that left nothing at WeCom
RETRY_SECONDS = 5.0


def _sent_at(payload: dict[str, Any]) -> dt.datetime | None:
    try:
        at = dt.datetime.fromisoformat(str(payload["sent_at"]))
    except (KeyError, ValueError):
        return None
    return at if at.tzinfo else at.replace(tzinfo=dt.UTC)


def _send(client, *, sender: str, customer: str, text: str, attachments) -> None:
    """add_msg_template answers errcode 0 even when it makes no task for the customer: it names
    them in `fail_list` then, and that is a failed send, not a sent one."""
    from siyu.wecom.errors import RecipientFailed

    result = client.add_msg_template(chat_type="single", sender=sender, external_userids=[customer],
                                     text=text or None, attachments=list(attachments))
    if customer in result.fail_list:
        raise RecipientFailed(customer, "externalcontact/add_msg_template")


@subscribe("chat.customer_message", name="acquisition.keyword_reply", queue="wecom", max_attempts=20)
def keyword_reply(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    corp_id, msgid = job.corp_id, payload.get("msgid")
    advisor, customer = payload.get("staff_userid"), payload.get("customer_userid")
    if corp_id is None or not all(isinstance(v, str) and v for v in (msgid, advisor, customer)):
        return
    # One short transaction matches, records the hit and the cooldown and claims the send; the call holds none.
    with session_scope() as s:
        try:
            client = wecom.client_for_corp(s, corp_id=corp_id)
        except NotFound:
            log.warning("no keyword reply for corp %s: its WeCom connection is not set up", corp_id)
            return
        decision = keywords.decide(s, corp_id=corp_id, msgid=msgid, advisor_userid=advisor,
                                   customer_userid=customer, sent_at=_sent_at(payload))
    if decision.outcome != "sending":
        return
    outcome = wecom.call_claimed(decision.claim, lambda: _send(
        client, sender=advisor, customer=customer, text=decision.text, attachments=decision.attachments),
        record_in=session)
    if outcome.state == "failed" and outcome.errcode in BUSY:
        raise RetryLater(RETRY_SECONDS, f"WeCom busy ({outcome.errcode})")
    keywords.record_outcome(session, corp_id=corp_id, msgid=msgid, state=outcome.state)


@subscribe("chat.customer_message", name="acquisition.group_invitation", queue="wecom", max_attempts=20)
def group_invitation(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    """A customer answers their channel code's group keyword: the code's group join way (群活码, its
    QR code) when it hands one out, else the flow's approved group invitation
    (`welcome.decide_invitation`), sent once per message like a keyword reply."""
    corp_id, msgid = job.corp_id, payload.get("msgid")
    advisor, customer = payload.get("staff_userid"), payload.get("customer_userid")
    if corp_id is None or not all(isinstance(v, str) and v for v in (msgid, advisor, customer)):
        return
    with session_scope() as s:
        try:
            client = wecom.client_for_corp(s, corp_id=corp_id)
        except NotFound:
            return
        decision = welcome.decide_invitation(s, corp_id=corp_id, msgid=msgid, advisor_userid=advisor,
                                             customer_userid=customer, sent_at=_sent_at(payload))
    if decision.outcome != "sending":
        return
    outcome = wecom.call_claimed(decision.claim, lambda: _send(
        client, sender=advisor, customer=customer, text=decision.text, attachments=decision.attachments),
        record_in=session)
    if outcome.state == "failed" and outcome.errcode in BUSY:
        raise RetryLater(RETRY_SECONDS, f"WeCom busy ({outcome.errcode})")


@job_handler("acquisition.keyword_task_send", max_attempts=20)
def keyword_task_send(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    task_id, corp_id = payload.get("task_id"), job.corp_id
    if corp_id is None or not isinstance(task_id, int):
        raise PermanentFailure("payload.task_id must be an integer and the job needs a corp")
    with session_scope() as s:
        client = wecom.client_for_corp(s, corp_id=corp_id)
        claimed = keywords.claim_task_send(s, corp_id=corp_id, task_id=task_id)
    if claimed is None:
        return
    values, claim = claimed
    outcome = wecom.call_claimed(claim, lambda: _send(
        client, sender=values["advisor_userid"], customer=values["external_userid"], text=values["text"],
        attachments=values["attachments"]), record_in=session)
    if outcome.state == "failed" and outcome.errcode in BUSY:
        raise RetryLater(RETRY_SECONDS, f"WeCom busy ({outcome.errcode})")
    keywords.finish_task(session, corp_id=corp_id, task_id=task_id, state=outcome.state, detail=outcome.detail)
