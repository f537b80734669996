"""Console pages of red-line moderation and group health (群红线, 社群健康度).

- `/groups/moderation`: the red-line hits of the groups the reader may see (an advisor: the groups
  they own), with the evidence, the suggested action and repeat offenders; the owner (or operations,
  compliance, an administrator) records what was done.
- `/groups/moderation/terms`: the red-line list by category; operations, compliance and
  administrators add, deactivate and bring back terms, import and export CSV/XLSX.
- `/groups/health`: dying groups and group lifetime per positioning.

Declared before `/groups/{group_id}` (views.py includes this router first). Thin: parse, call the service."""

from __future__ import annotations

from fastapi import APIRouter, Depends, File, Form, Path, Query, Request, UploadFile
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from siyu.communities import health, moderation, service
from siyu.console.downloads import file_response
from siyu.console.forms import FieldErrors
from siyu.console.templating import render
from siyu.console.uploads import uploaded_file
from siyu.db import get_session
from siyu.errors import SiyuError
from siyu.tenancy.deps import client_ip, require_roles
from siyu.tenancy.principal import Principal

router = APIRouter(include_in_schema=False)

readers = require_roles("administrator", "operations", "advisor", "compliance", "auditor")
term_readers = require_roles("administrator", "operations", "compliance", "auditor")
editors = require_roles("administrator", "operations", "compliance")
handlers = require_roles("administrator", "operations", "advisor", "compliance")
MAX_ID = 2**63 - 1
MAX_UPLOAD = 5 * 1024 * 1024
PAGE = "/groups/moderation"
TERMS = PAGE + "/terms"


def _labels() -> dict:
    return {"finding_labels": moderation.FINDING_CATEGORIES, "term_labels": moderation.TERM_CATEGORIES,
            "statuses": moderation.STATUSES, "actions": moderation.ACTIONS,
            "severity_labels": moderation.SEVERITY_LABELS, "positionings": service.POSITIONINGS,
            "reasons": health.REASONS, "dying_score": health.DYING_SCORE}


def _hits_page(request: Request, session: Session, principal: Principal, *, status: str = "open", category: str = "",
               status_code: int = 200, **extra) -> Response:
    errors = extra.pop("errors", None) or FieldErrors()
    try:
        hits = moderation.list_hits(session, principal=principal, status=status or None, category=category or None)
    except SiyuError as exc:
        errors.add(request, exc, "status")
        hits, status_code = [], exc.status_code
    context = {"hits": hits, "counts": moderation.counts(session, principal=principal),
               "offenders": moderation.repeat_offenders(session, principal=principal),
               "filters": {"status": status, "category": category}, "errors": errors,
               "may_edit_terms": principal.has_role(*moderation.EDITORS), **_labels()}
    context.update(extra)
    return render(request, "communities/moderation.html", context, status_code=status_code)


@router.get(PAGE)
def moderation_page(request: Request, status: str = Query("open", max_length=12),
                    category: str = Query("", max_length=30), principal: Principal = Depends(readers),
                    session: Session = Depends(get_session)) -> Response:
    return _hits_page(request, session, principal, status=status, category=category)


@router.post(PAGE + "/hits/{hit_id}")
def moderation_handle(request: Request, hit_id: int = Path(ge=1, le=MAX_ID), status: str = Form("", max_length=12),
                      note: str = Form("", max_length=2000), principal: Principal = Depends(handlers),
                      session: Session = Depends(get_session)) -> Response:
    try:
        with session.begin_nested():
            moderation.handle_hit(session, principal=principal, hit_id=hit_id, status=status, note=note,
                                  ip=client_ip(request))
    except SiyuError as exc:
        errors = FieldErrors.of(request, exc, "status")
        return _hits_page(request, session, principal, status_code=exc.status_code, errors=errors,
                          failed_hit=hit_id, form={"status": status, "note": note})
    return RedirectResponse(PAGE + "?handled=1", status_code=303)


# --- the red-line list ------------------------------------------------------------------------------------------


def _terms_page(request: Request, session: Session, principal: Principal, *, category: str = "",
                status_code: int = 200, **extra) -> Response:
    category = category if category in moderation.TERM_CATEGORIES else ""
    terms = moderation.list_terms(session, corp_id=principal.corp_id, category=category or None)
    by_category: dict[str, list] = {c: [] for c in moderation.TERM_CATEGORIES}
    for t in terms:
        by_category.setdefault(t.category, []).append(t)
    context = {"by_category": {c: ts for c, ts in by_category.items() if ts}, "category": category, "total": len(terms),
               "can_edit": principal.has_role(*moderation.EDITORS), "form": {}, "errors": FieldErrors(),
               "import_errors": None, "imported": None, "test": None, "test_errors": None, **_labels()}
    context.update(extra)
    return render(request, "communities/moderation_terms.html", context, status_code=status_code)


@router.get(TERMS)
def terms_page(request: Request, category: str = Query("", max_length=30), principal: Principal = Depends(term_readers),
               session: Session = Depends(get_session)) -> Response:
    return _terms_page(request, session, principal, category=category)


@router.post(TERMS)
def term_add(request: Request, category: str = Form("", max_length=30), phrase: str = Form("", max_length=1000),
             severity: str = Form("review", max_length=10), note: str = Form("", max_length=2000),
             principal: Principal = Depends(editors), session: Session = Depends(get_session)) -> Response:
    try:
        with session.begin_nested():
            moderation.add_term(session, principal=principal, category=category, phrase=phrase, severity=severity,
                                note=note)
    except SiyuError as exc:
        return _terms_page(request, session, principal, status_code=exc.status_code,
                           form={"category": category, "phrase": phrase, "severity": severity, "note": note},
                           errors=FieldErrors.of(request, exc))
    return RedirectResponse(TERMS + "?saved=1", status_code=303)


@router.post(TERMS + "/test")
def terms_test(request: Request, text: str = Form("", max_length=20000), principal: Principal = Depends(term_readers),
               session: Session = Depends(get_session)) -> Response:
    """Test a text against the list as a member's message: the red lines found, with their spans."""
    try:
        severity, findings = moderation.try_text(session, corp_id=principal.corp_id, text=text)
    except SiyuError as exc:
        return _terms_page(request, session, principal, status_code=exc.status_code, test={"text": text},
                           test_errors=FieldErrors.of(request, exc, "text"))
    return _terms_page(request, session, principal, test={
        "text": text, "severity": severity,
        "findings": [{**f.as_dict(), "match": text[f.start:f.end]} for f in findings]})


@router.post(TERMS + "/{term_id}/active")
def term_active(term_id: int = Path(ge=1, le=MAX_ID), active: str = Form("", max_length=5),
                principal: Principal = Depends(editors), session: Session = Depends(get_session)) -> Response:
    moderation.set_term_active(session, principal=principal, term_id=term_id, active=active == "1")
    return RedirectResponse(TERMS + "?saved=1", status_code=303)


@router.post(TERMS + "/import")
def terms_import(request: Request, file: UploadFile | None = File(None), principal: Principal = Depends(editors),
                 session: Session = Depends(get_session)) -> Response:
    try:
        with uploaded_file(file, max_bytes=MAX_UPLOAD) as (path, filename), session.begin_nested():
            result = moderation.import_terms(session, principal=principal, path=path, filename=filename)
    except SiyuError as exc:
        return _terms_page(request, session, principal, import_errors=FieldErrors.of(request, exc, "file"),
                           status_code=exc.status_code)
    return _terms_page(request, session, principal, imported=result)


@router.get(TERMS + "/export/{fmt}")
def terms_export(fmt: str = Path(pattern="^(csv|xlsx)$"), principal: Principal = Depends(editors),
                 session: Session = Depends(get_session)):
    return file_response(lambda out: moderation.export_terms(session, principal=principal, fmt=fmt, out=out), fmt,
                         "red-line-list")


# --- health overview --------------------------------------------------------------------------------------------


@router.get("/groups/health")
def health_page(request: Request, principal: Principal = Depends(readers),
                session: Session = Depends(get_session)) -> Response:
    ids = service.visible_group_ids(session, principal=principal)
    live = service.visible_group_ids(session, principal=principal, include_dismissed=False)
    latest = health.latest(session, group_ids=live)
    dying_ids = [gid for gid, row in latest.items() if row.dying]
    dying = service.list_groups(session, principal=principal, limit=service.MAX_PAGE_SIZE,
                                filters=service.GroupFilters(ids=dying_ids)).rows if dying_ids else []
    dying.sort(key=lambda g: g.health_score or 0)
    scores = [row.score for row in latest.values()]
    return render(request, "communities/health.html", {
        "dying": dying, "latest": latest, "scored": len(scores), "total": len(live),
        "average": round(sum(scores) / len(scores)) if scores else None,
        "lifetimes": health.lifetimes(session, corp_id=principal.corp_id, group_ids=ids), **_labels()})
