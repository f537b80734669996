"""The communities domain's actions for the console and the REST API: the group list with search and
filters, one group with its members and its joins and leaves over time, positioning, tags, group
sets, and the on-demand sync.

Visibility is enforced here, in every function that takes a `principal`: an advisor sees the groups
they own (their department's when their Staff row `sees_department`); operations, administrators,
compliance officers, auditors and API keys see the corp (`siyu.tenancy.service.visible_staff_ids`).
A group the caller may not see is "not found". Only administrators and operations change
positioning, tags and sets (audited). Customers are shown by their masked name, never by WeCom's
external_userid."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session

from siyu import pii
from siyu.communities.models import GroupChat, GroupMember, GroupSet, GroupTag, MemberType, Positioning
from siyu.console.i18n import N_
from siyu.customers.listing import CALENDAR_ZONE
from siyu.customers.service import customer_refs
from siyu.db import utcnow
from siyu.errors import Conflict, Forbidden, InvalidInput, NotFound
from siyu.tenancy import audit
from siyu.tenancy.models import Role, Staff
from siyu.tenancy.principal import Principal
from siyu.tenancy.service import valid_id, visible_staff_ids

POSITIONINGS: dict[str, str] = {
    Positioning.NOVICE_CLASS.value: N_("Novice course class"),
    Positioning.BENEFIT.value: N_("Benefit group"),
    Positioning.PRODUCT.value: N_("Product group"),
    Positioning.HIGH_NET_WORTH.value: N_("High-net-worth group"),
    Positioning.OTHER.value: N_("Other"),
}
JOIN_SCENES = {1: N_("Invited directly"), 2: N_("Invited by link"), 3: N_("Scanned the group QR code")}
QUIT_SCENES = {0: N_("Left by themselves"), 1: N_("Removed by the owner or an admin")}
WRITERS = (Role.ADMINISTRATOR, Role.OPERATIONS)
MAX_TAGS = 10
MAX_TAG = 30
MAX_QUERY = 60
PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
SERIES_DAYS = 30
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


# --- input ------------------------------------------------------------------------------------------------------


def valid_positioning(value: object, *, field: str = "positioning") -> str:
    if not isinstance(value, str) or value not in POSITIONINGS:
        raise InvalidInput("positioning is one of %(values)s", field=field,
                           params={"values": ", ".join(POSITIONINGS)})
    return value


def valid_tags(value: object, *, field: str = "tags") -> list[str]:
    """Free tags: up to 10, each 1–30 characters without control characters; duplicates dropped."""
    if isinstance(value, str):
        value = [t for t in re.split(r"[,，、\s]+", value) if t]
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise InvalidInput("tags are a list of words", field=field)
    tags = list(dict.fromkeys(t.strip() for t in value if t.strip()))
    if len(tags) > MAX_TAGS:
        raise InvalidInput("at most %(n)s tags", field=field, params={"n": MAX_TAGS})
    for tag in tags:
        if len(tag) > MAX_TAG or _CONTROL.search(tag):
            raise InvalidInput("a tag is 1–%(n)s characters without control characters", field=field,
                               params={"n": MAX_TAG})
    return tags


def _valid_name(value: object, *, field: str = "name", limit: int = 60) -> str:
    if not isinstance(value, str) or not value.strip() or len(value.strip()) > limit or _CONTROL.search(value):
        raise InvalidInput("a name is 1–%(n)s characters", field=field, params={"n": limit})
    return value.strip()


def _require_writer(principal: Principal) -> None:
    if principal.kind == "staff" and not principal.has_role(*WRITERS):
        raise Forbidden("your role does not allow this")


# --- visibility ---------------------------------------------------------------------------------------------------


def _visible(session: Session, principal: Principal):
    """The WHERE conditions of the groups the caller may see."""
    conditions = [GroupChat.corp_id == principal.corp_id]
    visible = visible_staff_ids(session, principal=principal)
    if visible is not None:
        conditions.append(GroupChat.owner_staff_id.in_(sorted(visible)) if visible else GroupChat.id.is_(None))
    return conditions


def visible_group_ids(session: Session, *, principal: Principal, include_dismissed: bool = True) -> list[int]:
    """The ids of every group the caller may see (for figures over all of them)."""
    conditions = _visible(session, principal)
    if not include_dismissed:
        conditions.append(GroupChat.dismissed_at.is_(None))
    return list(session.scalars(select(GroupChat.id).where(*conditions)))


def get_group(session: Session, *, principal: Principal, group_id: int) -> GroupChat:
    group = session.get(GroupChat, group_id) if valid_id(group_id) else None
    if group is None or session.scalar(select(GroupChat.id).where(GroupChat.id == group.id,
                                                                  *_visible(session, principal))) is None:
        raise NotFound("group not found", field="group_id")
    return group


# --- the list ---------------------------------------------------------------------------------------------------


@dataclass
class GroupRow:
    id: int
    name: str
    owner_name: str
    owner_staff_id: int | None
    positioning: str
    group_set_id: int | None
    group_set_name: str
    tags: list[str]
    member_count: int
    customer_count: int
    wecom_created_at: dt.datetime | None
    dismissed_at: dt.datetime | None
    health_score: int | None = None  # the latest daily health (siyu.communities.health)
    dying: bool = False


@dataclass
class GroupPage:
    rows: list[GroupRow]
    total: int
    offset: int
    limit: int


@dataclass
class GroupFilters:
    q: str = ""
    owner_staff_id: int | None = None
    positioning: str | None = None
    group_set_id: int | None = None
    tag: str | None = None
    include_dismissed: bool = False
    ids: list[int] | None = None  # only these groups (a page listing chosen groups)


def make_filters(*, q: str | None = None, owner_staff_id: object = None, positioning: str | None = None,
                 group_set_id: object = None, tag: str | None = None, include_dismissed: bool = False) -> GroupFilters:
    """Checked filters from query parameters (empty strings mean "any")."""
    q = (q or "").strip()
    if len(q) > MAX_QUERY or _CONTROL.search(q):
        raise InvalidInput("the search is at most %(n)s characters", field="q", params={"n": MAX_QUERY})

    def _id(value: object, name: str) -> int | None:
        if value in (None, ""):
            return None
        try:
            number = int(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            number = 0
        if not valid_id(number):
            raise InvalidInput("not a valid id", field=name)
        return number

    return GroupFilters(q=q, owner_staff_id=_id(owner_staff_id, "owner"),
                        positioning=valid_positioning(positioning) if positioning else None,
                        group_set_id=_id(group_set_id, "group_set"),
                        tag=valid_tags([tag], field="tag")[0] if tag and tag.strip() else None,
                        include_dismissed=include_dismissed)


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def list_groups(session: Session, *, principal: Principal, filters: GroupFilters | None = None, offset: int = 0,
                limit: int = PAGE_SIZE) -> GroupPage:
    """Groups the caller may see, newest first; search by group name or owner name."""
    f = filters or GroupFilters()
    if not 1 <= limit <= MAX_PAGE_SIZE or offset < 0:
        raise InvalidInput("limit is 1–%(n)s and offset ≥ 0", field="limit", params={"n": MAX_PAGE_SIZE})
    conditions = _visible(session, principal)
    if not f.include_dismissed:
        conditions.append(GroupChat.dismissed_at.is_(None))
    if f.q:
        owners = select(Staff.id).where(Staff.corp_id == principal.corp_id, Staff.name.like(_like(f.q), escape="\\"))
        conditions.append(or_(GroupChat.name.like(_like(f.q), escape="\\"), GroupChat.owner_staff_id.in_(owners)))
    if f.owner_staff_id is not None:
        conditions.append(GroupChat.owner_staff_id == f.owner_staff_id)
    if f.positioning:
        conditions.append(GroupChat.positioning == f.positioning)
    if f.group_set_id is not None:
        conditions.append(GroupChat.group_set_id == f.group_set_id)
    if f.ids is not None:
        conditions.append(GroupChat.id.in_(list(f.ids)))
    if f.tag:
        conditions.append(GroupChat.id.in_(select(GroupTag.group_id).where(GroupTag.corp_id == principal.corp_id,
                                                                           GroupTag.tag == f.tag)))
    total = session.scalar(select(func.count()).select_from(GroupChat).where(*conditions)) or 0
    groups = list(session.scalars(select(GroupChat).where(*conditions)
                                  .order_by(GroupChat.wecom_created_at.desc(), GroupChat.id.desc())
                                  .offset(offset).limit(limit)))
    return GroupPage(rows=_rows(session, groups), total=total, offset=offset, limit=limit)


def _rows(session: Session, groups: list[GroupChat]) -> list[GroupRow]:
    if not groups:
        return []
    ids = [g.id for g in groups]
    tags: dict[int, list[str]] = {}
    for group_id, tag in session.execute(select(GroupTag.group_id, GroupTag.tag).where(GroupTag.group_id.in_(ids))
                                         .order_by(GroupTag.id)):
        tags.setdefault(group_id, []).append(tag)
    owners = {s.id: s.name for s in session.scalars(select(Staff).where(
        Staff.id.in_({g.owner_staff_id for g in groups if g.owner_staff_id})))}
    sets = {s.id: s.name for s in session.scalars(select(GroupSet).where(
        GroupSet.id.in_({g.group_set_id for g in groups if g.group_set_id})))}
    from siyu.communities.health import latest

    scores = latest(session, group_ids=ids)
    return [GroupRow(id=g.id, name=g.name, owner_name=owners.get(g.owner_staff_id or 0, g.owner_userid),
                     owner_staff_id=g.owner_staff_id, positioning=g.positioning, group_set_id=g.group_set_id,
                     group_set_name=sets.get(g.group_set_id or 0, ""), tags=tags.get(g.id, []),
                     member_count=g.member_count, customer_count=g.customer_count,
                     wecom_created_at=g.wecom_created_at, dismissed_at=g.dismissed_at,
                     health_score=scores[g.id].score if g.id in scores else None,
                     dying=g.id in scores and scores[g.id].dying) for g in groups]


def groups_owned_by(session: Session, *, corp_id: int, owner_userid: str) -> list[GroupChat]:
    """The groups a member owns that are not dismissed, by name (for pickers: a handover's groups)."""
    return list(session.scalars(select(GroupChat).where(
        GroupChat.corp_id == corp_id, GroupChat.owner_userid == owner_userid, GroupChat.dismissed_at.is_(None))
        .order_by(GroupChat.name, GroupChat.id).limit(2000)))


def group_names(session: Session, *, corp_id: int, chat_ids: list[str]) -> dict[str, str]:
    """chat_id -> the group's name (or its WeCom id while the name is not known yet)."""
    wanted = sorted(set(chat_ids))
    out: dict[str, str] = {}
    for start in range(0, len(wanted), 500):
        rows = session.execute(select(GroupChat.chat_id, GroupChat.name).where(
            GroupChat.corp_id == corp_id, GroupChat.chat_id.in_(wanted[start:start + 500])))
        out.update({chat_id: name or chat_id for chat_id, name in rows})
    return out


def owner_options(session: Session, *, principal: Principal) -> list[tuple[int, str]]:
    """Owners of the groups the caller may see (the owner filter)."""
    ids = select(GroupChat.owner_staff_id).where(*_visible(session, principal)).distinct()
    return [(s.id, s.name) for s in session.scalars(select(Staff).where(Staff.id.in_(ids)).order_by(Staff.name))]


# --- one group --------------------------------------------------------------------------------------------------


@dataclass
class MemberRow:
    display_name: str  # a customer's masked name; a member of staff's name
    member_type: str
    customer_id: int | None
    joined_at: dt.datetime
    join_scene: int
    invitor_name: str
    state: str | None
    left_at: dt.datetime | None = None
    quit_scene: int | None = None
    stay_id: int | None = None  # the stay's row: its join's attribution (siyu.communities.joinways)


@dataclass
class GroupDetail:
    group: GroupRow
    owner_userid: str
    admin_names: list[str]
    notice: str
    synced_at: dt.datetime | None
    members: list[MemberRow]
    recently_left: list[MemberRow]
    series: dict = field(default_factory=dict)


def _staff_names(session: Session, corp_id: int, userids: set[str]) -> dict[str, str]:
    if not userids:
        return {}
    return {s.wecom_userid: s.name for s in session.scalars(select(Staff).where(
        Staff.corp_id == corp_id, Staff.wecom_userid.in_(sorted(userids))))}


def _member_rows(session: Session, corp_id: int, rows: list[GroupMember]) -> list[MemberRow]:
    refs = customer_refs(session, corp_id=corp_id,
                         external_userids=[r.member_id for r in rows if r.member_type == MemberType.CUSTOMER.value])
    staff = _staff_names(session, corp_id, {r.member_id for r in rows if r.member_type == MemberType.STAFF.value}
                         | {r.invitor_userid for r in rows if r.invitor_userid})
    out = []
    for r in rows:
        if r.member_type == MemberType.CUSTOMER.value:
            ref = refs.get(r.member_id)
            name = ref.name_masked if ref and ref.name_masked else pii.mask_name(r.name) or "—"
            customer_id = ref.id if ref else r.customer_id
        else:
            name, customer_id = staff.get(r.member_id) or r.name or r.member_id, None
        out.append(MemberRow(display_name=name, member_type=r.member_type, customer_id=customer_id,
                             joined_at=r.joined_at, join_scene=r.join_scene,
                             invitor_name=staff.get(r.invitor_userid or "", r.invitor_userid or ""),
                             state=r.state, left_at=r.left_at, quit_scene=r.quit_scene, stay_id=r.id))
    return out


def group_detail(session: Session, *, principal: Principal, group_id: int, days: int = SERIES_DAYS) -> GroupDetail:
    group = get_group(session, principal=principal, group_id=group_id)
    current = list(session.scalars(select(GroupMember).where(GroupMember.group_id == group.id,
                                                             GroupMember.left_at.is_(None))
                                   .order_by(GroupMember.joined_at, GroupMember.id)))
    left = list(session.scalars(select(GroupMember).where(GroupMember.group_id == group.id,
                                                          GroupMember.left_at.is_not(None))
                                .order_by(GroupMember.left_at.desc(), GroupMember.id.desc()).limit(50)))
    admins = _staff_names(session, group.corp_id, set(group.admin_userids or []))
    return GroupDetail(group=_rows(session, [group])[0], owner_userid=group.owner_userid,
                       admin_names=[admins.get(a, a) for a in group.admin_userids or []], notice=group.notice,
                       synced_at=group.synced_at, members=_member_rows(session, group.corp_id, current),
                       recently_left=_member_rows(session, group.corp_id, left),
                       series=joins_and_leaves(session, group_id=group.id, days=days))


def joins_and_leaves(session: Session, *, group_id: int, days: int = SERIES_DAYS,
                     today: dt.date | None = None) -> dict:
    """Customers joining and leaving per calendar day (Asia/Shanghai) over the last `days` days."""
    today = today or utcnow().astimezone(CALENDAR_ZONE).date()
    first = today - dt.timedelta(days=days - 1)
    start = dt.datetime.combine(first, dt.time(), CALENDAR_ZONE).astimezone(dt.UTC)
    x = [(first + dt.timedelta(days=i)).isoformat() for i in range(days)]
    joins, leaves = dict.fromkeys(x, 0), dict.fromkeys(x, 0)
    customer = GroupMember.member_type == MemberType.CUSTOMER.value
    for (at,) in session.execute(select(GroupMember.joined_at).where(GroupMember.group_id == group_id, customer,
                                                                     GroupMember.joined_at >= start)):
        day = at.astimezone(CALENDAR_ZONE).date().isoformat()
        if day in joins:
            joins[day] += 1
    for (at,) in session.execute(select(GroupMember.left_at).where(GroupMember.group_id == group_id, customer,
                                                                   GroupMember.left_at >= start)):
        day = at.astimezone(CALENDAR_ZONE).date().isoformat()
        if day in leaves:
            leaves[day] += 1
    return {"x": x, "joins": [joins[d] for d in x], "leaves": [leaves[d] for d in x]}


def update_group(session: Session, *, principal: Principal, group_id: int, positioning: str | None = None,
                 tags: list[str] | str | None = None, group_set_id: int | None | str = "keep",
                 ip: str | None = None) -> GroupChat:
    """Positioning, free tags and the group set (None: no set). Administrators and operations; audited."""
    _require_writer(principal)
    group = get_group(session, principal=principal, group_id=group_id)
    changes: dict[str, object] = {}
    if positioning is not None and positioning != group.positioning:
        group.positioning = valid_positioning(positioning)
        changes["positioning"] = group.positioning
    if tags is not None:
        new_tags = valid_tags(tags)
        old = list(session.scalars(select(GroupTag.tag).where(GroupTag.group_id == group.id).order_by(GroupTag.id)))
        if new_tags != old:
            session.execute(delete(GroupTag).where(GroupTag.group_id == group.id))
            session.add_all(GroupTag(corp_id=group.corp_id, group_id=group.id, tag=t) for t in new_tags)
            changes["tags"] = new_tags
    if group_set_id != "keep" and group_set_id != group.group_set_id:
        if group_set_id is not None:
            group_set = get_set(session, principal=principal, set_id=group_set_id)  # type: ignore[arg-type]
            group_set_id = group_set.id
        from siyu.communities.joinways import groups_came_in, schedule_set

        if group.group_set_id is not None:  # the old set's join ways let the group go
            schedule_set(session, corp_id=principal.corp_id, set_id=group.group_set_id, reason="groups")
        if group_set_id is not None:
            groups_came_in(session, corp_id=principal.corp_id, set_id=group_set_id,  # type: ignore[arg-type]
                           group_ids=[group.id])
        group.group_set_id = group_set_id  # type: ignore[assignment]
        changes["group_set_id"] = group_set_id
    if changes:
        session.flush()
        audit.record(session, corp_id=principal.corp_id, actor=principal, action="group.updated",
                     target_type="group_chat", target_id=group.id, detail=changes, ip=ip)
    return group


# --- group sets -------------------------------------------------------------------------------------------------


@dataclass
class SetRow:
    id: int
    name: str
    description: str
    positioning: str
    group_count: int
    member_count: int
    customer_count: int


def list_sets(session: Session, *, principal: Principal) -> list[SetRow]:
    """The corp's group sets with the groups the caller may see in each, and their members."""
    counts = {r.group_set_id: r for r in session.execute(
        select(GroupChat.group_set_id, func.count().label("n"), func.coalesce(func.sum(GroupChat.member_count), 0)
               .label("members"), func.coalesce(func.sum(GroupChat.customer_count), 0).label("customers"))
        .where(*_visible(session, principal), GroupChat.dismissed_at.is_(None), GroupChat.group_set_id.is_not(None))
        .group_by(GroupChat.group_set_id))}
    sets = session.scalars(select(GroupSet).where(GroupSet.corp_id == principal.corp_id).order_by(GroupSet.name))
    return [SetRow(id=s.id, name=s.name, description=s.description, positioning=s.positioning,
                   group_count=counts[s.id].n if s.id in counts else 0,
                   member_count=int(counts[s.id].members) if s.id in counts else 0,
                   customer_count=int(counts[s.id].customers) if s.id in counts else 0) for s in sets]


def get_set(session: Session, *, principal: Principal, set_id: int) -> GroupSet:
    group_set = session.get(GroupSet, set_id) if valid_id(set_id) else None
    if group_set is None or group_set.corp_id != principal.corp_id:
        raise NotFound("group set not found", field="group_set_id")
    return group_set


def _unique_name(session: Session, corp_id: int, name: str, *, except_id: int | None = None) -> None:
    clash = session.scalar(select(GroupSet.id).where(GroupSet.corp_id == corp_id, GroupSet.name == name))
    if clash is not None and clash != except_id:
        raise Conflict("a group set with this name exists", field="name")


def create_set(session: Session, *, principal: Principal, name: str, description: str = "",
               positioning: str = Positioning.OTHER.value, ip: str | None = None) -> GroupSet:
    _require_writer(principal)
    name = _valid_name(name)
    description = (description or "").strip()
    if len(description) > 500:
        raise InvalidInput("the description is at most 500 characters", field="description")
    _unique_name(session, principal.corp_id, name)
    group_set = GroupSet(corp_id=principal.corp_id, name=name, description=description,
                         positioning=valid_positioning(positioning))
    session.add(group_set)
    session.flush()
    audit.record(session, corp_id=principal.corp_id, actor=principal, action="group_set.created",
                 target_type="group_set", target_id=group_set.id, detail={"name": name}, ip=ip)
    return group_set


def update_set(session: Session, *, principal: Principal, set_id: int, name: str | None = None,
               description: str | None = None, positioning: str | None = None, ip: str | None = None) -> GroupSet:
    _require_writer(principal)
    group_set = get_set(session, principal=principal, set_id=set_id)
    if name is not None:
        name = _valid_name(name)
        _unique_name(session, principal.corp_id, name, except_id=group_set.id)
        group_set.name = name
    if description is not None:
        if len(description.strip()) > 500:
            raise InvalidInput("the description is at most 500 characters", field="description")
        group_set.description = description.strip()
    if positioning is not None:
        group_set.positioning = valid_positioning(positioning)
    session.flush()
    audit.record(session, corp_id=principal.corp_id, actor=principal, action="group_set.updated",
                 target_type="group_set", target_id=group_set.id, detail={"name": group_set.name}, ip=ip)
    return group_set


def assign_groups(session: Session, *, principal: Principal, set_id: int, group_ids: list[int],
                  apply_positioning: bool = True, ip: str | None = None) -> int:
    """Put groups into a set (a group belongs to at most one: it leaves its old set); the groups take
    the set's positioning unless `apply_positioning` is off. Returns how many groups moved."""
    _require_writer(principal)
    group_set = get_set(session, principal=principal, set_id=set_id)
    moved_ids: list[int] = []
    for group_id in dict.fromkeys(group_ids):
        group = get_group(session, principal=principal, group_id=group_id)
        if group.group_set_id != group_set.id:
            group.group_set_id = group_set.id
            moved_ids.append(group.id)
        if apply_positioning:
            group.positioning = group_set.positioning
    moved = len(moved_ids)
    session.flush()
    if moved:
        audit.record(session, corp_id=principal.corp_id, actor=principal, action="group_set.groups_added",
                     target_type="group_set", target_id=group_set.id, detail={"groups": moved}, ip=ip)
        from siyu.communities.joinways import groups_came_in

        groups_came_in(session, corp_id=principal.corp_id, set_id=group_set.id, group_ids=moved_ids)
    return moved


def delete_set(session: Session, *, principal: Principal, set_id: int, ip: str | None = None) -> None:
    """The set goes; its groups stay, without a set."""
    _require_writer(principal)
    group_set = get_set(session, principal=principal, set_id=set_id)
    for group in session.scalars(select(GroupChat).where(GroupChat.group_set_id == group_set.id)):
        group.group_set_id = None
    audit.record(session, corp_id=principal.corp_id, actor=principal, action="group_set.deleted",
                 target_type="group_set", target_id=group_set.id, detail={"name": group_set.name}, ip=ip)
    session.delete(group_set)
    session.flush()


# --- sync on demand ---------------------------------------------------------------------------------------------


def request_sync(session: Session, *, principal: Principal, ip: str | None = None) -> str:
    """Queue a full group sync of the caller's corp (at most one per minute: the run key)."""
    from siyu.communities.jobs import enqueue_sync

    _require_writer(principal)
    run = "manual-" + utcnow().strftime("%Y%m%d%H%M")
    enqueue_sync(session, corp_id=principal.corp_id, run=run)
    audit.record(session, corp_id=principal.corp_id, actor=principal, action="group.sync_requested",
                 target_type="corp", target_id=principal.corp_id, detail={"run": run}, ip=ip)
    return run
