"""Console page 会话存档告警 (chat-archive alerts): the alerts raised by advisors' archived messages,
filters, counts by category, an alert's evidence, and assigning, resolving and false-positive marking.

Compliance officers and administrators work alerts; auditors read them. The messages' text (the
evidence excerpt and the highlighted message) is shown to compliance officers only. Thin: parse,
check the role, call `compliance.archive`. Mounted by `compliance.views.router`."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from siyu.compliance import archive
from siyu.compliance.schemas import CATEGORIES, DETECTOR_CATEGORIES
from siyu.console.forms import FieldErrors
from siyu.console.i18n import N_, translations
from siyu.console.templating import render, request_locale
from siyu.db import get_session
from siyu.errors import InvalidInput, SiyuError
from siyu.tenancy.deps import require_roles
from siyu.tenancy.principal import Principal

router = APIRouter(include_in_schema=False)

workers = require_roles(*archive.WORKER_ROLES)
readers = require_roles(*archive.READER_ROLES)
PAGE = "/compliance/alerts"
ALERT_ID = Path(ge=1, le=2**63 - 1)

CATEGORY_LABELS = {**CATEGORIES, **DETECTOR_CATEGORIES}
STATUS_LABELS = {"open": N_("Open"), "resolved": N_("Resolved"), "false_positive": N_("False positive")}
SEVERITY_LABELS = {"block": N_("Block"), "review": N_("Review")}


def _date(value: str | None, field: str) -> dt.date | None:
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise InvalidInput("not a date (YYYY-MM-DD)", field=field) from None


def _labels() -> dict:
    return {"category_labels": CATEGORY_LABELS, "status_labels": STATUS_LABELS, "severity_labels": SEVERITY_LABELS}


@router.get(PAGE)
def alerts_page(
    request: Request,
    status: str | None = Query(None, max_length=20),
    severity: str | None = Query(None, max_length=20),
    advisor: str | None = Query(None, max_length=64),
    category: str | None = Query(None, max_length=32),
    since: str | None = Query(None, max_length=10),
    until: str | None = Query(None, max_length=10),
    principal: Principal = Depends(readers),
    session: Session = Depends(get_session),
):
    return _alerts(request, session, principal, status=status, severity=severity, advisor=advisor,
                   category=category, since=since, until=until)


def _alerts(request: Request, session: Session, principal: Principal, *, status: str | None = None,
            severity: str | None = None, advisor: str | None = None, category: str | None = None,
            since: str | None = None, until: str | None = None, status_code: int = 200,
            page_errors: FieldErrors | None = None) -> Response:
    errors = FieldErrors()
    form = {"status": status or "", "severity": severity or "", "advisor": advisor or "", "category": category or "",
            "since": since or "", "until": until or ""}
    try:
        filters = archive.check_filter(status=status, severity=severity, advisor=advisor, category=category,
                                       since=_date(since, "since"), until=_date(until, "until"))
    except SiyuError as exc:
        errors.add(request, exc, "form")
        filters = archive.AlertFilter()
    corp_id = principal.corp_id
    alerts = archive.list_alerts(session, corp_id=corp_id, filters=filters)
    by_category = archive.counts_by_category(session, corp_id=corp_id, filters=filters)
    gettext = translations(request_locale(request)).gettext
    chart = {
        "key": "categories", "title": gettext("Alerts by category"), "kind": "bar",
        "x": [CATEGORY_LABELS.get(c, c) for c in by_category],
        "series": [{"name": gettext("Alerts"), "values": list(by_category.values())}],
    } if by_category else None
    context = {
        "alerts": alerts,
        "form": form,
        "filter_errors": errors,
        "statuses": archive.STATUSES,
        "severities": archive.SEVERITIES,
        "categories": list(CATEGORY_LABELS),
        "advisors": archive.advisors(session, corp_id=corp_id),
        "status_counts": archive.counts_by_status(session, corp_id=corp_id),
        "by_category": by_category,
        "chart": chart,
        "false_positives": archive.false_positive_counts(session, corp_id=corp_id),
        "consents": archive.consent_count(session, corp_id=corp_id),
        "can_work": principal.has_role(*archive.WORKER_ROLES),
        "sees_text": principal.has_role(*archive.EVIDENCE_ROLES),
        "notice": request.query_params.get("notice", ""),
        "page_errors": page_errors or {},
        **_labels(),
    }
    return render(request, "compliance/alerts.html", context, status_code=422 if errors else status_code)


def _segments(text: str, findings: list[dict]) -> list[dict]:
    """The message cut into plain and highlighted pieces (overlapping findings merged into the first)."""
    out, pos = [], 0
    for f in sorted(findings, key=lambda f: (f["start"], -f["end"])):
        start, end = max(f["start"], pos), min(f["end"], len(text))
        if end <= start:
            continue
        if start > pos:
            out.append({"text": text[pos:start]})
        out.append({"text": text[start:end], "finding": f})
        pos = end
    if pos < len(text):
        out.append({"text": text[pos:]})
    return out


def _detail(request: Request, session: Session, principal: Principal, alert_id: int, *, status_code: int = 200,
            **extra) -> Response:
    alert = archive.get_alert(session, corp_id=principal.corp_id, alert_id=alert_id)
    message = archive.alert_message(session, alert=alert)
    sees_text = principal.has_role(*archive.EVIDENCE_ROLES)
    consent = archive.consents(session, corp_id=principal.corp_id,
                               external_userids=[alert.customer_userid] if alert.customer_userid else [])
    from siyu.compliance.wording_views import alert_is_labelled

    staff = {s.id: s for s in archive.assignable_staff(session, corp_id=principal.corp_id)}
    context = {
        "alert": alert,
        "message": message,
        "segments": _segments(message.text, alert.findings) if sees_text else [],
        "sees_text": sees_text,
        "can_work": principal.has_role(*archive.WORKER_ROLES),
        "consent": consent.get(alert.customer_userid),
        "assignable": list(staff.values()),
        "assignee": staff.get(alert.assignee_staff_id) if alert.assignee_staff_id else None,
        "labelled": alert_is_labelled(session, corp_id=principal.corp_id, alert_id=alert.id),
        **_labels(),
    }
    context.update(extra)
    return render(request, "compliance/alert_detail.html", context, status_code=status_code)


@router.get(PAGE + "/{alert_id}")
def alert_detail(request: Request, alert_id: int = ALERT_ID, principal: Principal = Depends(readers),
                 session: Session = Depends(get_session)):
    return _detail(request, session, principal, alert_id)


def _act(request: Request, session: Session, principal: Principal, alert_id: int, action, field: str) -> Response:
    try:
        action()
    except SiyuError as exc:
        errors = FieldErrors.of(request, exc, field)
        if exc.field == "alert" and exc.status_code == 404:
            raise
        return _detail(request, session, principal, alert_id, action_errors=errors, status_code=exc.status_code)
    return RedirectResponse(f"{PAGE}/{alert_id}", status_code=303)


@router.post(PAGE + "/{alert_id}/assign")
def alert_assign(request: Request, alert_id: int = ALERT_ID, assignee: str = Form("", max_length=20),
                 principal: Principal = Depends(workers), session: Session = Depends(get_session)):
    def go():
        staff_id = None
        if assignee.strip():
            if not assignee.strip().isdigit():
                raise InvalidInput("choose a compliance officer or an administrator of this corp", field="assignee")
            staff_id = int(assignee)
        archive.assign_alert(session, corp_id=principal.corp_id, actor=principal, alert_id=alert_id,
                             assignee_staff_id=staff_id)
    return _act(request, session, principal, alert_id, go, "assignee")


@router.post(PAGE + "/{alert_id}/resolve")
def alert_resolve(request: Request, alert_id: int = ALERT_ID, note: str = Form("", max_length=2000),
                  principal: Principal = Depends(workers), session: Session = Depends(get_session)):
    return _act(request, session, principal, alert_id,
                lambda: archive.resolve_alert(session, corp_id=principal.corp_id, actor=principal, alert_id=alert_id,
                                              note=note), "note")


@router.post(PAGE + "/{alert_id}/false-positive")
def alert_false_positive(request: Request, alert_id: int = ALERT_ID, note: str = Form("", max_length=2000),
                         principal: Principal = Depends(workers), session: Session = Depends(get_session)):
    return _act(request, session, principal, alert_id,
                lambda: archive.mark_false_positive(session, corp_id=principal.corp_id, actor=principal,
                                                    alert_id=alert_id, note=note), "note")


@router.post(PAGE + "/phrases/retire")
def phrase_retire(request: Request, phrase: str = Form("", max_length=100), principal: Principal = Depends(workers),
                  session: Session = Depends(get_session)):
    try:
        archive.retire_phrase(session, corp_id=principal.corp_id, actor=principal, phrase=phrase)
    except SiyuError as exc:
        errors = FieldErrors.of(request, exc, "phrase")
        return _alerts(request, session, principal, page_errors=errors, status_code=exc.status_code)
    return RedirectResponse(f"{PAGE}?notice=retired#false-positives", status_code=303)
