"""Console page 词库回归测试 (dictionary regression test): the corp's labelled messages, a draft of the
wording dictionary, what the draft would change on the labelled messages (new hits, lost hits, the
figures before and after), publishing or discarding the draft, and the corp's firm-type lexicons.
Also the one-click "add to the labelled set" of a closed chat-archive alert.

Compliance officers and administrators work here; auditors read. Message texts are shown to
compliance officers only (as on the alerts page). Thin: parse, check the role, call
`compliance.labelled`, `compliance.drafts` and `compliance.dictionary`. Mounted by
`compliance.views.router`."""

from __future__ import annotations

from fastapi import APIRouter, Depends, File, Form, Path, Request, UploadFile
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from siyu.compliance import dictionary as wording
from siyu.compliance import drafts, labelled
from siyu.compliance.rules import FIRM_TYPES
from siyu.compliance.schemas import CATEGORIES, DETECTOR_CATEGORIES
from siyu.console.forms import FieldErrors
from siyu.console.i18n import N_
from siyu.console.templating import render
from siyu.db import get_session
from siyu.errors import InvalidInput, SiyuError
from siyu.tenancy.deps import require_roles
from siyu.tenancy.principal import Principal

router = APIRouter(include_in_schema=False)

WORKER_ROLES = ("compliance", "administrator")
READER_ROLES = (*WORKER_ROLES, "auditor")
TEXT_ROLES = ("compliance",)
workers = require_roles(*WORKER_ROLES)
readers = require_roles(*READER_ROLES)
PAGE = "/compliance/wording-tests"
MAX_ID = 2**63 - 1
MAX_UPLOAD = 20 * 1024 * 1024

LEXICON_LABELS = {"bank": N_("Bank lexicon"), "broker": N_("Securities broker lexicon"),
                  "fund": N_("Fund seller lexicon"), "insurance": N_("Insurer lexicon"),
                  "consumer_finance": N_("Consumer-finance lexicon")}
VERDICT_LABELS = {"block": N_("Block"), "review": N_("Review"), "pass": N_("Passes")}
CHANGE_LABELS = {"new_hit": N_("New hit"), "lost_hit": N_("Lost hit"), "severity": N_("Severity or findings changed")}


def _page(request: Request, session: Session, principal: Principal, *, errors: FieldErrors | None = None,
          form: dict | None = None, status_code: int = 200, notice: str = "") -> Response:
    corp_id = principal.corp_id
    lexicons = wording.corp_lexicons(session, corp_id=corp_id)
    context = {
        "counts": labelled.counts(session, corp_id=corp_id),
        "messages": labelled.list_messages(session, corp_id=corp_id, limit=50),
        "edits": drafts.edits(session, corp_id=corp_id),
        "regression": drafts.regression(session, corp_id=corp_id),
        "lexicons": FIRM_TYPES,
        "lexicon_labels": LEXICON_LABELS,
        "lexicons_on": set(FIRM_TYPES if lexicons is None else lexicons),
        "categories": {k: v for k, v in CATEGORIES.items()},
        "category_labels": {**CATEGORIES, **DETECTOR_CATEGORIES, "none": "—"},
        "change_labels": CHANGE_LABELS,
        "verdict_labels": VERDICT_LABELS,
        "severity_labels": {"block": N_("Block"), "review": N_("Review"), "allow": N_("Allow (a disclosure)")},
        "can_work": principal.has_role(*WORKER_ROLES),
        "sees_text": principal.has_role(*TEXT_ROLES),
        "errors": errors or {},
        "form": form or {},
        "notice": notice or request.query_params.get("notice", ""),
    }
    return render(request, "compliance/wording_tests.html", context,
                  status_code=status_code if not errors else max(status_code, 400))


@router.get(PAGE)
def wording_tests(request: Request, principal: Principal = Depends(readers), session: Session = Depends(get_session)):
    return _page(request, session, principal)


def _act(request: Request, session: Session, principal: Principal, action, field: str, notice: str,
         form: dict | None = None) -> Response:
    try:
        with session.begin_nested():
            action()
    except SiyuError as exc:
        return _page(request, session, principal, errors=FieldErrors.of(request, exc, field), form=form,
                     status_code=exc.status_code)
    return RedirectResponse(f"{PAGE}?notice={notice}", status_code=303)


@router.post(PAGE + "/import")
def labelled_import(request: Request, file: UploadFile | None = File(None), principal: Principal = Depends(workers),
                    session: Session = Depends(get_session)):
    def go():
        if file is None or not getattr(file, "filename", None):
            raise InvalidInput("choose a file", field="file")
        raw = file.file.read(MAX_UPLOAD + 1)
        if len(raw) > MAX_UPLOAD:
            raise InvalidInput("the file is larger than 20 MB", field="file")
        labelled.import_lines(session, corp_id=principal.corp_id, actor=principal, lines=raw.splitlines())
    return _act(request, session, principal, go, "file", "imported")


@router.post(PAGE + "/messages/{message_id}/remove")
def labelled_remove(request: Request, message_id: int = Path(ge=1, le=MAX_ID), principal: Principal = Depends(workers),
                    session: Session = Depends(get_session)):
    return _act(request, session, principal, lambda: labelled.remove(
        session, corp_id=principal.corp_id, actor=principal, message_id=message_id), "message", "removed")


@router.post(PAGE + "/draft")
def draft_add(request: Request, action: str = Form("", max_length=10), phrase: str = Form("", max_length=200),
              category: str = Form("", max_length=40), severity: str = Form("", max_length=10),
              rule: str = Form("", max_length=600), principal: Principal = Depends(workers),
              session: Session = Depends(get_session)):
    form = {"action": action, "phrase": phrase, "category": category, "severity": severity, "rule": rule}
    return _act(request, session, principal, lambda: drafts.add_edit(
        session, corp_id=principal.corp_id, actor=principal, action=action, phrase=phrase, category=category,
        severity=severity, rule=rule), "phrase", "draft_added", form=form)


@router.post(PAGE + "/draft/{edit_id}/drop")
def draft_drop(request: Request, edit_id: int = Path(ge=1, le=MAX_ID), principal: Principal = Depends(workers),
               session: Session = Depends(get_session)):
    return _act(request, session, principal, lambda: drafts.drop_edit(session, corp_id=principal.corp_id,
                                                                     edit_id=edit_id), "edit", "draft_dropped")


@router.post(PAGE + "/draft/publish")
def draft_publish(request: Request, principal: Principal = Depends(workers), session: Session = Depends(get_session)):
    return _act(request, session, principal, lambda: drafts.publish(session, corp_id=principal.corp_id,
                                                                   actor=principal), "draft", "published")


@router.post(PAGE + "/draft/discard")
def draft_discard(request: Request, principal: Principal = Depends(workers), session: Session = Depends(get_session)):
    return _act(request, session, principal, lambda: drafts.discard(session, corp_id=principal.corp_id,
                                                                   actor=principal), "draft", "discarded")


@router.post(PAGE + "/lexicons")
def lexicons_set(request: Request, lexicons: list[str] = Form([]), principal: Principal = Depends(workers),
                 session: Session = Depends(get_session)):
    return _act(request, session, principal, lambda: wording.set_lexicons(
        session, corp_id=principal.corp_id, actor=principal, lexicons=lexicons), "lexicons", "lexicons_saved")


@router.post("/compliance/alerts/{alert_id}/label")
def alert_to_labelled(request: Request, alert_id: int = Path(ge=1, le=MAX_ID), principal: Principal = Depends(workers),
                      session: Session = Depends(get_session)):
    """One click on a closed alert: its message joins the corp's labelled set."""
    try:
        with session.begin_nested():
            labelled.add_from_alert(session, corp_id=principal.corp_id, actor=principal, alert_id=alert_id)
    except SiyuError as exc:
        if exc.status_code == 404:
            raise
        from siyu.compliance.archive_views import _detail

        return _detail(request, session, principal, alert_id, action_errors=FieldErrors.of(request, exc, "label"),
                       status_code=exc.status_code)
    return RedirectResponse(f"/compliance/alerts/{alert_id}?labelled=1", status_code=303)


def alert_is_labelled(session: Session, *, corp_id: int, alert_id: int) -> bool:
    return alert_id in labelled.labelled_refs_for_alerts(session, corp_id=corp_id, alert_ids=[alert_id])

