"""The customer picker (客户选择器) other pages embed where a person chooses customers: a search box
(part of a name, a remark, a phone's last digits, an id prefix) whose matches come back as a
fragment of choices showing masked names, advisors and add dates — never a typed id. What it lists
is what the caller may see (an advisor: their own customers), optionally one advisor's customers.
Included by `customers.views` before its `/customers/{customer_id}` route."""

from __future__ import annotations

import re

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.console.forms import FieldErrors
from siyu.console.templating import render
from siyu.customers import service
from siyu.db import get_session
from siyu.errors import InvalidInput, SiyuError
from siyu.tenancy.deps import current_staff
from siyu.tenancy.models import Staff
from siyu.tenancy.principal import Principal

router = APIRouter(include_in_schema=False)

PICKER = "/customers/picker"
PICKER_SIZE = 20
FIELD = re.compile(r"^[a-z_]{1,40}$")


@router.get(PICKER)
def customer_picker(
    request: Request,
    picker_q: str = Query("", max_length=100),
    field: str = Query("external_userid", max_length=40),
    multi: bool = Query(False),
    advisor: str = Query("", max_length=64),
    principal: Principal = Depends(current_staff),
    session: Session = Depends(get_session),
):
    rows, errors = [], FieldErrors()
    try:
        if not FIELD.match(field):
            raise InvalidInput("not a form field name", field="field")
        staff_id = None
        if advisor.strip():
            staff_id = session.scalar(select(Staff.id).where(Staff.corp_id == principal.corp_id,
                                                             Staff.wecom_userid == advisor.strip()))
            if staff_id is None:
                raise InvalidInput("no member of staff with this WeCom id", field="advisor")
        filters = service.make_filters(q=picker_q, staff_id=staff_id)
        rows = service.list_customers(session, principal=principal, filters=filters, limit=PICKER_SIZE).rows
    except SiyuError as exc:
        errors.add(request, exc, "picker_q")
    return render(request, "customers/_picker.html", {
        "rows": rows, "field": field, "multi": multi, "errors": errors, "searched": bool(picker_q.strip()),
        "channel_names": service.channel_names(session, corp_id=principal.corp_id,
                                               states=[f.state for r in rows for f in r.follows]),
    })
