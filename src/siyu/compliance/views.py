"""Console page 产品与适当性 (products and suitability): the product catalogue with risk levels, customers'
risk assessments, an eligibility check that shows the decision and its reason, and the risk
disclosures per product type.

Compliance officers and administrators edit; operations staff read and check eligibility (they plan
the broadcasts that the same rule filters). Thin: parse the form, check the role, call the service.

Also 内容审核 (`/compliance/approvals`): maker–checker approval of outbound content (see the section below)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from siyu.compliance import approval, disclosure, suitability
from siyu.compliance.schemas import CATEGORIES, DETECTOR_CATEGORIES
from siyu.console.forms import FieldErrors
from siyu.console.i18n import N_
from siyu.console.templating import render
from siyu.db import get_session
from siyu.errors import InvalidInput, SiyuError
from siyu.tenancy.deps import require_roles
from siyu.tenancy.principal import Principal

router = APIRouter(include_in_schema=False)

EDITORS = ("administrator", "compliance")
READERS = (*EDITORS, "operations")
editors = require_roles(*EDITORS)
readers = require_roles(*READERS)
PAGE = "/compliance/products"

PRODUCT_TYPE_LABELS = {
    "wealth_management": N_("Wealth management"),
    "fund": N_("Fund"),
    "insurance": N_("Insurance"),
    "credit": N_("Credit"),
    "deposit": N_("Deposit"),
}
SOURCE_LABELS = {
    "questionnaire": N_("Questionnaire"),
    "firm_kyc_api": N_("Firm's KYC system"),
    "branch_import": N_("Branch import"),
    "manual": N_("Entered by hand"),
}


def _is_htmx(request: Request) -> bool:
    return bool(request.headers.get("hx-request"))


def _page(request: Request, session: Session, principal: Principal, *, status_code: int = 200, **extra) -> Response:
    own = disclosure.corp_overrides(session, corp_id=principal.corp_id)
    texts = disclosure.disclosure_texts(session, corp_id=principal.corp_id)
    context = {
        "products": suitability.list_products(session, corp_id=principal.corp_id),
        "product_types": list(suitability.PRODUCT_TYPES),
        "type_labels": PRODUCT_TYPE_LABELS,
        "product_levels": suitability.PRODUCT_LEVELS,
        "customer_levels": suitability.CUSTOMER_LEVELS,
        "sources": suitability.SOURCES,
        "source_labels": SOURCE_LABELS,
        "disclosures": [{"product_type": k, "text": texts[k], "is_default": k not in own}
                        for k in suitability.PRODUCT_TYPES],
        "can_edit": principal.has_role(*EDITORS),
        "default_valid_months": suitability.DEFAULT_VALID_MONTHS,
    }
    context.update(extra)
    return render(request, "compliance/products.html", context, status_code=status_code)


@router.get(PAGE)
def products_page(request: Request, principal: Principal = Depends(readers),
                  session: Session = Depends(get_session)):
    return _page(request, session, principal)


@router.post(PAGE)
def product_create(
    request: Request,
    code: str = Form(""),
    name: str = Form(""),
    product_type: str = Form(""),
    risk_level: str = Form(""),
    principal: Principal = Depends(editors),
    session: Session = Depends(get_session),
):
    values = {"code": code, "name": name, "product_type": product_type, "risk_level": risk_level}
    try:
        product = suitability.create_product(session, corp_id=principal.corp_id, actor=principal, **values)
    except SiyuError as exc:
        errors = FieldErrors.of(request, exc)
        return _page(request, session, principal, product_form=values, product_errors=errors,
                     status_code=exc.status_code)
    return RedirectResponse(f"{PAGE}?created={product.code}#product-{product.code}", status_code=303)


def _set_active(request: Request, session: Session, principal: Principal, code: str, active: bool) -> Response:
    # An unknown code is answered by the error page (404), like any other missing record.
    product = suitability.edit_product(session, corp_id=principal.corp_id, actor=principal, code=code,
                                       is_active=active)
    return RedirectResponse(f"{PAGE}#product-{product.code}", status_code=303)


@router.post(PAGE + "/{code}/deactivate")
def product_deactivate(request: Request, code: str = Path(max_length=64), principal: Principal = Depends(editors),
                       session: Session = Depends(get_session)):
    return _set_active(request, session, principal, code, False)


@router.post(PAGE + "/{code}/reactivate")
def product_reactivate(request: Request, code: str = Path(max_length=64), principal: Principal = Depends(editors),
                       session: Session = Depends(get_session)):
    return _set_active(request, session, principal, code, True)


@router.post("/compliance/risk-assessments")
def assessment_record(
    request: Request,
    customer_ref: str = Form(""),
    level: str = Form(""),
    source: str = Form("manual"),
    valid_months: str = Form(""),
    reference: str = Form(""),
    principal: Principal = Depends(editors),
    session: Session = Depends(get_session),
):
    values = {"customer_ref": customer_ref, "level": level, "source": source, "valid_months": valid_months,
              "reference": reference}
    try:
        months = valid_months.strip() or str(suitability.DEFAULT_VALID_MONTHS)
        if not (months.isascii() and months.isdigit()) or len(months) > 3:
            raise InvalidInput("the validity is 1–%(max)s months", field="valid_months",
                               params={"max": suitability.MAX_VALID_MONTHS})
        suitability.record_assessment(session, corp_id=principal.corp_id, actor=principal, customer_ref=customer_ref,
                                      level=level, source=source, valid_months=int(months), reference=reference)
    except SiyuError as exc:
        errors = FieldErrors.of(request, exc)
        return _page(request, session, principal, assessment_form=values, assessment_errors=errors,
                     status_code=exc.status_code)
    return _page(request, session, principal, assessment_notice=N_("Risk assessment recorded."),
                 check_form={"customer_ref": customer_ref.strip()})


@router.get("/compliance/suitability/check")
def eligibility_check(
    request: Request,
    customer_ref: str = Query("", max_length=200),
    product_code: str = Query("", max_length=200),
    principal: Principal = Depends(readers),
    session: Session = Depends(get_session),
):
    """The decision for one customer and product, with its reason (a fragment for HTMX)."""
    values = {"customer_ref": customer_ref, "product_code": product_code}
    context: dict = {"check_form": values}
    status = 200
    try:
        context["decision"] = suitability.check_eligibility(session, corp_id=principal.corp_id,
                                                            customer_ref=customer_ref, product_code=product_code)
        context["assessment"] = suitability.current_assessment(session, corp_id=principal.corp_id,
                                                               customer_ref=customer_ref)
    except SiyuError as exc:
        errors = FieldErrors.of(request, exc)
        if "product" in errors:  # the service names the product; the form calls its field product_code
            errors["product_code"] = errors.pop("product")
        context["check_errors"] = errors
        status = exc.status_code
    if _is_htmx(request):
        return render(request, "compliance/_decision.html", context, status_code=status)
    return _page(request, session, principal, status_code=status, **context)


@router.post("/compliance/disclosures/{product_type}")
def disclosure_set(
    request: Request,
    product_type: str = Path(max_length=40),
    text: str = Form(""),
    principal: Principal = Depends(editors),
    session: Session = Depends(get_session),
):
    try:
        disclosure.set_disclosure(session, corp_id=principal.corp_id, actor=principal, product_type=product_type,
                                  text=text)
    except SiyuError as exc:
        errors = FieldErrors.of(request, exc, "text")
        if exc.field == "product_type":
            return _page(request, session, principal, page_errors=errors, status_code=exc.status_code)
        return _page(request, session, principal, disclosure_errors={product_type: errors},
                     disclosure_form={product_type: text}, status_code=exc.status_code)
    return RedirectResponse(f"{PAGE}#disclosure-{product_type}", status_code=303)


@router.post("/compliance/disclosures/{product_type}/reset")
def disclosure_reset(request: Request, product_type: str = Path(max_length=40),
                     principal: Principal = Depends(editors), session: Session = Depends(get_session)):
    try:
        disclosure.reset_disclosure(session, corp_id=principal.corp_id, actor=principal, product_type=product_type)
    except SiyuError as exc:
        errors = FieldErrors.of(request, exc, "product_type")
        return _page(request, session, principal, page_errors=errors, status_code=exc.status_code)
    return RedirectResponse(f"{PAGE}#disclosure-{product_type}", status_code=303)


# --- content approval (内容审核与双人复核) -----------------------------------------------------------------------
# Operations staff are the makers, compliance officers the checkers (administrators are both, but never
# for their own version), auditors read.

MAKERS = ("administrator", "operations")
CHECKERS = approval.CHECKER_ROLES
APPROVAL_READERS = (*MAKERS, "compliance", "auditor")
makers = require_roles(*MAKERS)
approval_writers = require_roles(*MAKERS, *CHECKERS)
approval_readers = require_roles(*APPROVAL_READERS)
APPROVALS = "/compliance/approvals"
ITEM_ID = Path(ge=1, le=approval.MAX_ID)
TABS = ("queue", "mine", "all")

KIND_LABELS = {
    "welcome": N_("Welcome message"),
    "keyword_reply": N_("Keyword reply"),
    "broadcast": N_("Broadcast"),
    "sop_slot": N_("SOP slot"),
    "moments": N_("Moments"),
    "course": N_("Course"),
    "game": N_("Game"),
    "other": N_("Other"),
}
STATUS_LABELS = {
    "draft": N_("Draft"),
    "submitted": N_("Awaiting approval"),
    "approved": N_("Approved"),
    "rejected": N_("Rejected"),
    "superseded": N_("Replaced"),
}
ACTION_LABELS = {
    "created": N_("Created a draft"),
    "edited": N_("Edited"),
    "new_version": N_("New version"),
    "submitted": N_("Submitted"),
    "approved": N_("Approved"),
    "rejected": N_("Rejected"),
    "commented": N_("Commented"),
}
VERDICT_LABELS = {"pass": N_("Passes"), "review": N_("Needs review"), "block": N_("Blocked")}
FINDING_LABELS = {**CATEGORIES, **DETECTOR_CATEGORIES}


def _labels() -> dict:
    return {"kind_labels": KIND_LABELS, "status_labels": STATUS_LABELS, "action_labels": ACTION_LABELS,
            "verdict_labels": VERDICT_LABELS, "finding_labels": FINDING_LABELS, "type_labels": PRODUCT_TYPE_LABELS,
            "kinds": approval.KINDS, "product_types": list(suitability.PRODUCT_TYPES)}


def _approvals_page(request: Request, session: Session, principal: Principal, *, tab: str, status_code: int = 200,
                    **extra) -> Response:
    if tab == "queue":
        items = approval.list_items(session, corp_id=principal.corp_id, status="submitted")
    elif tab == "mine":
        items = approval.list_items(session, corp_id=principal.corp_id, created_by_staff_id=principal.staff_id or 0)
    else:
        items = approval.list_items(session, corp_id=principal.corp_id)
    context = {
        "tab": tab,
        "items": items,
        "can_make": principal.has_role(*MAKERS),
        "products": suitability.list_products(session, corp_id=principal.corp_id, active_only=True),
        **_labels(),
    }
    context.update(extra)
    return render(request, "compliance/approvals.html", context, status_code=status_code)


@router.get(APPROVALS)
def approvals_page(request: Request, tab: str = Query("", max_length=10),
                   principal: Principal = Depends(approval_readers), session: Session = Depends(get_session)):
    """The queue of submitted content for checkers, the maker's own items, or everything."""
    if tab not in TABS:
        tab = "queue" if principal.has_role(*CHECKERS) or not principal.has_role(*MAKERS) else "mine"
    return _approvals_page(request, session, principal, tab=tab)


def _content_errors(request: Request, exc: SiyuError) -> FieldErrors:
    errors = FieldErrors.of(request, exc)
    if "attachments" in errors:  # the console edits one link: its URL is the field to fix
        errors["link_url"] = errors.pop("attachments")
    return errors


def _link(link_title: str, link_url: str) -> list[dict]:
    if not link_url.strip() and not link_title.strip():
        return []
    return [{"type": "link", "url": link_url.strip(), "title": link_title.strip()}]


@router.post(APPROVALS)
def approval_create(
    request: Request,
    kind: str = Form(""),
    ref: str = Form(""),
    title: str = Form(""),
    text: str = Form(""),
    product_codes: list[str] = Form([]),
    product_types: list[str] = Form([]),
    link_title: str = Form(""),
    link_url: str = Form(""),
    principal: Principal = Depends(makers),
    session: Session = Depends(get_session),
):
    values = {"kind": kind, "ref": ref, "title": title, "text": text, "product_codes": product_codes,
              "product_types": product_types, "link_title": link_title, "link_url": link_url}
    try:
        item = approval.create_item(session, corp_id=principal.corp_id, actor=principal, kind=kind, ref=ref,
                                    title=title, text=text, product_codes=product_codes, product_types=product_types,
                                    attachments=_link(link_title, link_url))
    except SiyuError as exc:
        errors = _content_errors(request, exc)
        return _approvals_page(request, session, principal, tab="mine", form=values, errors=errors,
                               status_code=exc.status_code)
    return RedirectResponse(f"{APPROVALS}/{item.id}", status_code=303)


def _item_page(request: Request, session: Session, principal: Principal, item_id: int, *, status_code: int = 200,
               **extra) -> Response:
    item = approval.get_item(session, corp_id=principal.corp_id, item_id=item_id)
    versions = approval.versions(session, corp_id=principal.corp_id, item_id=item.id)
    latest = versions[-1]
    in_force = next((v for v in versions if v.number == item.approved_version), None)
    diffs = {v.number: approval.diff(prev.text, v.text) for prev, v in zip(versions, versions[1:], strict=False)
             if prev.text != v.text}
    me = principal.staff_id
    own = me is not None and me in (latest.created_by_staff_id, latest.submitted_by_staff_id)
    link = next((a for a in latest.attachments if a.get("type") == "link"), {})
    context = {
        "item": item,
        "versions": list(reversed(versions)),
        "latest": latest,
        "in_force": in_force,
        "segments": approval.segments(latest.final_text, latest.findings),
        "diffs": diffs,
        "events": approval.history(session, corp_id=principal.corp_id, item_id=item.id),
        "can_make": principal.has_role(*MAKERS),
        "can_edit": principal.has_role(*MAKERS) and latest.status != "submitted",
        "can_submit": principal.has_role(*MAKERS) and latest.status == "draft",
        "is_checker": principal.has_role(*CHECKERS),
        "can_decide": principal.has_role(*CHECKERS) and latest.status == "submitted" and not own,
        "own_version": own,
        "can_comment": principal.has_role(*MAKERS, *CHECKERS),
        "products": suitability.list_products(session, corp_id=principal.corp_id, active_only=True),
        "form": {"title": item.title, "text": latest.text, "product_codes": latest.product_codes,
                 "product_types": latest.product_types, "link_title": link.get("title", ""),
                 "link_url": link.get("url", "")},
        **_labels(),
    }
    context.update(extra)
    return render(request, "compliance/approval_item.html", context, status_code=status_code)


@router.get(APPROVALS + "/{item_id}")
def approval_item(request: Request, item_id: int = ITEM_ID, principal: Principal = Depends(approval_readers),
                  session: Session = Depends(get_session)):
    return _item_page(request, session, principal, item_id)


def _after(request: Request, session: Session, principal: Principal, item_id: int, action, *, form_name: str,
           form: dict | None = None) -> Response:
    try:
        action()
    except SiyuError as exc:
        if exc.status_code == 404:
            raise
        extra = {f"{form_name}_errors": _content_errors(request, exc)}
        if form is not None:
            extra["form"] = form
        return _item_page(request, session, principal, item_id, status_code=exc.status_code, **extra)
    return RedirectResponse(f"{APPROVALS}/{item_id}", status_code=303)


@router.post(APPROVALS + "/{item_id}/edit")
def approval_edit(
    request: Request,
    item_id: int = ITEM_ID,
    title: str = Form(""),
    text: str = Form(""),
    product_codes: list[str] = Form([]),
    product_types: list[str] = Form([]),
    link_title: str = Form(""),
    link_url: str = Form(""),
    principal: Principal = Depends(makers),
    session: Session = Depends(get_session),
):
    """Save the maker's change: the draft itself, or a new version when the latest is approved or rejected."""
    def action():
        latest = approval.get_version(session, corp_id=principal.corp_id, item_id=item_id)
        kept = [a for a in latest.attachments if a.get("type") != "link"]  # the console edits the link only
        approval.edit(session, corp_id=principal.corp_id, actor=principal, item_id=item_id, title=title, text=text,
                      product_codes=product_codes, product_types=product_types,
                      attachments=kept + _link(link_title, link_url))

    form = {"title": title, "text": text, "product_codes": product_codes, "product_types": product_types,
            "link_title": link_title, "link_url": link_url}
    return _after(request, session, principal, item_id, action, form_name="edit", form=form)


@router.post(APPROVALS + "/{item_id}/submit")
def approval_submit(request: Request, item_id: int = ITEM_ID, version: int | None = Form(None, ge=1, le=10**6),
                    principal: Principal = Depends(makers), session: Session = Depends(get_session)):
    return _after(request, session, principal, item_id, form_name="submit", action=lambda: approval.submit(
        session, corp_id=principal.corp_id, actor=principal, item_id=item_id, version=version))


@router.post(APPROVALS + "/{item_id}/approve")
def approval_approve(request: Request, item_id: int = ITEM_ID, version: int | None = Form(None, ge=1, le=10**6),
                     comment: str = Form(""), principal: Principal = Depends(require_roles(*CHECKERS)),
                     session: Session = Depends(get_session)):
    return _after(request, session, principal, item_id, form_name="decide", action=lambda: approval.approve(
        session, corp_id=principal.corp_id, actor=principal, item_id=item_id, version=version, comment=comment))


@router.post(APPROVALS + "/{item_id}/reject")
def approval_reject(request: Request, item_id: int = ITEM_ID, version: int | None = Form(None, ge=1, le=10**6),
                    comment: str = Form(""), principal: Principal = Depends(require_roles(*CHECKERS)),
                    session: Session = Depends(get_session)):
    return _after(request, session, principal, item_id, form_name="decide", action=lambda: approval.reject(
        session, corp_id=principal.corp_id, actor=principal, item_id=item_id, version=version, comment=comment))


@router.post(APPROVALS + "/{item_id}/comment")
def approval_comment(request: Request, item_id: int = ITEM_ID, comment: str = Form(""),
                     principal: Principal = Depends(approval_writers), session: Session = Depends(get_session)):
    return _after(request, session, principal, item_id, form_name="comment", action=lambda: approval.add_comment(
        session, corp_id=principal.corp_id, actor=principal, item_id=item_id, comment=comment))


# --- chat-archive alerts (会话存档告警): the pages live in archive_views.py ------------------------------------

from siyu.compliance.archive_views import router as _archive_router  # noqa: E402

router.include_router(_archive_router)
