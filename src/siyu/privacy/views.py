"""Console pages of personal-information protection (see `siyu.privacy`):

- 个人信息请求 `/compliance/privacy`: data-subject requests (export | delete) registered by compliance
  with the requester's verification note, carried out or refused, the export downloaded once; and a
  customer's consent ledger looked up by WeCom id.
- 保存期限 `/compliance/retention`: retention policies per record class (edited by compliance) and
  the last purge runs.
- 个人信息处理规则 `/compliance/privacy-notice`: the privacy notice H5 pages show before they take a
  phone number, published version after version by compliance.

Compliance officers act; administrators and auditors read (never the export itself). Thin: parse,
check the role, call the service. Mounted by the app with every domain's views."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from siyu.console.forms import FieldErrors
from siyu.console.i18n import N_
from siyu.console.templating import render
from siyu.db import get_session
from siyu.errors import InvalidInput, SiyuError, localized_message
from siyu.privacy import notices
from siyu.privacy import service as privacy
from siyu.tenancy.deps import require_roles
from siyu.tenancy.principal import Principal
from siyu.tenancy.service import names_by_login

router = APIRouter(include_in_schema=False)

workers = require_roles(*privacy.WORKER_ROLES)
readers = require_roles(*privacy.READER_ROLES)
PAGE = "/compliance/privacy"
RETENTION = "/compliance/retention"
REQUEST_ID = Path(ge=1, le=2**63 - 1)

KIND_LABELS = {"export": N_("Export (copy of the data)"), "delete": N_("Delete")}
STATUS_LABELS = {"requested": N_("Requested"), "in_progress": N_("In progress"), "done": N_("Done"),
                 "refused": N_("Refused")}
PURPOSE_LABELS = {"marketing": N_("Marketing messages"), "chat_archiving": N_("Chat archiving"),
                  "data_sharing": N_("Data sharing with the firm"), "profiling": N_("Profiling"),
                  "personal_info": N_("Personal information on H5 pages")}
SOURCE_LABELS = {"h5": N_("H5 page"), "advisor": N_("Advisor on the customer's behalf"), "import": N_("Import"),
                 "api": N_("API"), "chat": N_("Chat reply"), "wecom": N_("WeCom")}
CLASS_LABELS = {
    "archive_message": N_("Archived chat messages"), "marketing_send": N_("Marketing send logs"),
    "webhook_delivery": N_("Webhook delivery logs"), "job": N_("Finished background jobs"),
    "audit_log": N_("Audit log"), "suitability_assessment": N_("Suitability assessments"),
    "order": N_("Orders and sales records"),
}


def _labels() -> dict:
    return {"kind_labels": KIND_LABELS, "status_labels": STATUS_LABELS, "purpose_labels": PURPOSE_LABELS,
            "source_labels": SOURCE_LABELS, "class_labels": CLASS_LABELS}


def _names(session: Session, corp_id: int, external_userids: list[str]) -> dict[str, str]:
    """Masked names of customers by WeCom id, from the customers domain (a higher layer, looked up)."""
    from siyu import domain_module

    customers = domain_module("customers", "service")
    return customers.masked_names(session, corp_id=corp_id, external_userids=external_userids) if customers else {}


def _page(request: Request, session: Session, principal: Principal, *, customer: str = "", status_code: int = 200,
          **extra) -> Response:
    lookup_errors = FieldErrors()
    state = history = None
    if customer:
        try:
            state = privacy.consent_state(session, corp_id=principal.corp_id, external_userid=customer)
            history = privacy.consent_history(session, corp_id=principal.corp_id, external_userid=customer.strip())
        except SiyuError as exc:
            lookup_errors["customer"] = localized_message(request, exc)  # the lookup's field, whatever failed
            status_code = 422
    requests = privacy.list_requests(session, corp_id=principal.corp_id)
    context = {
        "requests": requests,
        "names": _names(session, principal.corp_id, [r.external_userid for r in requests] + [customer]
                        + [extra.get("form", {}).get("external_userid", "")]),
        "staff_names": names_by_login(session, corp_id=principal.corp_id, logins=[r.requested_by for r in requests]),
        "can_work": principal.has_role(*privacy.WORKER_ROLES),
        "kinds": privacy.KINDS,
        "form": {"external_userid": "", "kind": "export", "verification_note": ""},
        "errors": {},
        "customer": customer,
        "state": state,
        "history": history,
        "lookup_errors": lookup_errors,
        "purposes": privacy.PURPOSES,
        **_labels(),
    }
    context.update(extra)
    return render(request, "privacy/privacy.html", context, status_code=status_code)


@router.get(PAGE)
def privacy_page(request: Request, customer: str = Query("", max_length=64), principal: Principal = Depends(readers),
                 session: Session = Depends(get_session)):
    return _page(request, session, principal, customer=customer)


@router.post(PAGE + "/requests")
def request_create(request: Request, external_userid: str = Form("", max_length=200),
                   kind: str = Form("", max_length=20), verification_note: str = Form("", max_length=4000),
                   principal: Principal = Depends(workers), session: Session = Depends(get_session)):
    try:
        req = privacy.create_request(session, corp_id=principal.corp_id, actor=principal,
                                     external_userid=external_userid, kind=kind, verification_note=verification_note)
    except SiyuError as exc:
        form = {"external_userid": external_userid, "kind": kind, "verification_note": verification_note}
        return _page(request, session, principal, form=form, errors=FieldErrors.of(request, exc, "external_userid"),
                     status_code=exc.status_code)
    return RedirectResponse(f"{PAGE}/requests/{req.id}", status_code=303)


def _detail(request: Request, session: Session, principal: Principal, request_id: int, *, status_code: int = 200,
            **extra) -> Response:
    req = privacy.get_request(session, corp_id=principal.corp_id, request_id=request_id)
    context = {"req": req, "can_work": principal.has_role(*privacy.WORKER_ROLES), "errors": {},
               "names": _names(session, principal.corp_id, [req.external_userid]),
               "staff_names": names_by_login(session, corp_id=principal.corp_id, logins=[req.requested_by]),
               "downloadable": req.kind == "export" and req.status == "done" and req.bundle is not None
               and req.downloaded_at is None, **_labels()}
    context.update(extra)
    return render(request, "privacy/privacy_request.html", context, status_code=status_code)


@router.get(PAGE + "/requests/{request_id}")
def request_detail(request: Request, request_id: int = REQUEST_ID, principal: Principal = Depends(readers),
                   session: Session = Depends(get_session)):
    return _detail(request, session, principal, request_id)


def _act(request: Request, session: Session, principal: Principal, request_id: int, action, field: str) -> Response:
    try:
        action()
    except SiyuError as exc:
        if exc.field == "request" and exc.status_code == 404:
            raise
        return _detail(request, session, principal, request_id, errors=FieldErrors.of(request, exc, field),
                       status_code=exc.status_code)
    return RedirectResponse(f"{PAGE}/requests/{request_id}", status_code=303)


@router.post(PAGE + "/requests/{request_id}/carry-out")
def request_carry_out(request: Request, request_id: int = REQUEST_ID, principal: Principal = Depends(workers),
                      session: Session = Depends(get_session)):
    return _act(request, session, principal, request_id,
                lambda: privacy.carry_out(session, corp_id=principal.corp_id, actor=principal, request_id=request_id),
                "request")


@router.post(PAGE + "/requests/{request_id}/refuse")
def request_refuse(request: Request, request_id: int = REQUEST_ID, reason: str = Form("", max_length=4000),
                   principal: Principal = Depends(workers), session: Session = Depends(get_session)):
    return _act(request, session, principal, request_id,
                lambda: privacy.refuse_request(session, corp_id=principal.corp_id, actor=principal,
                                               request_id=request_id, reason=reason), "reason")


@router.post(PAGE + "/requests/{request_id}/download")
def request_download(request: Request, request_id: int = REQUEST_ID, format: str = Form("json", max_length=10),
                     principal: Principal = Depends(workers), session: Session = Depends(get_session)):
    try:
        name, content = privacy.download_bundle(session, corp_id=principal.corp_id, actor=principal,
                                                request_id=request_id, fmt=format)
    except SiyuError as exc:
        if exc.field == "request" and exc.status_code == 404:
            raise
        return _detail(request, session, principal, request_id, errors=FieldErrors.of(request, exc, "request"),
                       status_code=exc.status_code)
    media = "application/json" if name.endswith(".json") else "text/csv"
    return Response(content.encode("utf-8"), media_type=f"{media}; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"})


# --- retention -------------------------------------------------------------------------------------------------


def _retention(request: Request, session: Session, principal: Principal, *, status_code: int = 200, **extra
               ) -> Response:
    context = {
        "policies": privacy.policies(session, corp_id=principal.corp_id),
        "runs": privacy.purge_runs(session, corp_id=principal.corp_id),
        "registered": privacy.registered_classes(),
        "never": privacy.NEVER_PURGED,
        "can_work": principal.has_role(*privacy.WORKER_ROLES),
        "errors": {},
        "failed_class": "",
        "notice": request.query_params.get("notice", ""),
        **_labels(),
    }
    context.update(extra)
    return render(request, "privacy/retention.html", context, status_code=status_code)


@router.get(RETENTION)
def retention_page(request: Request, principal: Principal = Depends(readers), session: Session = Depends(get_session)):
    return _retention(request, session, principal)


@router.post(RETENTION + "/{record_class}")
def retention_edit(request: Request, record_class: str = Path(max_length=40), keep_days: str = Form("", max_length=20),
                   legal_basis: str = Form("", max_length=2000), principal: Principal = Depends(workers),
                   session: Session = Depends(get_session)):
    try:
        if record_class not in privacy.RECORD_CLASSES:
            raise InvalidInput("unknown record class", field="record_class")
        privacy.set_policy(session, corp_id=principal.corp_id, actor=principal, record_class=record_class,
                           keep_days=keep_days, legal_basis=legal_basis)
    except SiyuError as exc:
        return _retention(request, session, principal, errors=FieldErrors.of(request, exc, "keep_days"),
                          failed_class=record_class, status_code=exc.status_code)
    return RedirectResponse(f"{RETENTION}?notice=saved", status_code=303)


# --- the privacy notice of the H5 pages (siyu.privacy.notices) --------------------------------------------

NOTICE = "/compliance/privacy-notice"


def _notice_page(request: Request, session: Session, principal: Principal, *, status_code: int = 200,
                 **extra) -> Response:
    current = notices.current(session, corp_id=principal.corp_id)
    context = {"current": current, "versions": notices.versions(session, corp_id=principal.corp_id),
               "can_work": principal.has_role(*privacy.WORKER_ROLES), "errors": {},
               "form": {"title": current.title, "text": current.text}, "published": request.query_params.get(
                   "notice") == "published"}
    context.update(extra)
    return render(request, "privacy/notice.html", context, status_code=status_code)


@router.get(NOTICE)
def notice_page(request: Request, principal: Principal = Depends(readers), session: Session = Depends(get_session)):
    return _notice_page(request, session, principal)


@router.post(NOTICE)
def notice_publish(request: Request, title: str = Form("", max_length=400), text: str = Form("", max_length=40_000),
                   principal: Principal = Depends(workers), session: Session = Depends(get_session)):
    try:
        notices.publish(session, corp_id=principal.corp_id, actor=principal, title=title, text=text)
    except SiyuError as exc:
        return _notice_page(request, session, principal, errors=FieldErrors.of(request, exc, "text"),
                            form={"title": title, "text": text}, status_code=exc.status_code)
    return RedirectResponse(f"{NOTICE}?notice=published", status_code=303)
