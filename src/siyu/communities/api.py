"""REST API of communities (社群): customer groups with their members, positioning, tags and group
sets, and the on-demand sync. Scopes `communities:read` and `communities:write`. Every answer is
limited to the API key's corp: another corp's group is simply not found."""

from __future__ import annotations

import dataclasses
from typing import Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from sqlalchemy.orm import Session

from siyu.communities import health, moderation, service
from siyu.communities.schemas import (
    GroupDetailOut,
    GroupHealthOut,
    GroupList,
    GroupOut,
    GroupPatch,
    GroupSetIn,
    GroupSetList,
    GroupSetOut,
    GroupSetPatch,
    RedLineAlertList,
    RedLineAlertOut,
    SyncOut,
)
from siyu.db import get_session
from siyu.tenancy.deps import API_ERRORS, client_ip, require_scope
from siyu.tenancy.principal import Principal
from siyu.tenancy.service import MAX_ID

router = APIRouter(prefix="/api/v1/communities", tags=["communities"])

ERRORS = API_ERRORS
NOT_FOUND = {404: {"description": "no such group or group set in the key's corp"}}
read_communities = require_scope("communities:read")
write_communities = require_scope("communities:write")


def _group_out(row: service.GroupRow) -> GroupOut:
    return GroupOut(**dataclasses.asdict(row))


def _detail_out(session: Session, principal: Principal, group_id: int) -> GroupDetailOut:
    detail = service.group_detail(session, principal=principal, group_id=group_id)
    return GroupDetailOut(**dataclasses.asdict(detail.group), admin_names=detail.admin_names, notice=detail.notice,
                          synced_at=detail.synced_at, members=[dataclasses.asdict(m) for m in detail.members],
                          recently_left=[dataclasses.asdict(m) for m in detail.recently_left],
                          joins_and_leaves=detail.series)


@router.get("/groups", response_model=GroupList, responses=ERRORS)
def list_groups(q: str = Query("", max_length=service.MAX_QUERY, description="group or owner name contains"),
                positioning: str = Query("", description="novice_class, benefit, product, high_net_worth, other"),
                group_set_id: int | None = Query(None, ge=1, le=MAX_ID),
                owner_staff_id: int | None = Query(None, ge=1, le=MAX_ID),
                tag: str = Query("", max_length=service.MAX_TAG),
                include_dismissed: bool = False,
                offset: int = Query(0, ge=0, le=1_000_000),
                limit: int = Query(service.PAGE_SIZE, ge=1, le=service.MAX_PAGE_SIZE),
                principal: Principal = Depends(read_communities),
                session: Session = Depends(get_session)) -> GroupList:
    """The corp's customer groups, newest first (scope `communities:read`)."""
    filters = service.make_filters(q=q, positioning=positioning or None, group_set_id=group_set_id,
                                   owner_staff_id=owner_staff_id, tag=tag or None,
                                   include_dismissed=include_dismissed)
    page = service.list_groups(session, principal=principal, filters=filters, offset=offset, limit=limit)
    return GroupList(items=[_group_out(r) for r in page.rows], total=page.total, offset=page.offset, limit=page.limit)


@router.get("/groups/{group_id}", response_model=GroupDetailOut, responses={**ERRORS, **NOT_FOUND})
def get_group(group_id: int = Path(ge=1, le=MAX_ID), principal: Principal = Depends(read_communities),
              session: Session = Depends(get_session)) -> GroupDetailOut:
    """One group with its members (customers by masked name), those who left lately, and joins and
    leaves per day over 30 days (scope `communities:read`)."""
    return _detail_out(session, principal, group_id)


@router.patch("/groups/{group_id}", response_model=GroupDetailOut, responses={**ERRORS, **NOT_FOUND})
def patch_group(request: Request, body: GroupPatch, group_id: int = Path(ge=1, le=MAX_ID),
                principal: Principal = Depends(write_communities),
                session: Session = Depends(get_session)) -> GroupDetailOut:
    """Positioning, tags and group set of a group (scope `communities:write`); audited."""
    group_set_id: int | None | str = None if body.clear_group_set else body.group_set_id or "keep"
    service.update_group(session, principal=principal, group_id=group_id, positioning=body.positioning,
                         tags=body.tags, group_set_id=group_set_id, ip=client_ip(request))
    return _detail_out(session, principal, group_id)


@router.get("/group-sets", response_model=GroupSetList, responses=ERRORS)
def list_group_sets(principal: Principal = Depends(read_communities),
                    session: Session = Depends(get_session)) -> GroupSetList:
    """The corp's group sets with their groups' counts (scope `communities:read`)."""
    return GroupSetList(items=[GroupSetOut(**dataclasses.asdict(s))
                               for s in service.list_sets(session, principal=principal)])


def _set_out(session: Session, principal: Principal, set_id: int) -> GroupSetOut:
    row = next(s for s in service.list_sets(session, principal=principal) if s.id == set_id)
    return GroupSetOut(**dataclasses.asdict(row))


@router.post("/group-sets", response_model=GroupSetOut, status_code=201,
             responses={**ERRORS, 409: {"description": "a group set with this name exists"}})
def create_group_set(request: Request, body: GroupSetIn, principal: Principal = Depends(write_communities),
                     session: Session = Depends(get_session)) -> GroupSetOut:
    """A new group set (scope `communities:write`); audited."""
    group_set = service.create_set(session, principal=principal, name=body.name, description=body.description,
                                   positioning=body.positioning, ip=client_ip(request))
    return _set_out(session, principal, group_set.id)


@router.patch("/group-sets/{set_id}", response_model=GroupSetOut,
              responses={**ERRORS, **NOT_FOUND, 409: {"description": "a group set with this name exists"}})
def patch_group_set(request: Request, body: GroupSetPatch, set_id: int = Path(ge=1, le=MAX_ID),
                    principal: Principal = Depends(write_communities),
                    session: Session = Depends(get_session)) -> GroupSetOut:
    """Rename a set, change its positioning, or add groups to it (a group leaves its old set)
    (scope `communities:write`); audited."""
    service.update_set(session, principal=principal, set_id=set_id, name=body.name, description=body.description,
                       positioning=body.positioning, ip=client_ip(request))
    if body.add_group_ids:
        service.assign_groups(session, principal=principal, set_id=set_id, group_ids=body.add_group_ids,
                              ip=client_ip(request))
    return _set_out(session, principal, set_id)


@router.post("/sync", response_model=SyncOut, status_code=202, responses=ERRORS)
def sync_groups(request: Request, principal: Principal = Depends(write_communities),
                session: Session = Depends(get_session)) -> SyncOut:
    """Queue a full sync of the corp's groups from WeCom (scope `communities:write`)."""
    return SyncOut(run=service.request_sync(session, principal=principal, ip=client_ip(request)))


from siyu.communities import joinway_api  # noqa: E402 - join ways, joins and welcome texts of a set

router.include_router(joinway_api.router)


@router.get("/groups/{group_id}/health", response_model=GroupHealthOut, responses={**ERRORS, **NOT_FOUND})
def group_health(group_id: int = Path(ge=1, le=MAX_ID), principal: Principal = Depends(read_communities),
                 session: Session = Depends(get_session)) -> GroupHealthOut:
    """The group's health over the last 7 days up to now: figures, score and whether it is dying
    (scope `communities:read`)."""
    group = service.get_group(session, principal=principal, group_id=group_id)
    f = health.compute(session, group=group, day=health.china_today())
    return GroupHealthOut(group_id=group.id, **{k: getattr(f, k) for k in GroupHealthOut.model_fields
                                                if k != "group_id"})


@router.get("/red-line-alerts", response_model=RedLineAlertList, responses=ERRORS)
def red_line_alerts(status: Literal["open", "warned", "removed", "dismissed"] | None = Query(None),
                    group_id: int | None = Query(None, ge=1, le=MAX_ID),
                    principal: Principal = Depends(read_communities),
                    session: Session = Depends(get_session)) -> RedLineAlertList:
    """Red-line alerts raised by members' messages in the corp's groups, newest first, at most 200
    (scope `communities:read`; the message text is not in the API)."""
    rows = moderation.list_hits(session, principal=principal, status=status, group_id=group_id)
    return RedLineAlertList(items=[RedLineAlertOut(**{k: getattr(r, k) for k in RedLineAlertOut.model_fields})
                                   for r in rows])
