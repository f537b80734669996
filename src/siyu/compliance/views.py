"""Console page 产品与适当性 (products and suitability): the product catalogue with risk levels, customers'
risk assessments, an eligibility check that shows the decision and its reason, and the risk
disclosures per product type.

Compliance officers and administrators edit; operations staff read and check eligibility (they plan
the broadcasts that the same rule filters). Thin: parse the form, check the role, call the service."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from siyu.compliance import disclosure, suitability
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
        errors = FieldErrors()
        errors.add(request, exc)
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
        errors = FieldErrors()
        errors.add(request, exc)
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
        errors = FieldErrors()
        errors.add(request, exc)
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
        errors = FieldErrors()
        errors.add(request, exc, "text")
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
        errors = FieldErrors()
        errors.add(request, exc, "product_type")
        return _page(request, session, principal, page_errors=errors, status_code=exc.status_code)
    return RedirectResponse(f"{PAGE}#disclosure-{product_type}", status_code=303)
