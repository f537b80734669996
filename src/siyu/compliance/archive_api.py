"""REST API of chat-archive alerts (会话存档告警), mounted under /api/v1/compliance/alerts.

Scopes: `alerts:read` lists and reads alerts (the finding spans, severity, categories, advisor,
customer, time — never the chat's words); `alerts:evidence`, meant for compliance's own systems, adds
the evidence excerpt and the message's text, and each such read is audited; `alerts:write` resolves
an alert or marks it a false positive (audited, as in the console). Another corp's alert is not found."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from siyu.compliance import archive
from siyu.db import get_session
from siyu.tenancy import audit
from siyu.tenancy.deps import API_ERRORS, client_ip, require_scope
from siyu.tenancy.principal import Principal
from siyu.tenancy.service import MAX_ID

router = APIRouter(prefix="/alerts", tags=["chat-archive alerts"])

ERRORS = API_ERRORS
NOT_FOUND = {404: {"description": "no such alert in the key's corp (`field`: alert)"}}
CLOSED = {409: {"description": "the alert is already closed"}}
EVIDENCE_SCOPE = "alerts:evidence"
read_alerts = require_scope("alerts:read")
write_alerts = require_scope("alerts:write")
ALERT_ID = Path(ge=1, le=MAX_ID, description="the alert's id")


class FindingOut(BaseModel):
    category: str
    rule: str | None = None
    start: int
    end: int
    severity: str
    source: str | None = None


class AlertOut(BaseModel):
    id: int
    severity: Literal["block", "review"] | str
    categories: list[str]
    status: Literal["open", "resolved", "false_positive"] | str
    staff_userid: str
    customer_userid: str
    sent_at: dt.datetime
    created_at: dt.datetime
    closed_by: str
    closed_at: dt.datetime | None


class AlertDetailOut(AlertOut):
    findings: list[FindingOut]
    resolution_note: str
    evidence_excerpt: str | None = Field(None, description="only with the scope alerts:evidence")
    message_text: str | None = Field(None, description="only with the scope alerts:evidence")


class AlertList(BaseModel):
    items: list[AlertOut]


class CloseIn(BaseModel):
    note: str = Field("", max_length=archive.NOTE_MAX, pattern=r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$",
                      description="what was done (required to resolve); no control characters")


def _out(alert) -> dict:
    return dict(id=alert.id, severity=alert.severity, categories=list(alert.categories or []), status=alert.status,
                staff_userid=alert.staff_userid, customer_userid=alert.customer_userid, sent_at=alert.sent_at,
                created_at=alert.created_at, closed_by=alert.closed_by, closed_at=alert.closed_at)


def _detail(session: Session, principal: Principal, alert, ip: str | None) -> AlertDetailOut:
    findings = [FindingOut(category=f.get("category", ""), rule=f.get("rule"), start=f.get("start", 0),
                           end=f.get("end", 0), severity=f.get("severity", ""), source=f.get("source"))
                for f in alert.findings or []]
    out = AlertDetailOut(**_out(alert), findings=findings, resolution_note=alert.resolution_note)
    if principal.has_scope(EVIDENCE_SCOPE):
        message = archive.alert_message(session, alert=alert)
        out.evidence_excerpt = alert.excerpt
        out.message_text = message.text if message is not None else None
        audit.record(session, corp_id=principal.corp_id, actor=principal, action="archive_alert.evidence_read",
                     target_type="archive_alert", target_id=alert.id, detail={"via": "api"}, ip=ip)
    return out


@router.get("", response_model=AlertList, responses=ERRORS)
def list_alerts(
    status: Literal["open", "resolved", "false_positive"] | None = Query(None),
    severity: Literal["block", "review"] | None = Query(None),
    advisor: str | None = Query(None, max_length=archive.USERID_MAX, description="the advisor's WeCom userid"),
    since: dt.date | None = Query(None, description="sent on or after this day (Asia/Shanghai)"),
    until: dt.date | None = Query(None, description="sent on or before this day (Asia/Shanghai)"),
    limit: int = Query(100, ge=1, le=500),
    principal: Principal = Depends(read_alerts),
    session: Session = Depends(get_session),
) -> AlertList:
    """The corp's alerts, newest first, filtered (scope `alerts:read`)."""
    filters = archive.check_filter(status=status, severity=severity, advisor=advisor, since=since, until=until)
    return AlertList(items=[AlertOut(**_out(a)) for a in archive.list_alerts(
        session, corp_id=principal.corp_id, filters=filters, limit=limit)])


@router.get("/{alert_id}", response_model=AlertDetailOut, responses={**ERRORS, **NOT_FOUND})
def get_alert(request: Request, alert_id: int = ALERT_ID, principal: Principal = Depends(read_alerts),
              session: Session = Depends(get_session)) -> AlertDetailOut:
    """One alert with its finding spans; the evidence text only with `alerts:evidence` (audited)."""
    alert = archive.get_alert(session, corp_id=principal.corp_id, alert_id=alert_id)
    return _detail(session, principal, alert, client_ip(request))


@router.post("/{alert_id}/resolve", response_model=AlertDetailOut, responses={**ERRORS, **NOT_FOUND, **CLOSED})
def resolve_alert(request: Request, body: CloseIn, alert_id: int = ALERT_ID,
                  principal: Principal = Depends(write_alerts), session: Session = Depends(get_session)
                  ) -> AlertDetailOut:
    """Close the alert as resolved, with a note of what was done (scope `alerts:write`)."""
    alert = archive.resolve_alert(session, corp_id=principal.corp_id, actor=principal, alert_id=alert_id,
                                  note=body.note)
    return _detail(session, principal, alert, client_ip(request))


@router.post("/{alert_id}/false-positive", response_model=AlertDetailOut,
             responses={**ERRORS, **NOT_FOUND, **CLOSED})
def false_positive(request: Request, body: CloseIn, alert_id: int = ALERT_ID,
                   principal: Principal = Depends(write_alerts), session: Session = Depends(get_session)
                   ) -> AlertDetailOut:
    """Close the alert as a false positive; its dictionary findings count against their entries
    (scope `alerts:write`)."""
    alert = archive.mark_false_positive(session, corp_id=principal.corp_id, actor=principal, alert_id=alert_id,
                                        note=body.note)
    return _detail(session, principal, alert, client_ip(request))
