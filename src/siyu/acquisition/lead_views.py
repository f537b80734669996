"""Console pages of leads (线索): upload a lead file, watch it being read, check the preview and
commit it; lead lists with their call script; an advisor's call queue and the lead page (outcome,
phone shown on demand, personal add code); conversion per advisor and per list; masked exports.

Operations staff and administrators import, export and see every lead; an advisor sees and calls
their own. Thin: parse the form, call `siyu.acquisition.leads`, render."""

from __future__ import annotations

import re

from fastapi import APIRouter, Depends, File, Form, Path, Query, Request, UploadFile
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from siyu import pii, tabular
from siyu.acquisition import leads
from siyu.console.downloads import file_response
from siyu.console.forms import FieldErrors
from siyu.console.i18n import N_, translations
from siyu.console.templating import render, request_locale
from siyu.db import get_session
from siyu.edge import upload_route
from siyu.errors import InvalidInput, NotFound, SiyuError
from siyu.tenancy.deps import client_ip, require_roles
from siyu.tenancy.principal import Principal
from siyu.tenancy.service import list_staff

router = APIRouter(include_in_schema=False)

PAGE = "/acquisition/leads"
upload_route(re.escape(PAGE) + "/upload")  # spreadsheets: the larger body limit
MAX_ID = 2**63 - 1
operators = require_roles(*leads.OPERATORS)
callers = require_roles(*leads.OPERATORS, "advisor")

COLUMN_LABELS = {"name": N_("Name"), "phone": N_("Phone"), "segment": N_("Segment"), "advisor": N_("Advisor"),
                 "do_not_call": N_("Do not call"), "file": N_("File")}
LIST_STATUS_LABELS = {
    "uploaded": N_("Waiting to be read"), "parsing": N_("Reading the file"), "parsed": N_("Ready to import"),
    "committing": N_("Importing"), "committed": N_("Imported"), "failed": N_("Could not be read"),
    "discarded": N_("Discarded"),
}
LEAD_STATUS_LABELS = {
    "new": N_("Not called yet"), "retry": N_("No answer: call again"), "reached": N_("Reached: call again"),
    "agreed": N_("Agreed to add"), "refused": N_("Refused"), "unreachable": N_("Unreachable"),
    "no_decision": N_("Reached, no decision"), "wrong_number": N_("Wrong number"), "do_not_call": N_("Do not call"),
    "converted": N_("Added on WeCom"),
}
OUTCOME_LABELS = {
    "reached": N_("Reached"), "agreed": N_("Agreed to add"), "refused": N_("Refused"), "no_answer": N_("No answer"),
    "wrong_number": N_("Wrong number"), "do_not_call": N_("Do not call"),
}
# Row problems as the service words them, translated on the page.
N_("the phone number is missing")
N_("not a mainland mobile number (11 digits starting with 13-19)")
N_("this column is empty")
N_("no active staff member of the corp has this WeCom id, login or name")
N_("write 是 / 否 (yes / no)")
N_("already a lead of an earlier list")
N_("control characters are not allowed")


def _labels() -> dict:
    return {"column_labels": COLUMN_LABELS, "list_status_labels": LIST_STATUS_LABELS,
            "lead_status_labels": LEAD_STATUS_LABELS, "outcome_labels": OUTCOME_LABELS}


def _reason(translate, reason: str) -> str:
    """A row problem in the reader's language ("the same phone as row 12" keeps its number)."""
    if reason.startswith("the same phone as row "):
        return translate(N_("the same phone as row %(row)s")) % {"row": reason.rsplit(" ", 1)[1]}
    if reason.startswith("longer than "):
        return translate(N_("longer than %(n)s characters")) % {"n": reason.split()[2]}
    return translate(reason)


# --- lists -----------------------------------------------------------------------------------------------

def _index(request: Request, session: Session, principal: Principal, *, status_code: int = 200, **extra) -> Response:
    context = {"lists": leads.list_lists(session, corp_id=principal.corp_id), "form": {}, "errors": None,
               "max_mb": leads.MAX_UPLOAD_BYTES // (1024 * 1024), **_labels()}
    context.update(extra)
    return render(request, "acquisition/leads.html", context, status_code=status_code)


@router.get(PAGE)
def leads_page(request: Request, principal: Principal = Depends(callers), session: Session = Depends(get_session)):
    """Operators: the lead lists and the upload; an advisor: their call queue."""
    if not principal.has_role(*leads.OPERATORS):
        return RedirectResponse(PAGE + "/queue", status_code=303)
    return _index(request, session, principal)


@router.post(PAGE + "/upload")
def lead_upload(
    request: Request,
    name: str = Form("", max_length=1000),
    script: str = Form("", max_length=20000),
    file: UploadFile | None = File(None),
    principal: Principal = Depends(operators),
    session: Session = Depends(get_session),
):
    form = {"name": name, "script": script}
    try:
        if file is None or not getattr(file, "filename", None):
            raise InvalidInput("choose a file", field="file")
        with session.begin_nested():
            lead_list = leads.create_list(session, corp_id=principal.corp_id, actor=principal, name=name,
                                          file_name=file.filename or "", stream=file.file, script=script)
    except SiyuError as exc:
        return _index(request, session, principal, form=form, errors=FieldErrors.of(request, exc, "file"),
                      status_code=exc.status_code)
    return RedirectResponse(f"{PAGE}/lists/{lead_list.id}", status_code=303)


def _list_context(request: Request, session: Session, principal: Principal, list_id: int, **extra) -> dict:
    translate = translations(request_locale(request)).gettext
    preview = leads.preview(session, corp_id=principal.corp_id, list_id=list_id)
    for row in preview.bad_rows:
        for e in row["errors"]:
            e["text"] = _reason(translate, e["reason"])
    lead_list = preview.lead_list
    context = {"l": lead_list, "p": preview, "errors": None, "script_errors": None, **_labels(),
               "mask_name": pii.mask_name, "mask_phone": pii.mask_phone,
               "busy": lead_list.status in ("uploaded", "parsing", "committing"),
               "percent": min(100, round(100 * lead_list.rows_parsed / lead_list.estimated_rows))
               if lead_list.estimated_rows else 0}
    if lead_list.status == "committed":
        context["leads"] = leads.list_leads(session, principal=principal,
                                            filters=leads.LeadFilters(list_id=lead_list.id), limit=50)
        context["staff_names"] = {s.id: s.name for s in list_staff(session, corp_id=principal.corp_id)}
    context.update(extra)
    return context


@router.get(PAGE + "/lists/{list_id}")
def list_page(request: Request, list_id: int = Path(ge=1, le=MAX_ID), principal: Principal = Depends(operators),
              session: Session = Depends(get_session)):
    return render(request, "acquisition/lead_list.html", _list_context(request, session, principal, list_id))


@router.get(PAGE + "/lists/{list_id}/progress")
def list_progress(request: Request, list_id: int = Path(ge=1, le=MAX_ID), principal: Principal = Depends(operators),
                  session: Session = Depends(get_session)):
    """Polled by the list page while the file is read or imported (HTMX); the whole page once done."""
    context = _list_context(request, session, principal, list_id)
    if context["busy"]:
        return render(request, "acquisition/_lead_progress.html", context)
    return Response(status_code=200, headers={"HX-Refresh": "true"})


@router.post(PAGE + "/lists/{list_id}/commit")
def list_commit(request: Request, list_id: int = Path(ge=1, le=MAX_ID), mode: str = Form("", max_length=20),
                principal: Principal = Depends(operators), session: Session = Depends(get_session)):
    try:
        if mode not in ("all", "skip_bad"):
            raise InvalidInput("choose to import all rows or to skip the bad ones", field="mode")
        with session.begin_nested():
            leads.request_commit(session, corp_id=principal.corp_id, actor=principal, list_id=list_id,
                                 skip_bad=mode == "skip_bad")
    except SiyuError as exc:
        if isinstance(exc, NotFound):
            raise
        return render(request, "acquisition/lead_list.html",
                      _list_context(request, session, principal, list_id,
                                    errors=FieldErrors.of(request, exc, "mode")), status_code=exc.status_code)
    return RedirectResponse(f"{PAGE}/lists/{list_id}", status_code=303)


@router.post(PAGE + "/lists/{list_id}/discard")
def list_discard(list_id: int = Path(ge=1, le=MAX_ID), principal: Principal = Depends(operators),
                 session: Session = Depends(get_session)):
    leads.discard_list(session, corp_id=principal.corp_id, actor=principal, list_id=list_id)
    return RedirectResponse(PAGE, status_code=303)


@router.post(PAGE + "/lists/{list_id}/script")
def list_script(request: Request, list_id: int = Path(ge=1, le=MAX_ID), script: str = Form("", max_length=20000),
                principal: Principal = Depends(operators), session: Session = Depends(get_session)):
    try:
        with session.begin_nested():
            leads.save_script(session, corp_id=principal.corp_id, actor=principal, list_id=list_id, script=script)
    except SiyuError as exc:
        if isinstance(exc, NotFound):
            raise
        return render(request, "acquisition/lead_list.html",
                      _list_context(request, session, principal, list_id, script_form=script,
                                    script_errors=FieldErrors.of(request, exc, "script")),
                      status_code=exc.status_code)
    return RedirectResponse(f"{PAGE}/lists/{list_id}?saved=script#script", status_code=303)


@router.get(PAGE + "/lists/{list_id}/errors.csv")
def list_errors(request: Request, list_id: int = Path(ge=1, le=MAX_ID), principal: Principal = Depends(operators),
                session: Session = Depends(get_session)):
    """Every problem of the file, one line each (row number, column, reason): no personal data."""
    translate = translations(request_locale(request)).gettext
    rows = ([n, translate(COLUMN_LABELS.get(c, c)), _reason(translate, r)]
            for n, c, r in leads.bad_rows(session, corp_id=principal.corp_id, list_id=list_id))
    return file_response(lambda out: tabular.write_csv(out, [translate(N_("Row")), translate(N_("Column")),
                                                     translate(N_("Problem"))], rows),
                 "csv", f"lead-list-{list_id}-errors")


@router.get(PAGE + "/export/{fmt}")
def leads_export(request: Request, fmt: str = Path(pattern="^(csv|xlsx)$"),
                 list_id: str = Query("", max_length=30), staff_id: str = Query("", max_length=30),
                 status: str = Query("", max_length=30), principal: Principal = Depends(operators),
                 session: Session = Depends(get_session)):
    """The leads of the filter, names and phones masked; audited with the filter and row count."""
    filters = leads.make_filters(list_id=list_id, staff_id=staff_id, status=status)
    if filters.list_id is not None:
        leads.get_list(session, corp_id=principal.corp_id, list_id=filters.list_id)
    return file_response(lambda out: leads.export_leads(session, principal=principal, filters=filters, fmt=fmt, out=out,
                                                ip=client_ip(request)), fmt, "leads")


# --- calls --------------------------------------------------------------------------------------------------

@router.get(PAGE + "/queue")
def queue_page(request: Request, principal: Principal = Depends(callers), session: Session = Depends(get_session)):
    """The caller's own calls (an operator without advisor work sees an empty queue)."""
    due, later = ([], []) if principal.staff_id is None else leads.queue(
        session, corp_id=principal.corp_id, staff_id=principal.staff_id)
    lists = {lst.id: lst for lst in leads.list_lists(session, corp_id=principal.corp_id)}
    return render(request, "acquisition/lead_queue.html", {"due": due, "later": later, "lists": lists,
                                                           "mask_name": pii.mask_name, "mask_phone": pii.mask_phone,
                                                           **_labels()})


@router.get(PAGE + "/conversion")
def conversion_page(request: Request, principal: Principal = Depends(operators),
                    session: Session = Depends(get_session)):
    translate = translations(request_locale(request)).gettext
    funnels = leads.conversion(session, corp_id=principal.corp_id)
    by_advisor = funnels["by_advisor"]
    chart = {"key": "lead_conversion", "kind": "bar", "title": translate(N_("Calls and adds per advisor")),
             "x": [f.label for f in by_advisor],
             "series": [{"name": translate(N_("Leads")), "values": [f.leads for f in by_advisor]},
                        {"name": translate(N_("Called")), "values": [f.called for f in by_advisor]},
                        {"name": translate(N_("Reached")), "values": [f.reached for f in by_advisor]},
                        {"name": translate(N_("Agreed")), "values": [f.agreed for f in by_advisor]},
                        {"name": translate(N_("Added")), "values": [f.added for f in by_advisor]}]}
    return render(request, "acquisition/lead_conversion.html", {**funnels, "chart": chart})


def _lead_page(request: Request, session: Session, principal: Principal, lead_id: int, *, status_code: int = 200,
               **extra) -> Response:
    lead = leads.get_lead(session, principal=principal, lead_id=lead_id)
    lead_list = leads.get_list(session, corp_id=principal.corp_id, list_id=lead.list_id)
    staff = {s.id: s for s in list_staff(session, corp_id=principal.corp_id)}
    context = {"lead": lead, "lead_list": lead_list, "advisor": staff.get(lead.advisor_staff_id or 0),
               "calls": leads.calls_of(session, lead=lead), "staff": staff, "name_masked": pii.mask_name(lead.name),
               "phone_masked": pii.mask_phone(lead.phone), "phone": None, "errors": None,
               "callable": lead.status in leads.CALLABLE and not lead.do_not_call, "outcomes": leads.OUTCOMES,
               **_labels()}
    context.update(extra)
    return render(request, "acquisition/lead.html", context, status_code=status_code)


@router.get(PAGE + "/lead/{lead_id}")
def lead_page(request: Request, lead_id: int = Path(ge=1, le=MAX_ID), principal: Principal = Depends(callers),
              session: Session = Depends(get_session)):
    return _lead_page(request, session, principal, lead_id)


@router.post(PAGE + "/lead/{lead_id}/calls")
def lead_call(request: Request, lead_id: int = Path(ge=1, le=MAX_ID), outcome: str = Form("", max_length=30),
              note: str = Form("", max_length=5000), principal: Principal = Depends(callers),
              session: Session = Depends(get_session)):
    try:
        with session.begin_nested():
            leads.record_outcome(session, principal=principal, lead_id=lead_id, outcome=outcome, note=note)
    except SiyuError as exc:
        if isinstance(exc, NotFound):
            raise
        return _lead_page(request, session, principal, lead_id, errors=FieldErrors.of(request, exc, "outcome"),
                          note_form=note, status_code=exc.status_code)
    return RedirectResponse(f"{PAGE}/lead/{lead_id}?saved=call", status_code=303)


@router.post(PAGE + "/lead/{lead_id}/reveal")
def lead_reveal(request: Request, lead_id: int = Path(ge=1, le=MAX_ID), principal: Principal = Depends(callers),
                session: Session = Depends(get_session)):
    """The phone in clear on this answer only; audited."""
    try:
        phone = leads.reveal_phone(session, principal=principal, lead_id=lead_id, ip=client_ip(request))
    except SiyuError as exc:
        if isinstance(exc, NotFound):
            raise
        return _lead_page(request, session, principal, lead_id, errors=FieldErrors.of(request, exc, "outcome"),
                          status_code=exc.status_code)
    return _lead_page(request, session, principal, lead_id, phone=phone)


@router.post(PAGE + "/lead/{lead_id}/add-code")
def lead_add_code(request: Request, lead_id: int = Path(ge=1, le=MAX_ID), principal: Principal = Depends(callers),
                  session: Session = Depends(get_session)):
    try:
        with session.begin_nested():
            leads.request_add_code(session, principal=principal, lead_id=lead_id)
    except SiyuError as exc:
        if isinstance(exc, NotFound):
            raise
        return _lead_page(request, session, principal, lead_id, code_errors=FieldErrors.of(request, exc, "code"),
                          status_code=exc.status_code)
    return RedirectResponse(f"{PAGE}/lead/{lead_id}#code", status_code=303)
