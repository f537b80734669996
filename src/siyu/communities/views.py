"""Console pages of communities (社群): the group list with search and filters, a group's page
(members, joins and leaves over time, positioning, tags, set), group sets, and the on-demand sync.

Advisors see the groups they own; administrators and operations see every group and change
positioning, tags and sets. Thin: parse the form, call the service."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from siyu.communities import health, moderation, moderation_views, service
from siyu.console.forms import FieldErrors
from siyu.console.templating import render
from siyu.db import get_session
from siyu.errors import InvalidInput, SiyuError
from siyu.tenancy.deps import client_ip, require_roles
from siyu.tenancy.principal import Principal

router = APIRouter(include_in_schema=False)
router.include_router(moderation_views.router)  # /groups/moderation, /groups/health: before /groups/{group_id}

WRITERS = ("administrator", "operations")
readers = require_roles(*WRITERS, "advisor")
writers = require_roles(*WRITERS)
MAX_ID = 2**63 - 1



def _labels() -> dict:
    return {"positionings": service.POSITIONINGS, "join_scenes": service.JOIN_SCENES,
            "quit_scenes": service.QUIT_SCENES}


@router.get("/groups")
def groups_page(request: Request, q: str = Query("", max_length=200), owner: str = Query("", max_length=30),
                positioning: str = Query("", max_length=30), group_set: str = Query("", max_length=30),
                tag: str = Query("", max_length=60), dismissed: str = Query("", max_length=5),
                page: int = Query(1, ge=1, le=10_000), principal: Principal = Depends(readers),
                session: Session = Depends(get_session)) -> Response:
    values = {"q": q, "owner": owner, "positioning": positioning, "group_set": group_set, "tag": tag,
              "dismissed": dismissed}
    errors, status, result = FieldErrors(), 200, None
    try:
        filters = service.make_filters(q=q, owner_staff_id=owner, positioning=positioning or None,
                                       group_set_id=group_set, tag=tag or None, include_dismissed=dismissed == "1")
        result = service.list_groups(session, principal=principal, filters=filters,
                                     offset=(page - 1) * service.PAGE_SIZE)
    except SiyuError as exc:
        errors.add(request, exc, "q")
        status = exc.status_code
    query = {k: v for k, v in values.items() if v}
    return render(request, "communities/index.html", {
        "page": result, "page_number": page, "form": values, "errors": errors, "filtered": bool(query),
        "query": query, "owners": service.owner_options(session, principal=principal),
        "sets": service.list_sets(session, principal=principal),
        "may_write": principal.has_role(*WRITERS), "sync_requested": request.query_params.get("synced") == "1",
        **_labels(),
    }, status_code=status)


@router.post("/groups/sync")
def groups_sync(request: Request, principal: Principal = Depends(writers),
                session: Session = Depends(get_session)) -> Response:
    service.request_sync(session, principal=principal, ip=client_ip(request))
    return RedirectResponse("/groups?synced=1", status_code=303)


# --- group sets (declared before /groups/{id}) -------------------------------------------------------------------


def _sets_page(request: Request, session: Session, principal: Principal, *, status_code: int = 200,
               **extra) -> Response:
    context = {"sets": service.list_sets(session, principal=principal), "may_write": principal.has_role(*WRITERS),
               "form": {}, "errors": FieldErrors(), **_labels()}
    context.update(extra)
    return render(request, "communities/sets.html", context, status_code=status_code)


@router.get("/groups/sets")
def sets_page(request: Request, principal: Principal = Depends(readers),
              session: Session = Depends(get_session)) -> Response:
    return _sets_page(request, session, principal)


@router.post("/groups/sets")
def set_create(request: Request, name: str = Form("", max_length=200), description: str = Form("", max_length=2000),
               positioning: str = Form("other", max_length=30), principal: Principal = Depends(writers),
               session: Session = Depends(get_session)) -> Response:
    try:
        with session.begin_nested():
            group_set = service.create_set(session, principal=principal, name=name, description=description,
                                           positioning=positioning, ip=client_ip(request))
    except SiyuError as exc:
        return _sets_page(request, session, principal, status_code=exc.status_code,
                          form={"name": name, "description": description, "positioning": positioning},
                          errors=FieldErrors.of(request, exc))
    return RedirectResponse(f"/groups/sets/{group_set.id}?saved=1", status_code=303)


def _set_page(request: Request, session: Session, principal: Principal, set_id: int, *, status_code: int = 200,
              **extra) -> Response:
    group_set = service.get_set(session, principal=principal, set_id=set_id)
    row = next(s for s in service.list_sets(session, principal=principal) if s.id == group_set.id)
    groups = service.list_groups(session, principal=principal,
                                 filters=service.GroupFilters(group_set_id=group_set.id),
                                 limit=service.MAX_PAGE_SIZE)
    candidates = [g for g in service.list_groups(session, principal=principal, limit=service.MAX_PAGE_SIZE).rows
                  if g.group_set_id != group_set.id]
    context = {"set": group_set, "row": row, "groups": groups, "candidates": candidates,
               "may_write": principal.has_role(*WRITERS), "errors": FieldErrors(), "form": None,
               "saved": request.query_params.get("saved") == "1", **_labels()}
    context.update(extra)
    return render(request, "communities/set.html", context, status_code=status_code)


@router.get("/groups/sets/{set_id}")
def set_page(request: Request, set_id: int = Path(ge=1, le=MAX_ID), principal: Principal = Depends(readers),
             session: Session = Depends(get_session)) -> Response:
    return _set_page(request, session, principal, set_id)


@router.post("/groups/sets/{set_id}")
def set_update(request: Request, set_id: int = Path(ge=1, le=MAX_ID), name: str = Form("", max_length=200),
               description: str = Form("", max_length=2000), positioning: str = Form("other", max_length=30),
               principal: Principal = Depends(writers), session: Session = Depends(get_session)) -> Response:
    try:
        with session.begin_nested():
            service.update_set(session, principal=principal, set_id=set_id, name=name, description=description,
                               positioning=positioning, ip=client_ip(request))
    except SiyuError as exc:
        return _set_page(request, session, principal, set_id, status_code=exc.status_code,
                         form={"name": name, "description": description, "positioning": positioning},
                         errors=FieldErrors.of(request, exc))
    return RedirectResponse(f"/groups/sets/{set_id}?saved=1", status_code=303)


@router.post("/groups/sets/{set_id}/groups")
async def set_add_groups(request: Request, set_id: int = Path(ge=1, le=MAX_ID), principal: Principal = Depends(writers),
                         session: Session = Depends(get_session)) -> Response:
    form = await request.form()
    ids = []
    for value in form.getlist("group_id")[:service.MAX_PAGE_SIZE]:
        try:
            ids.append(int(str(value)))
        except ValueError:
            continue
    try:
        with session.begin_nested():
            if not ids:
                raise InvalidInput("choose at least one group", field="group_id")
            service.assign_groups(session, principal=principal, set_id=set_id, group_ids=ids, ip=client_ip(request))
    except SiyuError as exc:
        return _set_page(request, session, principal, set_id, status_code=exc.status_code,
                         errors=FieldErrors.of(request, exc, "group_id"))
    return RedirectResponse(f"/groups/sets/{set_id}?saved=1", status_code=303)


@router.post("/groups/sets/{set_id}/delete")
def set_delete(request: Request, set_id: int = Path(ge=1, le=MAX_ID), principal: Principal = Depends(writers),
               session: Session = Depends(get_session)) -> Response:
    service.delete_set(session, principal=principal, set_id=set_id, ip=client_ip(request))
    return RedirectResponse("/groups/sets", status_code=303)


# --- one group --------------------------------------------------------------------------------------------------


def _group_page(request: Request, session: Session, principal: Principal, group_id: int, *, status_code: int = 200,
                **extra) -> Response:
    detail = service.group_detail(session, principal=principal, group_id=group_id)
    from siyu.communities.joinways import attribution

    group = service.get_group(session, principal=principal, group_id=group_id)
    today = health.china_today()
    figures = health.compute(session, group=group, day=today)
    trend = health.series(session, group=group, today=today)
    context = {"d": detail, "g": detail.group, "sets": service.list_sets(session, principal=principal),
               "joins": attribution(session, corp_id=principal.corp_id,
                                    stay_ids=[m.stay_id for m in detail.members if m.stay_id]),
               "health": figures, "health_charts": [
                   {"key": "group_members", "kind": "line", "x": trend["x"],
                    "series": [{"name": "members", "values": trend["members"]}]},
                   {"key": "group_messages", "kind": "bar", "x": trend["x"],
                    "series": [{"name": "messages", "values": trend["messages"]},
                               {"name": "speakers", "values": trend["speakers"]}]},
                   {"key": "group_scores", "kind": "line", "x": trend["x"],
                    "series": [{"name": "score", "values": trend["scores"]}]}],
               "hits": moderation.list_hits(session, principal=principal, status=None, group_id=group.id, limit=20),
               "finding_labels": moderation.FINDING_CATEGORIES, "statuses": moderation.STATUSES,
               "actions": moderation.ACTIONS, "reasons": health.REASONS, "dying_score": health.DYING_SCORE,
               "may_write": principal.has_role(*WRITERS), "errors": FieldErrors(), "form": None,
               "saved": request.query_params.get("saved") == "1",
               "chart": {"key": "group_joins", "kind": "bar", "x": detail.series["x"],
                         "series": [{"name": "joins", "values": detail.series["joins"]},
                                    {"name": "leaves", "values": detail.series["leaves"]}]},
               **_labels()}
    context.update(extra)
    return render(request, "communities/group.html", context, status_code=status_code)


@router.get("/groups/{group_id}")
def group_page(request: Request, group_id: int = Path(ge=1, le=MAX_ID), principal: Principal = Depends(readers),
               session: Session = Depends(get_session)) -> Response:
    return _group_page(request, session, principal, group_id)


@router.post("/groups/{group_id}")
def group_update(request: Request, group_id: int = Path(ge=1, le=MAX_ID),
                 positioning: str = Form("other", max_length=30), tags: str = Form("", max_length=500),
                 group_set: str = Form("", max_length=30),
                 principal: Principal = Depends(writers), session: Session = Depends(get_session)) -> Response:
    try:
        with session.begin_nested():
            set_id: int | None = None
            if group_set:
                try:
                    set_id = int(group_set)
                except ValueError:
                    raise InvalidInput("not a valid group set", field="group_set") from None
            service.update_group(session, principal=principal, group_id=group_id, positioning=positioning, tags=tags,
                                 group_set_id=set_id, ip=client_ip(request))
    except SiyuError as exc:
        return _group_page(request, session, principal, group_id, status_code=exc.status_code,
                           form={"positioning": positioning, "tags": tags, "group_set": group_set},
                           errors=FieldErrors.of(request, exc))
    return RedirectResponse(f"/groups/{group_id}?saved=1", status_code=303)


from siyu.communities import joinway_views  # noqa: E402 - the set's joining pages (/groups/sets/{id}/…)

router.include_router(joinway_views.router)
