"""Jobs of leads (线索): parse an uploaded lead file into staging rows, commit a list, and create a
lead's personal contact way at WeCom. Registered through `siyu.acquisition.jobs`."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from siyu.acquisition import leads
from siyu.db import session_scope, utcnow
from siyu.errors import NotFound
from siyu.jobs.registry import JobContext, PermanentFailure, RetryLater, job_handler
from siyu.wecom import service as wecom

BUSY = (45009, 45033, -1)  # answers that left nothing at WeCom


def _list_id(payload: dict[str, Any]) -> int:
    list_id = payload.get("list_id")
    if not isinstance(list_id, int):
        raise PermanentFailure("payload.list_id must be an integer")
    return list_id


@job_handler("acquisition.parse_lead_list", max_attempts=3)
def parse_lead_list(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    """Stage an uploaded lead file, a chunk per transaction so that the preview page shows the
    progress; the handler's own session stays unused (on SQLite it would wait for those)."""
    if job.corp_id is None:
        raise PermanentFailure("the job has no corp")
    leads.parse_list(session_scope, corp_id=job.corp_id, list_id=_list_id(payload))


@job_handler("acquisition.commit_lead_list", max_attempts=3)
def commit_lead_list(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    """Import the list's good rows as leads in this one transaction: all of them or none."""
    if job.corp_id is None:
        raise PermanentFailure("the job has no corp")
    leads.commit_list(session, corp_id=job.corp_id, list_id=_list_id(payload))


@job_handler("acquisition.lead_code", max_attempts=20)
def lead_code(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    """The lead's personal contact way (add_contact_way, its advisor only, the lead's state), once
    per lead under the effect key lead_contact_way:{id}."""
    from siyu.acquisition.models import Lead
    from siyu.tenancy.models import Staff

    lead_id, corp_id = payload.get("lead_id"), job.corp_id
    if corp_id is None or not isinstance(lead_id, int):
        raise PermanentFailure("the job needs a corp and payload.lead_id")
    with session_scope() as s:
        lead = s.get(Lead, lead_id)
        if lead is None or lead.corp_id != corp_id or lead.code_status != "pending":
            return
        staff = s.get(Staff, lead.advisor_staff_id) if lead.advisor_staff_id else None
        userid, state = (staff.wecom_userid if staff else None), lead.state
        try:
            client = wecom.client_for_corp(s, corp_id=corp_id) if userid else None
        except NotFound:
            client = None
        if client is not None:
            claim = wecom.claim_effect(s, corp_id=corp_id, effect_key=f"lead_contact_way:{lead_id}",
                                       endpoint="add_contact_way")
    lead = session.get(Lead, lead_id)
    if client is None:
        lead.code_status = "failed"
        return
    made = []
    outcome = wecom.call_claimed(claim, lambda: made.append(client.add_contact_way(
        type=1, scene=2, user=[userid], state=state, remark="lead")), record_in=session)
    if outcome.state == "failed" and outcome.errcode in BUSY:
        raise RetryLater(2.0, f"WeCom busy ({outcome.errcode})")
    lead = session.get(Lead, lead_id)
    if made:
        lead.code_status, lead.config_id, lead.qr_url = "active", made[0].config_id, made[0].qr_code
    else:
        lead.code_status = "failed"
    lead.updated_at = utcnow()
