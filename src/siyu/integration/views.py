"""Console pages of the firm integration: outbound webhooks (administrators) and the holdings panel
of the customer 360 page. Thin: parse the form, call the service."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from siyu.console.forms import FieldErrors
from siyu.console.i18n import N_
from siyu.console.templating import render
from siyu.db import get_session
from siyu.errors import SiyuError
from siyu.integration import service
from siyu.tenancy.deps import client_ip, current_staff, require_roles
from siyu.tenancy.principal import Principal

router = APIRouter(include_in_schema=False)
administrator = require_roles("administrator")
PAGE = "/integration/webhooks"

EVENT_LABELS = {
    "customer.added": N_("Customer added an advisor"),
    "customer.edited": N_("Customer profile changed"),
    "customer.deleted": N_("Advisor deleted the customer"),
    "customer.lost": N_("Customer deleted the advisor"),
    "customer.transfer_failed": N_("Transfer to another advisor failed"),
    "customer.stage_changed": N_("Lifecycle stage changed"),
    "customer.invested": N_("Customer invested"),
    "customer.redeemed": N_("Customer redeemed"),
    "customer.verified": N_("Customer verified as the firm's customer"),
    "customer.transferred": N_("Customer handed over to another advisor"),
}
STATE_LABELS = {"pending": N_("Pending"), "delivered": N_("Delivered"), "dead": N_("Given up")}


def _page(request: Request, session: Session, principal: Principal, *, status_code: int = 200, **extra) -> Response:
    corp_id = principal.corp_id
    context = {
        "endpoints": service.list_endpoints(session, corp_id=corp_id),
        "deliveries": service.list_deliveries(session, corp_id=corp_id),
        "counts": service.delivery_counts(session, corp_id=corp_id),
        "events": service.WEBHOOK_EVENTS,
        "event_labels": EVENT_LABELS,
        "state_labels": STATE_LABELS,
        "max_attempts": service.MAX_ATTEMPTS,
        "errors": {},
        "form": {},
    }
    context.update(extra)
    return render(request, "integration/webhooks.html", context, status_code=status_code)


@router.get(PAGE)
def webhooks_page(request: Request, principal: Principal = Depends(administrator),
                  session: Session = Depends(get_session)):
    return _page(request, session, principal)


@router.post(PAGE)
def webhook_create(request: Request, url: str = Form("", max_length=2000), events: list[str] = Form([]),
                   principal: Principal = Depends(administrator), session: Session = Depends(get_session)):
    try:
        endpoint, secret = service.create_endpoint(session, principal=principal, url=url, events=events,
                                                   ip=client_ip(request))
    except SiyuError as exc:
        return _page(request, session, principal, errors=FieldErrors.of(request, exc),
                     form={"url": url, "events": events}, status_code=exc.status_code)
    # The secret is shown on this answer only; it must not be cached anywhere.
    response = _page(request, session, principal, new_secret=secret, new_endpoint=endpoint, status_code=201)
    response.headers["Cache-Control"] = "no-store"
    return response


@router.post(PAGE + "/{endpoint_id}/enabled")
def webhook_enabled(request: Request, endpoint_id: int, enabled: str = Form("", max_length=5),
                    principal: Principal = Depends(administrator), session: Session = Depends(get_session)):
    service.set_enabled(session, principal=principal, endpoint_id=endpoint_id, enabled=enabled == "on",
                        ip=client_ip(request))
    return RedirectResponse(PAGE, status_code=303)


@router.post("/integration/deliveries/{delivery_id}/redeliver")
def webhook_redeliver(request: Request, delivery_id: int, principal: Principal = Depends(administrator),
                      session: Session = Depends(get_session)):
    service.redeliver(session, principal=principal, delivery_id=delivery_id, ip=client_ip(request))
    return RedirectResponse(PAGE + f"#delivery-{delivery_id}", status_code=303)


@router.get("/integration/customers/{customer_id}/holdings")
def customer_holdings(request: Request, customer_id: int, principal: Principal = Depends(current_staff),
                      session: Session = Depends(get_session)):
    """The holdings panel of the customer 360 page (loaded by HTMX); same visibility as the page."""
    holdings = service.customer_holdings(session, principal=principal, customer_id=customer_id)
    return render(request, "integration/_holdings.html", {"holdings": holdings, "fen_text": service.fen_text})
