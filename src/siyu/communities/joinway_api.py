"""REST API of joining a group set: its join ways (群活码) with their QR codes and the groups listed,
fill levels, joins by channel and advisor, the rollover settings, and the welcome-to-group texts.
Scopes `communities:read` and `communities:write`; limited to the key's corp. Included by
`siyu.communities.api` under /api/v1/communities."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Literal

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from siyu.communities import group_welcome, joinways
from siyu.db import get_session
from siyu.tenancy.deps import client_ip, require_scope
from siyu.tenancy.principal import Principal
from siyu.tenancy.service import MAX_ID

router = APIRouter(tags=["communities"])

ERRORS = {
    401: {"description": "no valid API key"},
    403: {"description": "the key lacks the scope"},
    404: {"description": "no such group set or join way in the key's corp"},
    422: {"description": "a parameter is not valid (`field` or `errors[].field` names it)"},
}
read_communities = require_scope("communities:read")
write_communities = require_scope("communities:write")
SET_ID = Path(ge=1, le=MAX_ID)


class JoinWayOut(BaseModel):
    id: int
    state: str = Field(description="what members who joined by it carry in WeCom")
    channel_code_id: int | None
    channel_name: str
    qr_code: str | None = Field(description="the QR code (image URL); None while WeCom is making it")
    status: Literal["active", "exhausted", "deleted"]
    chat_names: list[str] = Field(description="the groups WeCom lists now, in order")
    rotations: int
    rotated_at: dt.datetime | None
    exhausted_at: dt.datetime | None
    last_error: str | None
    joins: int


class GroupFillOut(BaseModel):
    id: int
    name: str
    member_count: int
    capacity: int
    rotate_at: int
    listed: bool
    percent: int


class JoiningSettings(BaseModel):
    capacity: int
    rotate_at: int
    when_full: Literal["alert", "auto_create"]
    room_base_name: str
    room_base_id: int


class JoiningOut(BaseModel):
    settings: JoiningSettings
    join_ways: list[JoinWayOut]
    groups: list[GroupFillOut]
    joins_by_channel: dict = Field(description="x: days (Asia/Shanghai); series: one per channel name")
    joins_by_advisor: list[tuple[str, int]]
    exhausted: bool


class JoiningPatch(BaseModel):
    capacity: int | None = Field(None, description="200, or 500 for a certified corp")
    rotate_at: int | None = Field(None, description="members at which a group leaves the join way (< capacity)")
    when_full: Literal["alert", "auto_create"] | None = None
    room_base_name: str | None = Field(None, max_length=200)
    room_base_id: int | None = None


class JoinWayIn(BaseModel):
    channel_code_id: int | None = Field(None, ge=1, le=MAX_ID, description="hand it out through this channel code")


class WelcomeTexts(BaseModel):
    welcome_text: str | None = Field(None, max_length=5000)
    rules_text: str | None = Field(None, max_length=5000)
    announcement_text: str | None = Field(None, max_length=5000)


class WelcomeTextOut(BaseModel):
    latest: str
    in_force: str | None = Field(description="the approved version that goes out")
    pending: bool


class WelcomeOut(BaseModel):
    welcome: WelcomeTextOut
    rules: WelcomeTextOut
    announcement: WelcomeTextOut


def _joining_out(session: Session, principal: Principal, set_id: int) -> JoiningOut:
    view = joinways.overview(session, principal=principal, set_id=set_id)
    s = view.settings
    return JoiningOut(settings=JoiningSettings(capacity=s.capacity, rotate_at=s.rotate_at, when_full=s.when_full,
                                               room_base_name=s.room_base_name, room_base_id=s.room_base_id),
                      join_ways=[JoinWayOut(**{k: v for k, v in dataclasses.asdict(w).items() if k != "config_id"})
                                 for w in view.ways],
                      groups=[GroupFillOut(**dataclasses.asdict(g)) for g in view.groups],
                      joins_by_channel=view.series, joins_by_advisor=view.by_advisor, exhausted=view.exhausted)


@router.get("/group-sets/{set_id}/joining", response_model=JoiningOut, responses=ERRORS)
def get_joining(set_id: int = SET_ID, principal: Principal = Depends(read_communities),
                session: Session = Depends(get_session)) -> JoiningOut:
    """The set's join ways, its groups' fill levels and its joins over 14 days (scope `communities:read`)."""
    return _joining_out(session, principal, set_id)


@router.patch("/group-sets/{set_id}/joining", response_model=JoiningOut, responses=ERRORS)
def patch_joining(request: Request, body: JoiningPatch, set_id: int = SET_ID,
                  principal: Principal = Depends(write_communities),
                  session: Session = Depends(get_session)) -> JoiningOut:
    """Rollover settings (scope `communities:write`); audited; the join ways follow at once."""
    joinways.configure(session, principal=principal, set_id=set_id, capacity=body.capacity, rotate_at=body.rotate_at,
                       when_full=body.when_full, room_base_name=body.room_base_name, room_base_id=body.room_base_id,
                       ip=client_ip(request))
    return _joining_out(session, principal, set_id)


@router.post("/group-sets/{set_id}/join-ways", response_model=JoinWayOut, status_code=201,
             responses={**ERRORS, 409: {"description": "the set (or the channel code) has such a join way"}})
def create_join_way(request: Request, body: JoinWayIn, set_id: int = SET_ID,
                    principal: Principal = Depends(write_communities),
                    session: Session = Depends(get_session)) -> JoinWayOut:
    """A join way of the set, for the whole set or one channel code; WeCom makes it within seconds
    (`qr_code` is None until then) (scope `communities:write`); audited."""
    way = joinways.create_way(session, principal=principal, set_id=set_id, channel_code_id=body.channel_code_id,
                              ip=client_ip(request))
    view = joinways.overview(session, principal=principal, set_id=set_id)
    out = next(w for w in view.ways if w.id == way.id)
    return JoinWayOut(**{k: v for k, v in dataclasses.asdict(out).items() if k != "config_id"})


@router.delete("/join-ways/{way_id}", status_code=204, responses=ERRORS)
def delete_join_way(request: Request, way_id: int = Path(ge=1, le=MAX_ID),
                    principal: Principal = Depends(write_communities),
                    session: Session = Depends(get_session)) -> None:
    """Stop a join way (deleted at WeCom; its joins stay attributed) (scope `communities:write`)."""
    joinways.delete_way(session, principal=principal, way_id=way_id, ip=client_ip(request))


def _welcome_out(session: Session, principal: Principal, set_id: int) -> WelcomeOut:
    texts = group_welcome.texts(session, corp_id=principal.corp_id, set_id=set_id)

    def one(owner: str) -> WelcomeTextOut:
        t = texts[owner]
        return WelcomeTextOut(latest=t.latest, in_force=t.in_force, pending=t.pending)
    return WelcomeOut(welcome=one(group_welcome.WELCOME), rules=one(group_welcome.RULES),
                      announcement=one(group_welcome.ANNOUNCEMENT))


@router.get("/group-sets/{set_id}/welcome", response_model=WelcomeOut, responses=ERRORS)
def get_welcome(set_id: int = SET_ID, principal: Principal = Depends(read_communities),
                session: Session = Depends(get_session)) -> WelcomeOut:
    """The set's group welcome, rules and announcement: latest and approved (scope `communities:read`)."""
    joinways._set(session, corp_id=principal.corp_id, set_id=set_id)
    return _welcome_out(session, principal, set_id)


@router.put("/group-sets/{set_id}/welcome", response_model=WelcomeOut, responses=ERRORS)
def put_welcome(request: Request, body: WelcomeTexts, set_id: int = SET_ID,
                principal: Principal = Depends(write_communities),
                session: Session = Depends(get_session)) -> WelcomeOut:
    """Save texts (each changed one is submitted to compliance; a text the wording review blocks is
    refused, naming its field) (scope `communities:write`)."""
    group_welcome.save_texts(session, principal=principal, set_id=set_id, welcome_text=body.welcome_text,
                             rules_text=body.rules_text, announcement_text=body.announcement_text,
                             ip=client_ip(request))
    return _welcome_out(session, principal, set_id)
