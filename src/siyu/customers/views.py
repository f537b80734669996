"""Console pages 客户: the customer list (search, filters, keyset pages, lifecycle chart) and each
customer's 360 page (profile, follows and channels, tags, notes, risk level, timeline).

Every role sees the pages; what they list is what the service lets them see (an advisor: their own
customers). Names are masked; "show in clear" is audited. Thin: parse, call the service, render."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import RedirectResponse
from sqlalchemy.orm import Session

from siyu.console.forms import FieldErrors
from siyu.console.i18n import N_, translations
from siyu.console.templating import render, request_locale
from siyu.customers import service
from siyu.customers import tags as corp_tags
from siyu.customers.models import LifecycleStage
from siyu.customers.picker_views import router as picker_router
from siyu.customers.sidebar_views import router as sidebar_router
from siyu.db import get_session
from siyu.errors import Conflict, InvalidInput, NotFound, SiyuError
from siyu.tenancy.deps import client_ip, current_staff
from siyu.tenancy.principal import Principal
from siyu.tenancy.service import MAX_ID

router = APIRouter(include_in_schema=False)
# The advisor's chat sidebar and the recommendations list, first: /customers/recommendations before
# /customers/{customer_id}.
router.include_router(sidebar_router)
router.include_router(picker_router)

PAGE = "/customers"
CUSTOMER_ID = Path(ge=1, le=MAX_ID)
STAGE_LABELS = {
    LifecycleStage.NEW.value: N_("New"),
    LifecycleStage.ACTIVATED.value: N_("Activated"),
    LifecycleStage.INVESTED.value: N_("Invested"),
    LifecycleStage.REINVESTED.value: N_("Reinvested"),
    LifecycleStage.DORMANT.value: N_("Dormant"),
    LifecycleStage.LOST.value: N_("Lost"),
}
FILTER_FIELDS = ("q", "stage", "staff_id", "tag_id", "state", "added_from", "added_to")


def _is_htmx(request: Request) -> bool:
    return bool(request.headers.get("hx-request"))


def _stage_chart(counts: dict[str, int], translate) -> dict:
    """The list's lifecycle chart, as console-charts.js draws it."""
    return {"key": "stages", "title": translate(N_("Customers by lifecycle stage")), "kind": "bar",
            "x": [translate(STAGE_LABELS[s]) for s in counts],
            "series": [{"name": translate(N_("Customers")), "values": list(counts.values())}]}


@router.get(PAGE)
def customers_page(
    request: Request,
    q: str = Query("", max_length=500),
    stage: str = Query("", max_length=100),
    staff_id: str = Query("", max_length=100),
    tag_id: str = Query("", max_length=100),
    state: str = Query("", max_length=500),
    added_from: str = Query("", max_length=100),
    added_to: str = Query("", max_length=100),
    after: str = Query("", max_length=100),
    principal: Principal = Depends(current_staff),
    session: Session = Depends(get_session),
):
    values = {"q": q, "stage": stage, "staff_id": staff_id, "tag_id": tag_id, "state": state,
              "added_from": added_from, "added_to": added_to}
    errors = FieldErrors()
    rows, next_after, counts, status = [], None, dict.fromkeys(service.STAGES, 0), 200
    try:
        filters = service.make_filters(**values)
        page = service.list_customers(session, principal=principal, filters=filters, after=after or None)
        rows, next_after = page.rows, page.next_after
        counts = service.stage_counts(session, principal=principal, filters=filters)
    except SiyuError as exc:
        errors.add(request, exc, "q")
        status = exc.status_code
    translate = translations(request_locale(request)).gettext
    filters_query = {k: v for k, v in values.items() if v}
    return render(request, "customers/index.html", {
        "rows": rows,
        "channel_names": service.channel_names(session, corp_id=principal.corp_id,
                                               states=[f.state for r in rows for f in r.follows]),
        "next_after": next_after,
        "after": after,
        "total": sum(counts.values()),
        "counts": counts,
        "chart": _stage_chart(counts, translate),
        "form": values,
        "filters_query": filters_query,
        "filtered": bool(filters_query),
        "errors": errors,
        "stages": service.STAGES,
        "stage_labels": STAGE_LABELS,
        "advisors": service.advisor_options(session, principal=principal),
        "tags": service.list_tags(session, corp_id=principal.corp_id),
        "sees_all": principal.has_role("administrator", "operations", "compliance", "auditor"),
    }, status_code=status)


ADD_WAY_LABELS = {
    0: N_("Unknown source"), 1: N_("Scanned a QR code"), 2: N_("Searched a phone number"), 3: N_("Shared contact card"),
    4: N_("Group chat"), 5: N_("Phone contacts"), 6: N_("WeChat contacts"), 201: N_("Shared by a colleague"),
    202: N_("Assigned by an administrator"),
}
FOLLOW_STATUS_LABELS = {
    "active": N_("Following"),
    "deleted_by_staff": N_("Deleted by the advisor"),
    "lost": N_("The customer deleted the advisor"),
    "transferred": N_("Handed over to another advisor"),
}
EVENT_LABELS = {
    "added": N_("Added an advisor"),
    "edited": N_("Profile changed in WeCom"),
    "deleted_by_staff": N_("The advisor deleted the customer"),
    "lost": N_("The customer deleted the advisor"),
    "transfer_failed": N_("Transfer to another advisor failed"),
    "transferred": N_("Handed over to another advisor"),
    "stage_changed": N_("Lifecycle stage changed"),
    "tags_changed": N_("Tags changed"),
    "tag_mark_failed": N_("WeCom refused a tag change"),
    "note_added": N_("Note added"),
    "firm_linked": N_("Linked to the firm's customer id"),
    "invested": N_("Invested"),
    "redeemed": N_("Redeemed"),
    "product_recommended": N_("Product recommended"),
}
GENDER_LABELS = {0: N_("Unknown"), 1: N_("Male"), 2: N_("Female")}


def _detail_context(session: Session, principal: Principal, customer_id: int, **extra) -> dict:
    detail = service.customer_detail(session, principal=principal, customer_id=customer_id)
    context = {
        "d": detail,
        "c": detail.row,
        "channel_names": service.channel_names(session, corp_id=principal.corp_id,
                                               states=[f.state for f in detail.row.follows]),
        "stage_labels": STAGE_LABELS,
        "add_way_labels": ADD_WAY_LABELS,
        "follow_status_labels": FOLLOW_STATUS_LABELS,
        "event_labels": EVENT_LABELS,
        "gender_labels": GENDER_LABELS,
        "can_note": principal.has_role(*service.NOTE_WRITERS),
        "can_tag": principal.kind == "staff" and principal.has_role(*corp_tags.TAG_WRITERS),
        "tag_options": corp_tags.tag_options(session, corp_id=principal.corp_id, exclude=[t.id for t in detail.tags]),
        "failed_marks": corp_tags.failed_marks(session, customer_id=customer_id),
        "pending_tag_ids": {m.tag_id for m in corp_tags.pending_marks(session, customer_id=customer_id)},
        "tag_errors": None,
        "note_errors": None,
        "note_form": "",
        "unmasked": None,
        # An HTMX answer replaces one section and updates others out of band (hx-swap-oob).
        "oob": False,
    }
    context.update(extra)
    return context


@router.get(PAGE + "/{customer_id}")
def customer_page(request: Request, customer_id: int = CUSTOMER_ID, principal: Principal = Depends(current_staff),
                  session: Session = Depends(get_session)):
    return render(request, "customers/detail.html", _detail_context(session, principal, customer_id))


@router.post(PAGE + "/{customer_id}/unmask")
def customer_unmask(request: Request, customer_id: int = CUSTOMER_ID, principal: Principal = Depends(current_staff),
                    session: Session = Depends(get_session)):
    """The name and remarks in clear, for this view only; an audit entry records who saw them."""
    unmasked = service.unmask_customer(session, principal=principal, customer_id=customer_id, ip=client_ip(request))
    htmx = _is_htmx(request)
    context = _detail_context(session, principal, customer_id, unmasked=unmasked, oob=htmx)
    return render(request, "customers/_profile.html" if htmx else "customers/detail.html", context)


@router.post(PAGE + "/{customer_id}/notes")
def note_add(request: Request, customer_id: int = CUSTOMER_ID, text: str = Form(""),
             principal: Principal = Depends(current_staff), session: Session = Depends(get_session)):
    htmx = _is_htmx(request)
    template = "customers/_notes.html" if htmx else "customers/detail.html"
    try:
        service.add_note(session, principal=principal, customer_id=customer_id, text=text)
    except InvalidInput as exc:
        errors = FieldErrors.of(request, exc, "text")
        return render(request, template, _detail_context(session, principal, customer_id, note_errors=errors,
                                                         note_form=text), status_code=exc.status_code)
    if htmx:
        return render(request, template, _detail_context(session, principal, customer_id, oob=True,
                                                         note_notice=N_("Note added.")))
    return RedirectResponse(f"{PAGE}/{customer_id}#notes", status_code=303)


@router.post(PAGE + "/{customer_id}/tags")
def tag_change(request: Request, customer_id: int = CUSTOMER_ID, tag_id: str = Form("", max_length=40),
               action: str = Form("", max_length=20), principal: Principal = Depends(current_staff),
               session: Session = Depends(get_session)):
    """Add or remove a corp tag: at once in Siyu, then at WeCom by a job (`siyu.customers.tags`)."""
    try:
        corp_tags.change_tag(session, principal=principal, customer_id=customer_id, tag_id=tag_id, action=action,
                             ip=client_ip(request))
    except (InvalidInput, Conflict, NotFound) as exc:
        if isinstance(exc, NotFound) and exc.field != "tag_id":
            raise  # the customer: not found
        errors = FieldErrors.of(request, exc, "tag_id")
        return render(request, "customers/detail.html", _detail_context(session, principal, customer_id,
                                                                        tag_errors=errors),
                      status_code=exc.status_code)
    return RedirectResponse(f"{PAGE}/{customer_id}#tags", status_code=303)


@router.get("/customer-tags")
def tag_library_page(request: Request, synced: str = Query("", max_length=10),
                     principal: Principal = Depends(current_staff), session: Session = Depends(get_session)):
    """标签库: the corp's tag groups and tags as last read from WeCom, and a button to read them again."""
    groups = corp_tags.library(session, principal=principal)
    return render(request, "customers/tag_library.html", {"groups": groups, "requested": synced == "1"})


@router.post("/customer-tags/sync")
def tag_library_sync(request: Request, principal: Principal = Depends(current_staff),
                     session: Session = Depends(get_session)):
    corp_tags.request_sync(session, principal=principal, ip=client_ip(request))
    return RedirectResponse("/customer-tags?synced=1", status_code=303)


@router.get(PAGE + "/export/{fmt}")
def customers_export(
    request: Request,
    fmt: str = Path(pattern="^(csv|xlsx)$"),
    q: str = Query("", max_length=500),
    stage: str = Query("", max_length=100),
    staff_id: str = Query("", max_length=100),
    tag_id: str = Query("", max_length=100),
    state: str = Query("", max_length=500),
    added_from: str = Query("", max_length=100),
    added_to: str = Query("", max_length=100),
    principal: Principal = Depends(current_staff),
    session: Session = Depends(get_session),
):
    """The list under its current filter as CSV or Excel: names masked, no phones; audited."""
    from siyu.console.downloads import file_response
    from siyu.customers.export import export_customers

    filters = service.make_filters(q=q, stage=stage, staff_id=staff_id, tag_id=tag_id, state=state,
                                   added_from=added_from, added_to=added_to)
    return file_response(lambda out: export_customers(session, principal=principal, filters=filters, fmt=fmt,
                                                      out=out, ip=client_ip(request)), fmt, "customers")
