"""Pages of the advisor's chat sidebar (聊天工具栏, a phone-width page WeCom opens next to a 1-on-1
chat) and the console list of recommendations (推荐记录). Thin: parse, call `customers.sidebar`,
render. Included by `customers.views` (before its `/customers/{customer_id}` route)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from sqlalchemy.orm import Session

from siyu.compliance.suitability import CUSTOMER_LEVEL_NAMES, PRODUCT_LEVEL_NAMES, PRODUCT_TYPES
from siyu.console.forms import FieldErrors
from siyu.console.i18n import N_
from siyu.console.templating import render, request_locale
from siyu.customers import service, sidebar
from siyu.db import get_session
from siyu.errors import SiyuError
from siyu.tenancy.deps import client_ip, current_staff
from siyu.tenancy.principal import Principal

router = APIRouter(include_in_schema=False)

PAGE = "/sidebar"
LIST = "/customers/recommendations"
PRODUCT_TYPE_LABELS = {
    "wealth_management": N_("Wealth management"), "fund": N_("Fund"), "insurance": N_("Insurance"),
    "credit": N_("Credit"), "deposit": N_("Deposit"),
}


def _reason(request: Request, decision) -> str:
    return decision.reason if request_locale(request) == "zh_CN" else decision.reason_en


def _page(request: Request, session: Session, principal: Principal, external_userid: str, *,
          errors: FieldErrors | None = None, form: dict | None = None, status: int = 200):
    try:
        view = sidebar.sidebar_view(session, principal=principal, external_userid=external_userid)
    except SiyuError as exc:
        # Not found (not this advisor's customer, another corp's) is a 404 like any other; a bad id names the field.
        return render(request, "sidebar/error.html", {"errors": FieldErrors.of(request, exc, "external_userid"),
                                                      "external_userid": external_userid},
                      status_code=exc.status_code)
    return render(request, "sidebar/index.html", {
        "v": view, "d": view.detail, "c": view.detail.row, "external_userid": view.detail.row.external_userid,
        "errors": errors or FieldErrors(), "form": form or {},
        "reason": lambda decision: _reason(request, decision),
        "stage_labels": _stage_labels(), "type_labels": PRODUCT_TYPE_LABELS, "types_zh": PRODUCT_TYPES,
        "customer_level_names": CUSTOMER_LEVEL_NAMES, "product_level_names": PRODUCT_LEVEL_NAMES,
    }, status_code=status)


def _stage_labels() -> dict:
    from siyu.customers.views import STAGE_LABELS

    return STAGE_LABELS


@router.get(PAGE)
def sidebar_page(request: Request, external_userid: str = Query("", max_length=200),
                 principal: Principal = Depends(current_staff), session: Session = Depends(get_session)):
    """The sidebar for the customer of the current chat (`?external_userid=`, see
    `sidebar.resolve_wecom_identity` for what WeCom provides instead)."""
    return _page(request, session, principal, external_userid)


@router.post(PAGE + "/recommend")
def sidebar_recommend(request: Request, external_userid: str = Form(""), product_code: str = Form(""),
                      message: str = Form(""), principal: Principal = Depends(current_staff),
                      session: Session = Depends(get_session)):
    """Recommend a product: checked again here (suitability, wording, consent), recorded, and the
    final text shown for the advisor to send."""
    try:
        row = sidebar.recommend(session, principal=principal, external_userid=external_userid,
                                product_code=product_code, message=message, ip=client_ip(request))
    except sidebar.NotSuitable as exc:
        errors = FieldErrors(product_code=_reason(request, exc.decision))
        return _page(request, session, principal, external_userid, errors=errors,
                     form={"product_code": product_code, "message": message}, status=exc.status_code)
    except SiyuError as exc:
        if exc.field in ("product_code", "message") or (exc.field is None and exc.status_code != 404):
            return _page(request, session, principal, external_userid,
                         errors=FieldErrors.of(request, exc, "message"),
                         form={"product_code": product_code, "message": message}, status=exc.status_code)
        # The customer cannot be opened (a bad id, not this advisor's customer, another corp's).
        return render(request, "sidebar/error.html", {"errors": FieldErrors.of(request, exc, "external_userid"),
                                                      "external_userid": ""}, status_code=exc.status_code)
    return render(request, "sidebar/recommended.html", {
        "r": row, "external_userid": row.external_userid, "findings": sidebar.findings_of(row, session),
        "type_labels": PRODUCT_TYPE_LABELS,
    })


# --- 推荐记录: the console list ----------------------------------------------------------------------------------


FILTERS = ("advisor_id", "product_code", "date_from", "date_to")


@router.get(LIST)
def recommendations_page(
    request: Request,
    advisor_id: str = Query("", max_length=100),
    product_code: str = Query("", max_length=100),
    date_from: str = Query("", max_length=100),
    date_to: str = Query("", max_length=100),
    principal: Principal = Depends(current_staff),
    session: Session = Depends(get_session),
):
    values = {"advisor_id": advisor_id, "product_code": product_code, "date_from": date_from, "date_to": date_to}
    errors, rows, status = FieldErrors(), [], 200
    try:
        filters = sidebar.make_filters(**values)
        rows = sidebar.list_recommendations(session, principal=principal, filters=filters)
    except SiyuError as exc:
        errors.add(request, exc, "advisor_id")
        status = exc.status_code
    return render(request, "customers/recommendations.html", {
        "rows": rows, "form": values, "errors": errors, "limit": sidebar.LIST_LIMIT,
        "filters_query": {k: v for k, v in values.items() if v},
        "advisors": service.advisor_options(session, principal=principal),
        "can_export": principal.has_role(*sidebar.EXPORTERS), "type_labels": PRODUCT_TYPE_LABELS,
    }, status_code=status)


@router.get(LIST + "/export/{fmt}")
def recommendations_export(
    request: Request,
    fmt: str = Path(pattern="^(csv|xlsx)$"),
    advisor_id: str = Query("", max_length=100),
    product_code: str = Query("", max_length=100),
    date_from: str = Query("", max_length=100),
    date_to: str = Query("", max_length=100),
    principal: Principal = Depends(current_staff),
    session: Session = Depends(get_session),
):
    """The list under its filter as CSV (or Excel), audited (`recommendations.exported`)."""
    from siyu.console.downloads import file_response

    filters = sidebar.make_filters(advisor_id=advisor_id, product_code=product_code, date_from=date_from,
                                   date_to=date_to)
    return file_response(lambda out: sidebar.export_recommendations(
        session, principal=principal, filters=filters, out=out, fmt=fmt, ip=client_ip(request)),
        fmt, "recommendations")

