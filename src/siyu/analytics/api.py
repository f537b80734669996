"""REST API of analytics (/api/v1/analytics): the firm's systems push the events only they know —
rewards paid, coupons used, orders matured — single or up to 1,000 at a time (scope
`analytics:write`), idempotent by the firm's event id. Every answer is limited to the key's corp."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from siyu.analytics import service
from siyu.analytics.schemas import FirmEventBatchIn, FirmEventBatchOut, FirmEventIn, FirmEventOut
from siyu.db import get_session
from siyu.tenancy.deps import require_scope
from siyu.tenancy.principal import Principal

router = APIRouter(prefix="/api/v1/analytics", tags=["analytics"])

ERRORS = {
    401: {"description": "no valid API key"},
    403: {"description": "the key lacks the scope"},
    404: {"description": "no customer with this firm_customer_id in the key's corp"},
    409: {"description": "the event id was pushed before with another body (`field` names the first that differs)"},
    422: {"description": "a field is not valid (`field`, or `errors[].index` and `errors[].field` in a batch)"},
}
write_events = require_scope("analytics:write")


def _out(event, created: bool, firm_customer_id: str) -> FirmEventOut:
    return FirmEventOut(event_id=event.source_key.removeprefix("firm_event:"), type=event.type,
                        firm_customer_id=firm_customer_id, occurred_at=event.ts, amount_fen=event.amount_fen,
                        product_code=event.product, campaign=event.campaign, channel=event.channel, created=created)


@router.post("/events", response_model=FirmEventOut, status_code=201, responses=ERRORS)
def push_event(body: FirmEventIn, response: Response, principal: Principal = Depends(write_events),
               session: Session = Depends(get_session)) -> FirmEventOut:
    """A reward paid, a coupon used or an order matured (scope `analytics:write`): 201 stored, 200 a
    repeat of the same body, 409 another body under the same event id."""
    event, created = service.record_firm_event(session, principal=principal, body=body.model_dump())
    response.status_code = 201 if created else 200
    return _out(event, created, body.firm_customer_id)


@router.post("/events/batch", response_model=FirmEventBatchOut, status_code=201, responses=ERRORS)
def push_events(body: FirmEventBatchIn, response: Response, principal: Principal = Depends(write_events),
                session: Session = Depends(get_session)):
    """Up to 1,000 events, all or nothing (scope `analytics:write`)."""
    from siyu.integration.service import BatchRejected

    try:
        results = service.record_firm_events(session, principal=principal, items=body.items)
    except BatchRejected as exc:
        return JSONResponse({"detail": exc.message, "field": "items",
                             "errors": [{k: e[k] for k in ("index", "field", "detail")} for e in exc.errors]},
                            status_code=exc.status_code)
    created = sum(1 for _e, c in results if c)
    response.status_code = 201 if created else 200
    return FirmEventBatchOut(items=[_out(e, c, str(item.get("firm_customer_id")).strip())
                                    for (e, c), item in zip(results, body.items, strict=True)], created=created)
