"""Console pages of joining a group set: the set's join ways (群活码: QR code, the groups listed,
rotations, alerts), its groups' fill levels, joins per day by channel and by advisor, the rollover
settings, the welcome-to-group texts (group welcome, rules, announcement — reviewed by compliance),
and the owners' tasks (post the announcement). Thin: parse the form, call the service.

Included by `siyu.communities.views` before its `/groups/{id}` routes."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Path, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from siyu.communities import group_welcome, joinways
from siyu.console.forms import FieldErrors
from siyu.console.qr import qr_png
from siyu.console.templating import render
from siyu.db import get_session
from siyu.errors import NotFound, SiyuError
from siyu.tenancy.deps import client_ip, require_roles
from siyu.tenancy.principal import Principal

router = APIRouter(include_in_schema=False)

WRITERS = ("administrator", "operations")
readers = require_roles(*WRITERS, "advisor")
writers = require_roles(*WRITERS)
MAX_ID = 2**63 - 1
SET_ID = Path(ge=1, le=MAX_ID)


def _code_options(session: Session, corp_id: int) -> list[tuple[int, str]]:
    from sqlalchemy import select

    from siyu.acquisition.models import ChannelCode

    return [(c.id, c.name) for c in session.scalars(select(ChannelCode).where(ChannelCode.corp_id == corp_id)
                                                    .order_by(ChannelCode.name).limit(500))]


def _page(request: Request, session: Session, principal: Principal, set_id: int, *, status_code: int = 200,
          **extra) -> Response:
    from siyu.communities import service

    group_set = service.get_set(session, principal=principal, set_id=set_id)
    view = joinways.overview(session, principal=principal, set_id=group_set.id)
    chart = {"key": "set_joins", "kind": "bar", "x": view.series["x"], "series": view.series["series"]}
    context = {"set": group_set, "o": view, "chart": chart, "may_write": principal.has_role(*WRITERS),
               "texts": group_welcome.texts(session, corp_id=principal.corp_id, set_id=group_set.id),
               "tasks": group_welcome.list_tasks(session, principal=principal, set_id=group_set.id),
               "codes": _code_options(session, principal.corp_id), "when_full": joinways.WHEN_FULL,
               "gates": joinways.gates(session, corp_id=principal.corp_id, set_id=group_set.id),
               "gate_options": joinways.gate_options(session, corp_id=principal.corp_id),
               "statuses": joinways.STATUSES, "errors": FieldErrors(), "form": None,
               "saved": request.query_params.get("saved") == "1"}
    context.update(extra)
    return render(request, "communities/joining.html", context, status_code=status_code)


@router.get("/groups/sets/{set_id}/join-ways/{way_id}/qr.png")
def join_way_qr(set_id: int = SET_ID, way_id: int = Path(ge=1, le=MAX_ID), principal: Principal = Depends(readers),
                session: Session = Depends(get_session)) -> Response:
    """The join way's QR, drawn here from WeCom's link so that the page needs no outside image."""
    way = joinways.get_way(session, corp_id=principal.corp_id, way_id=way_id)
    if way.group_set_id != set_id or not way.qr_code:
        raise NotFound("join way not found", field="join_way_id")
    return qr_png(way.qr_code, scale=8)


@router.get("/groups/sets/{set_id}/joining")
def joining_page(request: Request, set_id: int = SET_ID, principal: Principal = Depends(readers),
                 session: Session = Depends(get_session)) -> Response:
    return _page(request, session, principal, set_id)


@router.post("/groups/sets/{set_id}/joining")
def joining_settings(request: Request, set_id: int = SET_ID, capacity: str = Form("", max_length=10),
                     rotate_at: str = Form("", max_length=10), when_full: str = Form("", max_length=20),
                     room_base_name: str = Form("", max_length=200), room_base_id: str = Form("", max_length=10),
                     principal: Principal = Depends(writers), session: Session = Depends(get_session)) -> Response:
    form = {"capacity": capacity, "rotate_at": rotate_at, "when_full": when_full, "room_base_name": room_base_name,
            "room_base_id": room_base_id}
    try:
        with session.begin_nested():
            joinways.configure(session, principal=principal, set_id=set_id, capacity=capacity, rotate_at=rotate_at,
                               when_full=when_full or None, room_base_name=room_base_name,
                               room_base_id=room_base_id, ip=client_ip(request))
    except SiyuError as exc:
        return _page(request, session, principal, set_id, status_code=exc.status_code, form=form,
                     errors=FieldErrors.of(request, exc, "capacity"))
    return RedirectResponse(f"/groups/sets/{set_id}/joining?saved=1", status_code=303)


@router.post("/groups/sets/{set_id}/join-ways")
def join_way_create(request: Request, set_id: int = SET_ID, channel_code_id: str = Form("", max_length=30),
                    principal: Principal = Depends(writers), session: Session = Depends(get_session)) -> Response:
    try:
        with session.begin_nested():
            joinways.create_way(session, principal=principal, set_id=set_id, channel_code_id=channel_code_id or None,
                                ip=client_ip(request))
    except SiyuError as exc:
        return _page(request, session, principal, set_id, status_code=exc.status_code,
                     errors=FieldErrors.of(request, exc, "channel_code_id"))
    return RedirectResponse(f"/groups/sets/{set_id}/joining?saved=1", status_code=303)


@router.post("/groups/sets/{set_id}/join-ways/{way_id}/delete")
def join_way_delete(request: Request, set_id: int = SET_ID, way_id: int = Path(ge=1, le=MAX_ID),
                    principal: Principal = Depends(writers), session: Session = Depends(get_session)) -> Response:
    way = joinways.get_way(session, corp_id=principal.corp_id, way_id=way_id)
    joinways.delete_way(session, principal=principal, way_id=way.id, ip=client_ip(request))
    return RedirectResponse(f"/groups/sets/{way.group_set_id}/joining?saved=1", status_code=303)


@router.post("/groups/sets/{set_id}/welcome")
def welcome_save(request: Request, set_id: int = SET_ID, welcome_text: str = Form("", max_length=5000),
                 rules_text: str = Form("", max_length=5000), announcement_text: str = Form("", max_length=5000),
                 principal: Principal = Depends(writers), session: Session = Depends(get_session)) -> Response:
    try:
        with session.begin_nested():
            group_welcome.save_texts(session, principal=principal, set_id=set_id, welcome_text=welcome_text,
                                     rules_text=rules_text, announcement_text=announcement_text,
                                     ip=client_ip(request))
    except SiyuError as exc:
        return _page(request, session, principal, set_id, status_code=exc.status_code,
                     welcome_form={"welcome_text": welcome_text, "rules_text": rules_text,
                                   "announcement_text": announcement_text},
                     errors=FieldErrors.of(request, exc, "welcome_text"))
    return RedirectResponse(f"/groups/sets/{set_id}/joining?saved=1#welcome", status_code=303)


@router.post("/groups/sets/{set_id}/tasks/{task_id}/done")
def task_done(request: Request, set_id: int = SET_ID, task_id: int = Path(ge=1, le=MAX_ID),
              principal: Principal = Depends(readers), session: Session = Depends(get_session)) -> Response:
    group_welcome.complete_task(session, principal=principal, task_id=task_id, ip=client_ip(request))
    return RedirectResponse(f"/groups/sets/{set_id}/joining?saved=1#tasks", status_code=303)


@router.post("/groups/sets/{set_id}/gates")
def gate_link(request: Request, set_id: int = SET_ID, gated_community_id: str = Form("", max_length=30),
              principal: Principal = Depends(writers), session: Session = Depends(get_session)) -> Response:
    try:
        with session.begin_nested():
            joinways.link_gate(session, principal=principal, set_id=set_id, gated_community_id=gated_community_id,
                               ip=client_ip(request))
    except SiyuError as exc:
        return _page(request, session, principal, set_id, status_code=exc.status_code,
                     errors=FieldErrors.of(request, exc, "gated_community_id"))
    return RedirectResponse(f"/groups/sets/{set_id}/joining?saved=1", status_code=303)
