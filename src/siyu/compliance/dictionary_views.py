"""Console page 措辞词库 (`/compliance/dictionary`): the compliance officer's wording dictionary.

Entries by category and severity — the corp's own (added, edited, deactivated and brought back here,
each change versioned and audited by `compliance.dictionary`) and the installation's (read here; a
corp overrides one by adding its own entry for the same phrase) —, "test a text" (the findings with
their rule, category, severity and the span highlighted), and import/export as CSV or XLSX
(`compliance.dictionary_io`: a file with a bad row is refused naming row and column, nothing
half-imported). Compliance officers and administrators edit; auditors and operations staff read.

Also 审批要求 (`/compliance/approvals/settings`): per kind of content, whether a version needs a
checker's approval before it is sent (`compliance.content.set_requirements`, audited)."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, Depends, File, Form, Path, Query, Request, UploadFile
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from siyu.compliance import approval, content, dictionary, dictionary_io
from siyu.compliance.schemas import CATEGORIES, DETECTOR_CATEGORIES
from siyu.compliance.seed import seed_dictionary
from siyu.console.downloads import file_response
from siyu.console.forms import FieldErrors
from siyu.console.i18n import N_
from siyu.console.templating import render
from siyu.console.uploads import uploaded_file
from siyu.db import get_session
from siyu.errors import SiyuError
from siyu.tenancy.deps import require_roles
from siyu.tenancy.principal import Principal

router = APIRouter(include_in_schema=False)

EDITORS = ("compliance", "administrator")
READERS = (*EDITORS, "auditor", "operations")
editors = require_roles(*EDITORS)
readers = require_roles(*READERS)
PAGE = "/compliance/dictionary"
SETTINGS = "/compliance/approvals/settings"
ENTRY_ID = Path(ge=1, le=2**63 - 1)
SEVERITIES = ("block", "review", "allow")
SEVERITY_LABELS = {"block": N_("Blocked"), "review": N_("Needs review"), "allow": N_("Allowed")}
MAX_UPLOAD = 5 * 1024 * 1024


@dataclass(frozen=True)
class SeedEntry:
    """An entry of the package seed, shown while the installation's dictionary was never changed."""

    category: str
    phrase: str
    severity: str
    rule: str
    notes: str
    id: None = None
    is_active: bool = True


def _filters(category: str, severity: str, q: str, scope: str) -> dict:
    return {"category": category if category in CATEGORIES else "",
            "severity": severity if severity in SEVERITIES else "", "q": q.strip()[:100],
            "scope": scope if scope in ("corp", "installation") else ""}


def _page(request: Request, session: Session, principal: Principal, *, filters: dict | None = None,
          status_code: int = 200, **extra) -> Response:
    filters = filters or _filters("", "", "", "")
    installation_version, corp_version = dictionary.dictionary_versions(session, corp_id=principal.corp_id)
    entries = []
    for scope, corp_id in (("corp", principal.corp_id), ("installation", None)):
        if filters["scope"] and filters["scope"] != scope:
            continue
        if corp_id is None and not installation_version:  # the package seed is in force, as it is
            listed = [SeedEntry(e.category, e.phrase, e.severity, e.rule, e.notes)
                      for e in seed_dictionary().entries
                      if not filters["category"] or e.category == filters["category"]]
        else:
            listed = dictionary.list_entries(session, corp_id=corp_id, category=filters["category"] or None)
        for e in listed:
            if filters["severity"] and e.severity != filters["severity"]:
                continue
            if filters["q"] and filters["q"] not in e.phrase and filters["q"] not in e.rule:
                continue
            entries.append((scope, e))
    context = {"entries": entries[:1000], "shown_all": len(entries) <= 1000, "filters": filters,
               "categories": CATEGORIES, "finding_labels": {**CATEGORIES, **DETECTOR_CATEGORIES},
               "severities": SEVERITIES, "severity_labels": SEVERITY_LABELS,
               "can_edit": principal.has_role(*EDITORS), "corp_version": corp_version,
               "installation_version": installation_version, "form": {}, "errors": None, "test": None,
               "test_errors": None, "import_errors": None, "imported": None}
    context.update(extra)
    return render(request, "compliance/dictionary.html", context, status_code=status_code)


@router.get(PAGE)
def dictionary_page(request: Request, category: str = Query("", max_length=40),
                    severity: str = Query("", max_length=10), q: str = Query("", max_length=200),
                    scope: str = Query("", max_length=20), principal: Principal = Depends(readers),
                    session: Session = Depends(get_session)):
    return _page(request, session, principal, filters=_filters(category, severity, q, scope))


@router.post(PAGE + "/test")
def dictionary_test(request: Request, text: str = Form("", max_length=20000), principal: Principal = Depends(readers),
                    session: Session = Depends(get_session)):
    """Test a text against the corp's dictionary in force: findings with rule, category, severity, span."""
    try:
        verdict = dictionary_io.try_text(session, corp_id=principal.corp_id, text=text)
    except SiyuError as exc:
        return _page(request, session, principal, test_errors=FieldErrors.of(request, exc, "text"),
                     test={"text": text}, status_code=exc.status_code)
    findings = [f.as_dict() for f in verdict.findings]
    return _page(request, session, principal, test={
        "text": text, "verdict": verdict.verdict, "findings": findings,
        "segments": approval.segments(text, findings)})


@router.post(PAGE + "/import")
def dictionary_import(request: Request, file: UploadFile | None = File(None), principal: Principal = Depends(editors),
                      session: Session = Depends(get_session)):
    try:
        with uploaded_file(file, max_bytes=MAX_UPLOAD) as (path, filename):
            result = dictionary_io.import_entries(session, corp_id=principal.corp_id, actor=principal, path=path,
                                                  filename=filename)
    except SiyuError as exc:
        return _page(request, session, principal, import_errors=FieldErrors.of(request, exc, "file"),
                     status_code=exc.status_code)
    return _page(request, session, principal, imported=result)


@router.get(PAGE + "/export/{fmt}")
def dictionary_export(fmt: str = Path(pattern="^(csv|xlsx)$"), principal: Principal = Depends(editors),
                      session: Session = Depends(get_session)):
    return file_response(lambda out: dictionary_io.export_entries(session, corp_id=principal.corp_id, actor=principal,
                                                                  fmt=fmt, out=out), fmt, "wording-dictionary")


@router.post(PAGE)
def dictionary_add(request: Request, category: str = Form("", max_length=40), phrase: str = Form("", max_length=1000),
                   severity: str = Form("", max_length=10), rule: str = Form("", max_length=5000),
                   notes: str = Form("", max_length=5000), principal: Principal = Depends(editors),
                   session: Session = Depends(get_session)):
    form = {"category": category, "phrase": phrase, "severity": severity, "rule": rule, "notes": notes}
    try:
        dictionary.add_entry(session, corp_id=principal.corp_id, actor=principal, **form)
    except SiyuError as exc:
        return _page(request, session, principal, form=form, errors=FieldErrors.of(request, exc, "phrase"),
                     status_code=exc.status_code)
    return RedirectResponse(PAGE + "?scope=corp&added=1", status_code=303)


@router.post(PAGE + "/{entry_id}")
def dictionary_edit(request: Request, entry_id: int = ENTRY_ID, category: str = Form("", max_length=40),
                    phrase: str = Form("", max_length=1000), severity: str = Form("", max_length=10),
                    rule: str = Form("", max_length=5000), notes: str = Form("", max_length=5000),
                    principal: Principal = Depends(editors), session: Session = Depends(get_session)):
    try:
        dictionary.edit_entry(session, corp_id=principal.corp_id, actor=principal, entry_id=entry_id,
                              category=category, phrase=phrase, severity=severity, rule=rule, notes=notes)
    except SiyuError as exc:
        if exc.status_code == 404:
            raise
        return _page(request, session, principal, errors=FieldErrors.of(request, exc, "phrase"),
                     edit_id=entry_id, status_code=exc.status_code)
    return RedirectResponse(f"{PAGE}?scope=corp#entry-{entry_id}", status_code=303)


@router.post(PAGE + "/{entry_id}/deactivate")
def dictionary_deactivate(entry_id: int = ENTRY_ID, principal: Principal = Depends(editors),
                          session: Session = Depends(get_session)):
    dictionary.deactivate_entry(session, corp_id=principal.corp_id, actor=principal, entry_id=entry_id,
                                reason="console")
    return RedirectResponse(f"{PAGE}?scope=corp#entry-{entry_id}", status_code=303)


@router.post(PAGE + "/{entry_id}/reactivate")
def dictionary_reactivate(entry_id: int = ENTRY_ID, principal: Principal = Depends(editors),
                          session: Session = Depends(get_session)):
    dictionary.reactivate_entry(session, corp_id=principal.corp_id, actor=principal, entry_id=entry_id,
                                reason="console")
    return RedirectResponse(f"{PAGE}?scope=corp#entry-{entry_id}", status_code=303)


# --- which kinds of content need approval ---------------------------------------------------------------------


def _settings(request: Request, session: Session, principal: Principal, *, saved: bool = False,
              errors: FieldErrors | None = None, status_code: int = 200) -> Response:
    return render(request, "compliance/approval_settings.html", {
        "kinds": content.KINDS, "required": content.requirements(session, corp_id=principal.corp_id),
        "can_edit": principal.has_role(*EDITORS), "saved": saved, "errors": errors}, status_code=status_code)


@router.get(SETTINGS)
def approval_settings(request: Request, saved: str = Query("", max_length=3), principal: Principal = Depends(readers),
                      session: Session = Depends(get_session)):
    return _settings(request, session, principal, saved=bool(saved))


@router.post(SETTINGS)
def approval_settings_save(request: Request, required: list[str] = Form([]), principal: Principal = Depends(editors),
                           session: Session = Depends(get_session)):
    try:
        content.set_requirements(session, corp_id=principal.corp_id, actor=principal, required=required)
    except SiyuError as exc:
        return _settings(request, session, principal, errors=FieldErrors.of(request, exc, "required"),
                         status_code=exc.status_code)
    return RedirectResponse(SETTINGS + "?saved=1", status_code=303)
