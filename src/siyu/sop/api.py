"""REST API of SOP: a group set's calendar (each slot time with its state), slots added to a set or a
template, templates applied, owners' tasks, and customers enrolled in a customer SOP for an event
Siyu does not see itself (a course start, a maturity). Scopes `sop:read` and `sop:write`; every
answer is limited to the API key's corp."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from siyu.customers.models import Customer
from siyu.db import get_session
from siyu.errors import NotFound
from siyu.sop import service
from siyu.sop.jobs import request_plan
from siyu.tenancy.deps import client_ip, require_scope
from siyu.tenancy.principal import Principal
from siyu.tenancy.service import MAX_ID

router = APIRouter(prefix="/api/v1/sop", tags=["sop"])

ERRORS = {
    401: {"description": "no valid API key"},
    403: {"description": "the key lacks the scope"},
    422: {"description": "a parameter is not valid (`field` or `errors[].field` names it)"},
}
NOT_FOUND = {404: {"description": "no such group set, template or customer SOP in the key's corp"}}
read_sop = require_scope("sop:read")
write_sop = require_scope("sop:write")


class _In(BaseModel):
    model_config = ConfigDict(extra="ignore")


class SlotsIn(_In):
    title: str = Field(max_length=200)
    content_type: str = Field(max_length=30, description=", ".join(service.CONTENT_TYPES))
    time: str = Field(max_length=10, description="HH:MM, Asia/Shanghai")
    text: str = Field(max_length=5000, description="submitted to compliance; sent only once approved")
    weekdays: list[int] | None = Field(None, max_length=7, description="0 Monday … 6 Sunday (weekly slots)")
    date: dt.date | None = Field(None, description="one dated slot (group sets only)")
    working_days_only: bool = False
    channel: str = Field("group", max_length=16, description="group or moments")
    moment_tag_ids: list[str] = Field(default_factory=list, max_length=100)


class SlotOut(BaseModel):
    id: int
    title: str
    content_type: str
    channel: str
    weekday: int | None
    date: dt.date | None
    time: str
    working_days_only: bool
    template_id: int | None
    group_set_id: int | None


class EntryOut(BaseModel):
    slot_id: int
    title: str
    due_at: dt.datetime
    local_time: str
    state: str = Field(description=", ".join(service.RUN_STATES))
    sent_groups: int
    groups: int
    held_reason: str


class DayOut(BaseModel):
    date: dt.date
    working_day: bool
    entries: list[EntryOut]


class CalendarOut(BaseModel):
    group_set_id: int
    days: list[DayOut]


class ApplyIn(_In):
    template_id: int = Field(ge=1, le=MAX_ID)


class TemplateIn(_In):
    name: str = Field(max_length=200)
    description: str = Field("", max_length=2000)


class TemplateOut(BaseModel):
    id: int
    name: str
    description: str


class TaskOut(BaseModel):
    send_id: int
    slot_title: str
    group_set: str
    owner: str
    due_at: dt.datetime
    groups: int
    state: str


class EnrolIn(_In):
    customer_id: int = Field(ge=1, le=MAX_ID)
    event_at: dt.datetime = Field(description="when the event happens (a course start, a maturity), with its zone")
    advisor_userid: str = Field(max_length=64, description="the advisor who sends (WeCom user id)")


class EnrolOut(BaseModel):
    planned: list[dt.datetime]


def _slot_out(slot) -> SlotOut:
    return SlotOut(id=slot.id, title=slot.title, content_type=slot.content_type, channel=slot.channel,
                   weekday=slot.weekday, date=slot.on_date, time=service.format_time(slot.minute_of_day),
                   working_days_only=slot.working_days_only, template_id=slot.template_id,
                   group_set_id=slot.group_set_id)


@router.get("/group-sets/{set_id}/calendar", response_model=CalendarOut, responses={**ERRORS, **NOT_FOUND})
def get_calendar(set_id: int = Path(ge=1, le=MAX_ID), start: dt.date | None = None,
                 days: int = Query(7, ge=1, le=62), principal: Principal = Depends(read_sop),
                 session: Session = Depends(get_session)) -> CalendarOut:
    """The set's slot times from `start` (default: this week's Monday), each with its state (scope `sop:read`)."""
    group_set = service.get_set(session, corp_id=principal.corp_id, set_id=set_id)
    first = start or service.week_start(service.local_day(dt.datetime.now(dt.UTC)))
    grid = service.calendar(session, corp_id=principal.corp_id, set_id=group_set.id, first=first, days=days)
    return CalendarOut(group_set_id=group_set.id, days=[
        DayOut(date=d.day, working_day=d.working, entries=[
            EntryOut(slot_id=e.slot.id, title=e.slot.title, due_at=e.due_at, local_time=e.local_time, state=e.state,
                     sent_groups=e.sent, groups=e.total, held_reason=e.held_reason) for e in d.entries])
        for d in grid])


def _add(session: Session, principal: Principal, request: Request, body: SlotsIn, **owner) -> list[SlotOut]:
    slots = service.add_slots(session, principal=principal, text=body.text, content_type=body.content_type,
                              title=body.title, time=body.time, weekdays=body.weekdays, on_date=body.date,
                              working_days_only=body.working_days_only, channel=body.channel,
                              moment_tag_ids=body.moment_tag_ids, ip=client_ip(request), **owner)
    request_plan(session, corp_id=principal.corp_id)
    return [_slot_out(s) for s in slots]


@router.post("/group-sets/{set_id}/slots", response_model=list[SlotOut], status_code=201,
             responses={**ERRORS, **NOT_FOUND})
def add_set_slots(request: Request, body: SlotsIn, set_id: int = Path(ge=1, le=MAX_ID),
                  principal: Principal = Depends(write_sop), session: Session = Depends(get_session)) -> list[SlotOut]:
    """Slots on the set's own calendar: one per weekday, or one dated (scope `sop:write`); audited."""
    return _add(session, principal, request, body, set_id=set_id)


@router.post("/templates", response_model=TemplateOut, status_code=201, responses=ERRORS)
def create_template(request: Request, body: TemplateIn, principal: Principal = Depends(write_sop),
                    session: Session = Depends(get_session)) -> TemplateOut:
    t = service.create_template(session, principal=principal, name=body.name, description=body.description,
                                ip=client_ip(request))
    return TemplateOut(id=t.id, name=t.name, description=t.description)


@router.post("/templates/{template_id}/slots", response_model=list[SlotOut], status_code=201,
             responses={**ERRORS, **NOT_FOUND})
def add_template_slots(request: Request, body: SlotsIn, template_id: int = Path(ge=1, le=MAX_ID),
                       principal: Principal = Depends(write_sop),
                       session: Session = Depends(get_session)) -> list[SlotOut]:
    """Weekly slots of a template (scope `sop:write`)."""
    return _add(session, principal, request, body, template_id=template_id)


@router.post("/group-sets/{set_id}/templates", status_code=204, responses={**ERRORS, **NOT_FOUND})
def apply_template(request: Request, body: ApplyIn, set_id: int = Path(ge=1, le=MAX_ID),
                   principal: Principal = Depends(write_sop), session: Session = Depends(get_session)) -> None:
    """Apply a template to the set (scope `sop:write`)."""
    service.apply_template(session, principal=principal, set_id=set_id, template_id=body.template_id,
                           ip=client_ip(request))
    request_plan(session, corp_id=principal.corp_id)


@router.get("/tasks", response_model=list[TaskOut], responses=ERRORS)
def list_tasks(principal: Principal = Depends(read_sop), session: Session = Depends(get_session)) -> list[TaskOut]:
    """The owners' sends of the coming week waiting for them to confirm in WeCom (scope `sop:read`)."""
    return [TaskOut(send_id=t.send.id, slot_title=t.slot.title, group_set=t.set_name, owner=t.owner_name,
                    due_at=t.run.due_at, groups=len(t.send.chat_ids), state=t.state)
            for t in service.owner_tasks(session, principal=principal)]


@router.post("/journeys/{journey_id}/enrolments", response_model=EnrolOut, status_code=201,
             responses={**ERRORS, **NOT_FOUND})
def enrol(body: EnrolIn, journey_id: int = Path(ge=1, le=MAX_ID), principal: Principal = Depends(write_sop),
          session: Session = Depends(get_session)) -> EnrolOut:
    """Enrol a customer for an event Siyu does not see itself, e.g. a course start or a product's
    maturity (steps at negative days go out before it). Idempotent per step and customer (scope `sop:write`)."""
    journey = service.get_journey(session, corp_id=principal.corp_id, journey_id=journey_id)
    customer = session.get(Customer, body.customer_id)
    if customer is None or customer.corp_id != principal.corp_id:
        raise NotFound("customer not found", field="customer_id")
    event_at = body.event_at if body.event_at.tzinfo else body.event_at.replace(tzinfo=service.CALENDAR_ZONE)
    sends = service.enrol(session, corp_id=principal.corp_id, journey=journey, customer_id=customer.id,
                          advisor_userid=body.advisor_userid, event_at=event_at)
    return EnrolOut(planned=[s.due_at for s in sends])
