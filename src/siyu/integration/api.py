"""REST API for the firm's core systems (/api/v1/integration): KYC risk levels (`kyc:write`), orders
and redemptions, single or in batches of up to 1,000 (`orders:write`), customer lookups
(`customers:read`). Every answer is limited to the API key's corp."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Response
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from siyu.db import get_session
from siyu.integration import service
from siyu.integration.schemas import (
    CustomerLookupOut,
    HoldingOut,
    KycIn,
    KycOut,
    OrderBatchIn,
    OrderBatchOut,
    OrderIn,
    OrderOut,
    PhoneLookupIn,
)
from siyu.tenancy.deps import require_scope
from siyu.tenancy.principal import Principal

router = APIRouter(prefix="/api/v1/integration", tags=["integration"])

ERRORS = {
    401: {"description": "no valid API key"},
    403: {"description": "the key lacks the scope"},
    404: {"description": "no such customer in the key's corp (`field` names the identifier)"},
    422: {"description": "a field is not valid (`field`, or `errors[].index` and `errors[].field` in a batch)"},
}
ORDER_ERRORS = {**ERRORS, 409: {"description": "the order id was pushed before with another body (`field` names "
                                               "the first field that differs)"}}
write_kyc = require_scope("kyc:write")
write_orders = require_scope("orders:write")
read_customers = require_scope("customers:read")


def _order_out(order, created: bool) -> OrderOut:
    return OrderOut(order_id=order.firm_order_id, kind=order.kind, firm_customer_id=order.firm_customer_id,
                    amount_fen=order.amount_fen, product_code=order.product_code,
                    product_risk_level=order.product_risk_level, occurred_at=order.occurred_at, created=created)


@router.post("/kyc", response_model=KycOut, status_code=201, responses=ERRORS)
def push_kyc(body: KycIn, principal: Principal = Depends(write_kyc), session: Session = Depends(get_session)) -> KycOut:
    """Record a customer's risk level C1–C5 (scope `kyc:write`); kept as history by compliance."""
    customer, a = service.record_kyc(session, principal=principal, body=body.model_dump())
    return KycOut(external_userid=customer.external_userid, firm_customer_id=customer.firm_customer_id, level=a.level,
                  source=a.source, assessed_at=a.assessed_at, expires_at=a.expires_at)


def _single(kind: str, body: OrderIn, response: Response, principal: Principal, session: Session) -> OrderOut:
    order, created = service.record_order(session, principal=principal, kind=kind, body=body.model_dump())
    response.status_code = 201 if created else 200
    return _order_out(order, created)


def _batch(kind: str, body: OrderBatchIn, response: Response, principal: Principal, session: Session):
    try:
        results = service.record_orders(session, principal=principal, kind=kind,
                                        items=body.items)
    except service.BatchRejected as exc:
        # Nothing was written: every record is checked (reads only) before the first is stored.
        return JSONResponse({"detail": exc.message, "field": "items",
                             "errors": [{k: e[k] for k in ("index", "field", "detail")} for e in exc.errors]},
                            status_code=exc.status_code)
    created = sum(1 for _o, c in results if c)
    response.status_code = 201 if created else 200
    return OrderBatchOut(items=[_order_out(o, c) for o, c in results], created=created)


@router.post("/orders", response_model=OrderOut, status_code=201, responses=ORDER_ERRORS)
def push_order(body: OrderIn, response: Response, principal: Principal = Depends(write_orders),
               session: Session = Depends(get_session)) -> OrderOut:
    """An investment (申购/认购), idempotent by `order_id` (scope `orders:write`): 201 stored, 200 a
    repeat of the same body, 409 a different body under the same id."""
    return _single("investment", body, response, principal, session)


@router.post("/orders/batch", response_model=OrderBatchOut, status_code=201, responses=ORDER_ERRORS)
def push_orders(body: OrderBatchIn, response: Response, principal: Principal = Depends(write_orders),
                session: Session = Depends(get_session)):
    """Up to 1,000 investments, all or nothing (scope `orders:write`)."""
    return _batch("investment", body, response, principal, session)


@router.post("/redemptions", response_model=OrderOut, status_code=201, responses=ORDER_ERRORS)
def push_redemption(body: OrderIn, response: Response, principal: Principal = Depends(write_orders),
                    session: Session = Depends(get_session)) -> OrderOut:
    """A redemption (赎回), idempotent by `order_id` like orders (scope `orders:write`)."""
    return _single("redemption", body, response, principal, session)


@router.post("/redemptions/batch", response_model=OrderBatchOut, status_code=201, responses=ORDER_ERRORS)
def push_redemptions(body: OrderBatchIn, response: Response, principal: Principal = Depends(write_orders),
                     session: Session = Depends(get_session)):
    """Up to 1,000 redemptions, all or nothing (scope `orders:write`)."""
    return _batch("redemption", body, response, principal, session)


def _lookup_out(found: service.CustomerLookup) -> CustomerLookupOut:
    return CustomerLookupOut(
        external_userid=found.external_userid, firm_customer_id=found.firm_customer_id, name=found.name_masked,
        stage=found.stage, risk_level=found.risk_level, risk_expires_at=found.risk_expires_at,
        risk_expired=found.risk_expired,
        holdings=[HoldingOut(product_code=h.product_code, product_risk_level=h.product_risk_level,
                             invested_fen=h.invested_fen, redeemed_fen=h.redeemed_fen, held_fen=h.held_fen)
                  for h in found.holdings])


@router.get("/customers", response_model=CustomerLookupOut, responses=ERRORS)
def lookup_customer(
    firm_customer_id: str | None = Query(None, max_length=64, description="the firm's customer id"),
    external_userid: str | None = Query(None, max_length=64, description="WeCom's external_userid"),
    principal: Principal = Depends(read_customers),
    session: Session = Depends(get_session),
) -> CustomerLookupOut:
    """One customer by exactly one identifier: masked profile, stage, risk level, holdings (scope `customers:read`)."""
    return _lookup_out(service.lookup_customer(session, principal=principal, firm_customer_id=firm_customer_id,
                                               external_userid=external_userid))


@router.post("/customers/lookup", response_model=CustomerLookupOut, responses=ERRORS)
def lookup_by_phone(body: PhoneLookupIn, principal: Principal = Depends(read_customers),
                    session: Session = Depends(get_session)) -> CustomerLookupOut:
    """One customer by mobile number (in the body, not the URL: it stays out of access logs), matched
    on a keyed hash (scope `customers:read`)."""
    return _lookup_out(service.lookup_customer(session, principal=principal, phone=body.phone))
