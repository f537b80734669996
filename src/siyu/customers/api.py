"""REST API of the customers domain: search and read the corp's customers, link a customer to the
firm's own customer id.

Every answer is limited to the API key's corp; another corp's customer is simply not found. Names
and remarks are masked unless `unmask=true` is asked for, and every such read is audited.
Scopes: `customers:read` to read, `customers:write` to link."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Depends, Path, Query, Request
from sqlalchemy.orm import Session

from siyu.customers import service
from siyu.customers.schemas import (
    EXTERNAL_USERID_PATTERN,
    CustomerDetailOut,
    CustomerOut,
    CustomerPageOut,
    FollowOut,
    LinkIn,
    RiskOut,
    Stage,
)
from siyu.db import get_session
from siyu.errors import Forbidden
from siyu.tenancy.deps import API_ERRORS, client_ip, require_scope
from siyu.tenancy.principal import Principal
from siyu.tenancy.service import MAX_ID, UNMASK_SCOPE

router = APIRouter(prefix="/api/v1/customers", tags=["customers"])

ERRORS = API_ERRORS
NOT_FOUND = {404: {"description": "no such customer in the key's corp"}}
read_customers = require_scope("customers:read")
write_customers = require_scope("customers:write")
EXTERNAL_USERID = Path(pattern=EXTERNAL_USERID_PATTERN, description="WeCom's external_userid of the customer")
UNMASK = Query(False, description="names and remarks in clear (scope pii:unmask; audited)")


def _follow_out(f: service.FollowInfo, remark: str | None = None) -> FollowOut:
    return FollowOut(wecom_userid=f.wecom_userid, staff_id=f.staff_id, staff_name=f.staff_name, status=f.status,
                     state=f.state, add_time=f.add_time, add_way=f.add_way, ended_at=f.ended_at,
                     remark=remark if remark is not None else f.remark_masked)


def _customer_out(row: service.CustomerRow, name: str | None = None) -> dict:
    return dict(external_userid=row.external_userid, name=name if name is not None else row.name_masked,
                gender=row.gender, stage=row.stage, firm_customer_id=row.firm_customer_id,
                first_added_at=row.first_added_at, tags=row.tags, follows=[_follow_out(f) for f in row.follows])


@router.get("", response_model=CustomerPageOut, responses=ERRORS)
def list_customers(
    request: Request,
    q: str = Query("", max_length=service.MAX_QUERY,
                   description="exact name, external_userid, firm customer id or advisor's remark"),
    stage: Stage | None = Query(None, description="lifecycle stage"),
    staff_id: int | None = Query(None, ge=1, le=MAX_ID, description="customers this member of staff follows"),
    tag_id: int | None = Query(None, ge=1, le=MAX_ID, description="customers with this corp tag"),
    state: str = Query("", max_length=service.MAX_STATE, description="channel `state` prefix"),
    added_from: dt.date | None = Query(None, description="first added on or after this day (Asia/Shanghai)"),
    added_to: dt.date | None = Query(None, description="first added on or before this day (Asia/Shanghai)"),
    after: str | None = Query(None, max_length=40, description="the previous page's `next_after`"),
    limit: int = Query(service.PAGE_SIZE, ge=1, le=service.MAX_PAGE_SIZE),
    unmask: bool = UNMASK,
    principal: Principal = Depends(read_customers),
    session: Session = Depends(get_session),
) -> CustomerPageOut:
    """The corp's customers, newest first, keyset-paged (scope `customers:read`)."""
    _may_unmask(principal, unmask)
    filters = service.make_filters(q=q, stage=stage, staff_id=staff_id, tag_id=tag_id, state=state,
                                   added_from=added_from, added_to=added_to)
    page = service.list_customers(session, principal=principal, filters=filters, after=after, limit=limit)
    names = service.unmask_names(session, principal=principal, customer_ids=[r.id for r in page.rows],
                                 ip=client_ip(request)) if unmask else None
    return CustomerPageOut(items=[CustomerOut(**_customer_out(r, None if names is None else names.get(r.id) or ""))
                                  for r in page.rows], next_after=page.next_after)


def _may_unmask(principal: Principal, unmask: bool) -> None:
    """Names and remarks in clear need the scope pii:unmask itself ("*" does not include it)."""
    if unmask and UNMASK_SCOPE not in principal.scopes:
        raise Forbidden("this API key lacks the scope %(scope)s", field="unmask", params={"scope": UNMASK_SCOPE})


def _detail_out(detail: service.CustomerDetail, unmasked: service.Unmasked | None = None) -> CustomerDetailOut:
    base = _customer_out(detail.row, (unmasked.name or "") if unmasked else None)
    base["tags"] = [t.name for t in detail.tags]
    if unmasked is not None:
        base["follows"] = [_follow_out(f, unmasked.remarks.get(f.id) or "") for f in detail.row.follows]
    risk = detail.risk
    return CustomerDetailOut(**base, unionid=detail.unionid, lost_at=detail.lost_at,
                             risk=RiskOut(level=risk.level, expires_at=risk.expires_at, expired=risk.expired)
                             if risk else None)


@router.get("/{external_userid}", response_model=CustomerDetailOut, responses={**ERRORS, **NOT_FOUND})
def get_customer(
    request: Request,
    external_userid: str = EXTERNAL_USERID,
    unmask: bool = UNMASK,
    principal: Principal = Depends(read_customers),
    session: Session = Depends(get_session),
) -> CustomerDetailOut:
    """One customer with follows, tags and the risk level in force (scope `customers:read`)."""
    _may_unmask(principal, unmask)
    detail = service.customer_detail_by_external_id(session, principal=principal, external_userid=external_userid)
    unmasked = service.unmask_customer(session, principal=principal, customer_id=detail.row.id,
                                       ip=client_ip(request)) if unmask else None
    return _detail_out(detail, unmasked)


@router.post("/{external_userid}/link", response_model=CustomerDetailOut,
             responses={**ERRORS, **NOT_FOUND, 409: {"description": "another customer has this firm customer id"}})
def link_customer(
    request: Request,
    body: LinkIn,
    external_userid: str = EXTERNAL_USERID,
    principal: Principal = Depends(write_customers),
    session: Session = Depends(get_session),
) -> CustomerDetailOut:
    """Link the customer to the firm's own customer id (scope `customers:write`); audited."""
    service.link_firm_customer(session, principal=principal, external_userid=external_userid,
                               firm_customer_id=body.firm_customer_id, ip=client_ip(request))
    return _detail_out(service.customer_detail_by_external_id(session, principal=principal,
                                                              external_userid=external_userid))
