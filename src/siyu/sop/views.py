"""Console pages of SOP: the overview (group sets' calendars, templates, customer SOPs), a set's
calendar (week and month) with each slot time's state and the form that builds the week, a
template's week, the owners' tasks, and a customer SOP with its steps.

Administrators and operations build; advisors see their tasks and the calendars; compliance and
auditors read. Thin: parse the form, call the service."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from siyu.communities.models import GroupSet
from siyu.console.forms import FieldErrors
from siyu.console.templating import render
from siyu.db import get_session, utcnow
from siyu.errors import InvalidInput, SiyuError
from siyu.sop import service
from siyu.sop.jobs import request_plan
from siyu.tenancy.deps import client_ip, require_roles
from siyu.tenancy.principal import Principal

router = APIRouter(include_in_schema=False)

WRITERS = ("administrator", "operations")
readers = require_roles(*WRITERS, "advisor", "compliance", "auditor")
writers = require_roles(*WRITERS)
MAX_ID = 2**63 - 1


def _labels() -> dict:
    return {"content_types": service.CONTENT_TYPES, "channels": service.CHANNELS, "weekdays": service.WEEKDAYS,
            "run_states": service.RUN_STATES, "journey_events": service.JOURNEY_EVENTS,
            "fmt_time": service.format_time}


@router.get("/sop")
def overview(request: Request, principal: Principal = Depends(readers),
             session: Session = Depends(get_session)) -> Response:
    return _overview(request, session, principal)


def _overview(request: Request, session: Session, principal: Principal, *, status_code: int = 200,
              **extra) -> Response:
    from sqlalchemy import select

    sets = list(session.scalars(select(GroupSet).where(GroupSet.corp_id == principal.corp_id)
                                .order_by(GroupSet.name)))
    context = {"sets": sets, "templates": service.list_templates(session, corp_id=principal.corp_id),
               "journeys": service.list_journeys(session, corp_id=principal.corp_id),
               "may_write": principal.has_role(*WRITERS), "errors": FieldErrors(), "form": {},
               "journey_form": {}, "journey_errors": FieldErrors(),
               "settings": service.settings_for(session, corp_id=principal.corp_id),
               "settings_errors": FieldErrors(), "may_configure": principal.has_role("administrator"),
               **_labels()}
    context.update(extra)
    return render(request, "sop/index.html", context, status_code=status_code)


@router.post("/sop/settings")
def settings_save(request: Request, app_agent_id: str = Form("", max_length=12),
                  notice_lead_minutes: str = Form("", max_length=6),
                  confirm_window_minutes: str = Form("", max_length=6),
                  late_after_minutes: str = Form("", max_length=6),
                  principal: Principal = Depends(require_roles("administrator")),
                  session: Session = Depends(get_session)) -> Response:
    def number(value: str, field: str) -> int | None:
        if not value.strip():
            return None
        if not value.strip().isdigit():
            raise InvalidInput("a whole number", field=field)
        return int(value)

    try:
        with session.begin_nested():
            service.update_settings(session, principal=principal,
                                    app_agent_id=number(app_agent_id, "app_agent_id"),
                                    notice_lead_minutes=number(notice_lead_minutes, "notice_lead_minutes"),
                                    confirm_window_minutes=number(confirm_window_minutes, "confirm_window_minutes"),
                                    late_after_minutes=number(late_after_minutes, "late_after_minutes"))
    except SiyuError as exc:
        return _overview(request, session, principal, status_code=exc.status_code,
                         settings_errors=FieldErrors.of(request, exc))
    return RedirectResponse("/sop", status_code=303)


@router.post("/sop/templates")
def template_create(request: Request, name: str = Form("", max_length=200),
                    description: str = Form("", max_length=2000), principal: Principal = Depends(writers),
                    session: Session = Depends(get_session)) -> Response:
    try:
        with session.begin_nested():
            template = service.create_template(session, principal=principal, name=name, description=description,
                                               ip=client_ip(request))
    except SiyuError as exc:
        return _overview(request, session, principal, status_code=exc.status_code,
                         form={"name": name, "description": description}, errors=FieldErrors.of(request, exc))
    return RedirectResponse(f"/sop/templates/{template.id}", status_code=303)


# --- a set's calendar -------------------------------------------------------------------------------------------


def _first(view: str, start: str) -> tuple[dt.date, int]:
    try:
        day = dt.date.fromisoformat(start) if start else service.local_day(utcnow())
    except ValueError:
        raise InvalidInput("a date is YYYY-MM-DD", field="start") from None
    if view == "month":
        first = day.replace(day=1)
        nxt = (first + dt.timedelta(days=32)).replace(day=1)
        grid_start = service.week_start(first)
        return grid_start, ((nxt - grid_start).days + 6) // 7 * 7
    return service.week_start(day), 7


def _set_page(request: Request, session: Session, principal: Principal, set_id: int, *, view: str = "week",
              start: str = "", status_code: int = 200, **extra) -> Response:
    group_set = service.get_set(session, corp_id=principal.corp_id, set_id=set_id)
    view = view if view in ("week", "month") else "week"
    first, days = _first(view, start)
    anchor = dt.date.fromisoformat(start) if start else service.local_day(utcnow())
    if view == "month":
        month_first = anchor.replace(day=1)
        prev = (month_first - dt.timedelta(days=1)).replace(day=1)
        nxt = (month_first + dt.timedelta(days=32)).replace(day=1)
    else:
        prev, nxt = first - dt.timedelta(days=7), first + dt.timedelta(days=7)
    grid = service.calendar(session, corp_id=principal.corp_id, set_id=group_set.id, first=first, days=days)
    applied = service.applied_templates(session, corp_id=principal.corp_id, set_id=group_set.id)
    owners = service.owners_of_set(session, corp_id=principal.corp_id, set_id=group_set.id)
    context = {"set": group_set, "grid": grid, "view": view, "first": first, "prev": prev, "next": nxt,
               "anchor": anchor, "applied": applied, "owners": owners,
               "templates": [t for t in service.list_templates(session, corp_id=principal.corp_id)
                             if t not in applied],
               "slots": service.set_slots(session, corp_id=principal.corp_id, set_id=group_set.id),
               "may_write": principal.has_role(*WRITERS), "errors": FieldErrors(), "form": {},
               "saved": request.query_params.get("saved") == "1", "today": service.local_day(utcnow()),
               "action": f"/sop/sets/{group_set.id}/slots", **_labels()}
    context.update(extra)
    return render(request, "sop/set.html", context, status_code=status_code)


@router.get("/sop/sets/{set_id}")
def set_calendar(request: Request, set_id: int = Path(ge=1, le=MAX_ID), view: str = Query("week", max_length=5),
                 start: str = Query("", max_length=10), principal: Principal = Depends(readers),
                 session: Session = Depends(get_session)) -> Response:
    try:
        return _set_page(request, session, principal, set_id, view=view, start=start)
    except InvalidInput as exc:
        return _set_page(request, session, principal, set_id, view=view, status_code=exc.status_code,
                         errors=FieldErrors.of(request, exc))


def _slot_form(form) -> dict:
    return {"title": form.get("title", ""), "text": form.get("text", ""), "time": form.get("time", ""),
            "content_type": form.get("content_type", ""), "date": form.get("date", ""),
            "weekdays": [int(d) for d in form.getlist("weekday") if str(d).isdigit()],
            "working_days_only": form.get("working_days_only") == "1", "channel": form.get("channel", "group"),
            "moment_tags": form.get("moment_tags", "")}


def _add_slots(session: Session, principal: Principal, request: Request, values: dict, **owner) -> None:
    tags = [t for t in values["moment_tags"].replace("，", ",").split(",") if t.strip()]
    service.add_slots(session, principal=principal, text=values["text"], content_type=values["content_type"],
                      title=values["title"], time=values["time"], weekdays=values["weekdays"] or None,
                      on_date=values["date"] or None, working_days_only=values["working_days_only"],
                      channel=values["channel"], moment_tag_ids=[t.strip() for t in tags], ip=client_ip(request),
                      **owner)


@router.post("/sop/sets/{set_id}/slots")
async def set_add_slots(request: Request, set_id: int = Path(ge=1, le=MAX_ID),
                        principal: Principal = Depends(writers), session: Session = Depends(get_session)) -> Response:
    values = _slot_form(await request.form())
    try:
        with session.begin_nested():
            _add_slots(session, principal, request, values, set_id=set_id)
            request_plan(session, corp_id=principal.corp_id)
    except SiyuError as exc:
        return _set_page(request, session, principal, set_id, status_code=exc.status_code, form=values,
                         errors=FieldErrors.of(request, exc))
    start = values["date"] if values["date"] else ""
    return RedirectResponse(f"/sop/sets/{set_id}?saved=1" + (f"&start={start}" if start else ""), status_code=303)


@router.post("/sop/sets/{set_id}/templates")
def set_apply_template(request: Request, set_id: int = Path(ge=1, le=MAX_ID), template_id: str = Form(""),
                       principal: Principal = Depends(writers), session: Session = Depends(get_session)) -> Response:
    try:
        with session.begin_nested():
            service.apply_template(session, principal=principal, set_id=set_id,
                                   template_id=int(template_id) if template_id.isdigit() else None,
                                   ip=client_ip(request))
            request_plan(session, corp_id=principal.corp_id)
    except SiyuError as exc:
        return _set_page(request, session, principal, set_id, status_code=exc.status_code,
                         errors=FieldErrors.of(request, exc))
    return RedirectResponse(f"/sop/sets/{set_id}?saved=1", status_code=303)


@router.post("/sop/sets/{set_id}/templates/{template_id}/remove")
def set_remove_template(request: Request, set_id: int = Path(ge=1, le=MAX_ID),
                        template_id: int = Path(ge=1, le=MAX_ID), principal: Principal = Depends(writers),
                        session: Session = Depends(get_session)) -> Response:
    service.remove_template(session, principal=principal, set_id=set_id, template_id=template_id,
                            ip=client_ip(request))
    return RedirectResponse(f"/sop/sets/{set_id}?saved=1", status_code=303)


@router.post("/sop/slots/{slot_id}/remove")
def slot_remove(request: Request, slot_id: int = Path(ge=1, le=MAX_ID), back: str = Form("/sop", max_length=200),
                principal: Principal = Depends(writers), session: Session = Depends(get_session)) -> Response:
    service.remove_slot(session, principal=principal, slot_id=slot_id, ip=client_ip(request))
    return RedirectResponse(back if back.startswith("/sop/") else "/sop", status_code=303)


# --- templates --------------------------------------------------------------------------------------------------


def _template_page(request: Request, session: Session, principal: Principal, template_id: int, *,
                   status_code: int = 200, **extra) -> Response:
    template = service.get_template(session, corp_id=principal.corp_id, template_id=template_id)
    slots = service.template_slots(session, corp_id=principal.corp_id, template_id=template.id)
    by_day = {d: [s for s in slots if s.weekday == d] for d in range(7)}
    context = {"template": template, "by_day": by_day, "slots": slots, "may_write": principal.has_role(*WRITERS),
               "errors": FieldErrors(), "form": {}, "action": f"/sop/templates/{template.id}/slots",
               "saved": request.query_params.get("saved") == "1", **_labels()}
    context.update(extra)
    return render(request, "sop/template.html", context, status_code=status_code)


@router.get("/sop/templates/{template_id}")
def template_page(request: Request, template_id: int = Path(ge=1, le=MAX_ID), principal: Principal = Depends(readers),
                  session: Session = Depends(get_session)) -> Response:
    return _template_page(request, session, principal, template_id)


@router.post("/sop/templates/{template_id}/slots")
async def template_add_slots(request: Request, template_id: int = Path(ge=1, le=MAX_ID),
                             principal: Principal = Depends(writers),
                             session: Session = Depends(get_session)) -> Response:
    values = _slot_form(await request.form())
    values["date"] = ""
    try:
        with session.begin_nested():
            _add_slots(session, principal, request, values, template_id=template_id)
            request_plan(session, corp_id=principal.corp_id)
    except SiyuError as exc:
        return _template_page(request, session, principal, template_id, status_code=exc.status_code, form=values,
                              errors=FieldErrors.of(request, exc))
    return RedirectResponse(f"/sop/templates/{template_id}?saved=1", status_code=303)


# --- owners' tasks ----------------------------------------------------------------------------------------------


@router.get("/sop/tasks")
def tasks_page(request: Request, principal: Principal = Depends(readers),
               session: Session = Depends(get_session)) -> Response:
    return render(request, "sop/tasks.html", {"tasks": service.owner_tasks(session, principal=principal),
                                              "mine_only": not principal.has_role(*WRITERS), **_labels()})


# --- customer SOP -----------------------------------------------------------------------------------------------


@router.post("/sop/journeys")
def journey_create(request: Request, name: str = Form("", max_length=200), event: str = Form("", max_length=30),
                   filter_channel: str = Form("", max_length=200), filter_tag: str = Form("", max_length=200),
                   filter_stage: str = Form("", max_length=200), principal: Principal = Depends(writers),
                   session: Session = Depends(get_session)) -> Response:
    values = {"name": name, "event": event, "filter_channel": filter_channel, "filter_tag": filter_tag,
              "filter_stage": filter_stage}
    try:
        with session.begin_nested():
            journey = service.create_journey(session, principal=principal, ip=client_ip(request), **values)
    except SiyuError as exc:
        return _overview(request, session, principal, status_code=exc.status_code, journey_form=values,
                         journey_errors=FieldErrors.of(request, exc))
    return RedirectResponse(f"/sop/journeys/{journey.id}", status_code=303)


def _journey_page(request: Request, session: Session, principal: Principal, journey_id: int, *,
                  status_code: int = 200, **extra) -> Response:
    journey = service.get_journey(session, corp_id=principal.corp_id, journey_id=journey_id)
    context = {"journey": journey, "steps": service.journey_steps(session, corp_id=principal.corp_id,
                                                                  journey_id=journey.id),
               "sends": service.journey_sends(session, corp_id=principal.corp_id, journey_id=journey.id),
               "may_write": principal.has_role(*WRITERS), "errors": FieldErrors(), "form": {}, **_labels()}
    context.update(extra)
    return render(request, "sop/journey.html", context, status_code=status_code)


@router.get("/sop/journeys/{journey_id}")
def journey_page(request: Request, journey_id: int = Path(ge=1, le=MAX_ID), principal: Principal = Depends(readers),
                 session: Session = Depends(get_session)) -> Response:
    return _journey_page(request, session, principal, journey_id)


@router.post("/sop/journeys/{journey_id}/steps")
def journey_add_step(request: Request, journey_id: int = Path(ge=1, le=MAX_ID),
                     day_offset: str = Form("", max_length=10), time: str = Form("", max_length=10),
                     title: str = Form("", max_length=200), text: str = Form("", max_length=5000),
                     principal: Principal = Depends(writers), session: Session = Depends(get_session)) -> Response:
    values = {"day_offset": day_offset, "time": time, "title": title, "text": text}
    try:
        with session.begin_nested():
            service.add_step(session, principal=principal, journey_id=journey_id, ip=client_ip(request), **values)
    except SiyuError as exc:
        return _journey_page(request, session, principal, journey_id, status_code=exc.status_code, form=values,
                             errors=FieldErrors.of(request, exc))
    return RedirectResponse(f"/sop/journeys/{journey_id}", status_code=303)
