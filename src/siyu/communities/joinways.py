"""Join ways that roll over (群活码): one QR code and link per group set — or one per channel code
the set is handed out through — kept over WeCom's join-way API (`groupchat/add_join_way`,
`update_join_way`, `get_join_way`, `del_join_way`).

A WeCom join way lists up to 5 groups and puts a scanning customer into the first of them that is not
full. Siyu keeps in it the set's groups that still have room — below the set's `rotate_at` (say 190
of 200) — so a group leaves the join way before it fills, and the next groups of the set come in
(`keep_join_way`, a job run whenever a join brings a listed group to the threshold or the set's
groups change). When the set runs out of groups with room, the set's choice applies:
`auto_create`: WeCom creates the next group itself (`auto_create_room` with `room_base_name` and
`room_base_id`; the new group joins the set when its first member arrives by the way), or `alert`:
the join way is marked exhausted, operations see the alert on the set's page and the sets list, and
the nearly-full groups stay listed so nobody who scans is turned away while groups have room.

Attribution: each join way has its own `state` (`jw<id>`, ≤30 characters), which WeCom hands back on
every member who joined by it (`groupchat/get`). `record_join` turns each `group.joined` event into a
`GroupJoin`: the join way (so the set and the channel code), and the advisor who brought the
customer — the inviter WeCom names (scenes 1 and 2), else the advisor the customer added through the
join way's channel code, else the advisor whose customer they are. One row per stay: a redelivered
event records nothing twice."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.communities.joinway_models import (
    GatedJoinWay,
    GroupJoin,
    GroupJoinWay,
    GroupSetJoining,
    JoinWayStatus,
    WhenFull,
)
from siyu.communities.models import GroupChat, GroupMember, GroupSet
from siyu.console.i18n import N_
from siyu.customers.listing import CALENDAR_ZONE
from siyu.db import utcnow
from siyu.errors import Conflict, Forbidden, InvalidInput, NotFound
from siyu.jobs.service import enqueue
from siyu.tenancy import audit
from siyu.tenancy.models import Role, Staff
from siyu.tenancy.principal import Principal
from siyu.tenancy.service import valid_id

KEEP_JOB = "communities.join_way_keep"
CHATS_MAX = 5  # WeCom: a join way lists at most 5 groups
CAPACITIES = (200, 500)  # WeCom: a customer group; 500 after the corp's certification
MIN_CAPACITY = 2  # smaller capacities only for the emulator's explicit friendlier mode (demo)
MAX_CAPACITY = 500
ROOM_BASE_NAME_MAX = 40
ROOM_BASE_ID_MAX = 10_000
MAX_WAYS_PER_SET = 50
WRITERS = (Role.ADMINISTRATOR, Role.OPERATIONS)
WHEN_FULL = {WhenFull.ALERT.value: N_("Alert operations"),
             WhenFull.AUTO_CREATE.value: N_("WeCom creates the next group")}
STATUSES = {JoinWayStatus.ACTIVE.value: N_("Active"), JoinWayStatus.EXHAUSTED.value: N_("Out of groups"),
            JoinWayStatus.DELETED.value: N_("Deleted")}
SERIES_DAYS = 14


def _require_writer(principal: Principal) -> None:
    if principal.kind == "staff" and not principal.has_role(*WRITERS):
        raise Forbidden("your role does not allow this")


def _set(session: Session, *, corp_id: int, set_id: int) -> GroupSet:
    group_set = session.get(GroupSet, set_id) if valid_id(set_id) else None
    if group_set is None or group_set.corp_id != corp_id:
        raise NotFound("group set not found", field="group_set_id")
    return group_set


# --- the set's settings --------------------------------------------------------------------------------------


def settings(session: Session, *, corp_id: int, set_id: int) -> GroupSetJoining:
    """The set's joining settings (made with the defaults the first time)."""
    row = session.scalar(select(GroupSetJoining).where(GroupSetJoining.group_set_id == set_id))
    if row is None:
        _set(session, corp_id=corp_id, set_id=set_id)
        row = GroupSetJoining(corp_id=corp_id, group_set_id=set_id, capacity=200, rotate_at=190,
                              when_full=WhenFull.ALERT.value, room_base_name="", room_base_id=1)
        session.add(row)
        session.flush()
    return row


def _int(value: object, *, field: str, low: int, high: int) -> int:
    try:
        number = int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        number = low - 1
    if isinstance(value, bool) or not low <= number <= high:
        raise InvalidInput("a whole number from %(low)s to %(high)s", field=field, params={"low": low, "high": high})
    return number


def configure(session: Session, *, principal: Principal, set_id: int, capacity: object = None,
              rotate_at: object = None, when_full: str | None = None, room_base_name: str | None = None,
              room_base_id: object = None, ip: str | None = None) -> GroupSetJoining:
    """Group capacity (200, or 500 for a certified corp), the member count at which a group leaves
    the join way (below the capacity), what happens when the set runs out of groups, and the new
    groups' base name and first number. Administrators and operations; audited; the set's join ways
    are brought in line at once."""
    _require_writer(principal)
    row = settings(session, corp_id=principal.corp_id, set_id=set_id)
    cap = _int(capacity, field="capacity", low=MIN_CAPACITY, high=MAX_CAPACITY) if capacity not in (None, "") \
        else row.capacity
    rot = _int(rotate_at, field="rotate_at", low=1, high=cap - 1) if rotate_at not in (None, "") \
        else min(row.rotate_at, cap - 1)
    if when_full is not None and when_full not in WHEN_FULL:
        raise InvalidInput("choose what happens when the groups are full", field="when_full")
    name = row.room_base_name if room_base_name is None else room_base_name.strip()
    if len(name) > ROOM_BASE_NAME_MAX or any(ord(c) < 32 for c in name):
        raise InvalidInput("at most %(n)s characters", field="room_base_name", params={"n": ROOM_BASE_NAME_MAX})
    base_id = _int(room_base_id, field="room_base_id", low=0, high=ROOM_BASE_ID_MAX) \
        if room_base_id not in (None, "") else row.room_base_id
    wf = when_full or row.when_full
    if wf == WhenFull.AUTO_CREATE.value and not name:
        raise InvalidInput("new groups need a base name", field="room_base_name")
    row.capacity, row.rotate_at, row.when_full, row.room_base_name, row.room_base_id = cap, rot, wf, name, base_id
    session.flush()
    audit.record(session, corp_id=principal.corp_id, actor=principal, action="group_set.joining_configured",
                 target_type="group_set", target_id=set_id,
                 detail={"capacity": cap, "rotate_at": rot, "when_full": wf}, ip=ip)
    schedule_set(session, corp_id=principal.corp_id, set_id=set_id, reason="configured")
    return row


# --- join ways -----------------------------------------------------------------------------------------------


def list_ways(session: Session, *, corp_id: int, set_id: int, include_deleted: bool = False) -> list[GroupJoinWay]:
    query = select(GroupJoinWay).where(GroupJoinWay.corp_id == corp_id, GroupJoinWay.group_set_id == set_id)
    if not include_deleted:
        query = query.where(GroupJoinWay.status != JoinWayStatus.DELETED.value)
    return list(session.scalars(query.order_by(GroupJoinWay.id)))


def get_way(session: Session, *, corp_id: int, way_id: int) -> GroupJoinWay:
    way = session.get(GroupJoinWay, way_id) if valid_id(way_id) else None
    if way is None or way.corp_id != corp_id:
        raise NotFound("join way not found", field="join_way_id")
    return way


def by_state(session: Session, *, corp_id: int, state: str | None) -> GroupJoinWay | None:
    if not state or not state.startswith("jw"):
        return None
    return session.scalar(select(GroupJoinWay).where(GroupJoinWay.corp_id == corp_id, GroupJoinWay.state == state))


def _channel_code(session: Session, corp_id: int, code_id: object):
    from siyu.acquisition.models import ChannelCode

    if code_id in (None, ""):
        return None
    try:
        number = int(code_id)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        number = 0
    code = session.get(ChannelCode, number) if valid_id(number) else None
    if code is None or code.corp_id != corp_id:
        raise NotFound("channel code not found", field="channel_code_id")
    return code


def create_way(session: Session, *, principal: Principal, set_id: int, channel_code_id: object = None,
               ip: str | None = None) -> GroupJoinWay:
    """A join way of the set — for the set as a whole, or for one channel code (its joins counted
    under that channel, and the one the code's welcome flow hands out). One per set and channel.
    WeCom makes it in a job (`keep_join_way`); the page shows it being set up until then."""
    _require_writer(principal)
    group_set = _set(session, corp_id=principal.corp_id, set_id=set_id)
    code = _channel_code(session, principal.corp_id, channel_code_id)
    settings(session, corp_id=principal.corp_id, set_id=set_id)
    live = list_ways(session, corp_id=principal.corp_id, set_id=set_id)
    if any(w.channel_code_id == (code.id if code else None) for w in live):
        raise Conflict("this set has a join way for this channel already", field="channel_code_id")
    if code is not None:
        taken = session.scalar(select(GroupJoinWay.id).where(
            GroupJoinWay.corp_id == principal.corp_id, GroupJoinWay.channel_code_id == code.id,
            GroupJoinWay.status != JoinWayStatus.DELETED.value))
        if taken is not None:
            raise Conflict("this channel code hands out another set's join way", field="channel_code_id")
    if len(live) >= MAX_WAYS_PER_SET:
        raise Conflict("a set has at most %(n)s join ways", field="channel_code_id", params={"n": MAX_WAYS_PER_SET})
    way = GroupJoinWay(corp_id=principal.corp_id, group_set_id=group_set.id, channel_code_id=code.id if code else None,
                       state="jw-new", chat_ids=[], status=JoinWayStatus.ACTIVE.value, rotations=0)
    session.add(way)
    session.flush()
    way.state = f"jw{way.id}"
    session.flush()
    audit.record(session, corp_id=principal.corp_id, actor=principal, action="group_join_way.created",
                 target_type="group_join_way", target_id=way.id,
                 detail={"group_set_id": group_set.id, "channel_code_id": way.channel_code_id}, ip=ip)
    schedule_keep(session, way=way, reason="created")
    return way


def delete_way(session: Session, *, principal: Principal, way_id: int, ip: str | None = None) -> GroupJoinWay:
    """Stop handing the join way out: deleted at WeCom by the job (its QR no longer works); the joins
    it brought stay attributed to it."""
    _require_writer(principal)
    way = get_way(session, corp_id=principal.corp_id, way_id=way_id)
    if way.status != JoinWayStatus.DELETED.value:
        way.status = JoinWayStatus.DELETED.value
        session.flush()
        audit.record(session, corp_id=principal.corp_id, actor=principal, action="group_join_way.deleted",
                     target_type="group_join_way", target_id=way.id, detail={"state": way.state}, ip=ip)
        schedule_keep(session, way=way, reason="deleted")
    return way


def schedule_keep(session: Session, *, way: GroupJoinWay, reason: str) -> None:
    """Queue the job that brings the join way at WeCom in line with the set. One job per (way,
    rotation, reason): the many joins that cross the threshold together queue one."""
    enqueue(session, name=KEEP_JOB, payload={"join_way_id": way.id}, corp_id=way.corp_id, queue="wecom",
            idempotency_key=f"{KEEP_JOB}:{way.id}:{way.rotations}:{reason}"[:200])


def schedule_set(session: Session, *, corp_id: int, set_id: int, reason: str) -> None:
    """Queue a keep of each live join way of the set (its groups or settings changed)."""
    stamp = utcnow().strftime("%Y%m%d%H%M%S%f")
    for way in list_ways(session, corp_id=corp_id, set_id=set_id):
        schedule_keep(session, way=way, reason=f"{reason}-{stamp}")


def groups_came_in(session: Session, *, corp_id: int, set_id: int, group_ids: list[int]) -> None:
    """Groups came into the set (put in it, or created by WeCom for its join way): its join ways list
    them, and each gets the set's rules and announcement task (`group_welcome.groups_joined_set`)."""
    from siyu.communities.group_welcome import groups_joined_set

    schedule_set(session, corp_id=corp_id, set_id=set_id, reason="groups")
    groups_joined_set(session, corp_id=corp_id, set_id=set_id, group_ids=group_ids)


# --- which groups a join way should list ---------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    chat_ids: list[str]  # what WeCom should list (empty: nothing to list: the set has no group)
    exhausted: bool  # no group of the set is below the threshold (alert mode: an alert)
    auto_create: bool


def plan(session: Session, *, way: GroupJoinWay, joining: GroupSetJoining) -> Plan:
    """The set's live groups below the threshold, those already listed first (in their order, so a
    customer keeps landing in the group that is filling), then the others oldest first; then, to fill
    the 5 places, groups past the threshold that still have room, as a reserve: WeCom fills the first
    listed group with room, so the reserve takes joins only while the rotation catches up, and no one
    who scans is turned away while a group has room. With none below the threshold the set is
    exhausted (alert mode); in auto-create mode, with no group left with room, the last listed group
    stays (WeCom then creates the next one)."""
    groups = list(session.scalars(select(GroupChat).where(
        GroupChat.corp_id == way.corp_id, GroupChat.group_set_id == way.group_set_id,
        GroupChat.dismissed_at.is_(None)).order_by(GroupChat.wecom_created_at, GroupChat.id)))
    position = {chat_id: i for i, chat_id in enumerate(way.chat_ids or [])}
    groups.sort(key=lambda g: (0, position[g.chat_id]) if g.chat_id in position else (1, 0))
    auto = joining.when_full == WhenFull.AUTO_CREATE.value
    below = [g.chat_id for g in groups if g.member_count < joining.rotate_at]
    reserve = sorted((g for g in groups if joining.rotate_at <= g.member_count < joining.capacity),
                     key=lambda g: g.member_count)
    chosen = (below + [g.chat_id for g in reserve])[:CHATS_MAX]
    if chosen:
        return Plan(chosen, exhausted=not below and not auto, auto_create=auto)
    listed = [c for c in way.chat_ids or [] if any(g.chat_id == c for g in groups)]
    fallback = listed[-1:] or [g.chat_id for g in groups][-1:]
    return Plan(fallback, exhausted=not auto, auto_create=auto)


# --- attribution ---------------------------------------------------------------------------------------------


def _advisor_for(session: Session, *, corp_id: int, external_userid: str, invitor: str | None,
                 code_id: int | None) -> tuple[str | None, int | None]:
    """(advisor userid, channel code id) of a customer's join: the inviter WeCom names, else the
    advisor they added through the join way's code (or, for a set-wide way, their latest add through
    any code), else their latest advisor."""
    from siyu.acquisition.models import ChannelAdd
    from siyu.customers.models import Customer, CustomerFollow

    add_query = select(ChannelAdd.advisor_userid, ChannelAdd.code_id).where(
        ChannelAdd.corp_id == corp_id, ChannelAdd.external_userid == external_userid)
    if code_id is not None:
        add_query = add_query.where(ChannelAdd.code_id == code_id)
    add = session.execute(add_query.order_by(ChannelAdd.at.desc()).limit(1)).first()
    channel = code_id if code_id is not None else (add.code_id if add else None)
    if invitor:
        return invitor, channel
    if add is not None:
        return add.advisor_userid, channel
    follow = session.scalar(select(CustomerFollow.wecom_userid)
                            .join(Customer, Customer.id == CustomerFollow.customer_id)
                            .where(Customer.corp_id == corp_id, Customer.external_userid == external_userid)
                            .order_by(CustomerFollow.id.desc()).limit(1))
    return follow, channel


def record_join(session: Session, *, corp_id: int, stay_id: int) -> GroupJoin | None:
    """Attribute one customer's join (a `group.joined` stay) and, when the join way's group reached
    the threshold, queue its rotation. A group created by WeCom for an auto-create join way joins the
    way's set here. Idempotent: one GroupJoin per stay."""
    stay = session.get(GroupMember, stay_id)
    if stay is None or stay.corp_id != corp_id:
        return None
    existing = session.scalar(select(GroupJoin).where(GroupJoin.stay_id == stay.id))
    if existing is not None:
        return existing
    group = session.get(GroupChat, stay.group_id)
    way = by_state(session, corp_id=corp_id, state=stay.state)
    if way is not None and group.group_set_id is None:
        group.group_set_id = way.group_set_id  # a group WeCom created for the way (auto_create_room)
        group.positioning = session.get(GroupSet, way.group_set_id).positioning
        from siyu.communities.group_welcome import groups_joined_set

        groups_joined_set(session, corp_id=corp_id, set_id=way.group_set_id, group_ids=[group.id])
    advisor, code_id = _advisor_for(session, corp_id=corp_id, external_userid=stay.member_id,
                                    invitor=stay.invitor_userid, code_id=way.channel_code_id if way else None)
    staff_id = session.scalar(select(Staff.id).where(Staff.corp_id == corp_id, Staff.wecom_userid == advisor)) \
        if advisor else None
    join = GroupJoin(corp_id=corp_id, stay_id=stay.id, group_id=group.id,
                     group_set_id=way.group_set_id if way else group.group_set_id,
                     join_way_id=way.id if way else None, channel_code_id=code_id, advisor_userid=advisor,
                     advisor_staff_id=staff_id, customer_id=stay.customer_id, join_scene=stay.join_scene,
                     joined_at=stay.joined_at)
    session.add(join)
    session.flush()
    if group.group_set_id is not None:
        joining = session.scalar(select(GroupSetJoining).where(GroupSetJoining.group_set_id == group.group_set_id))
        threshold = joining.rotate_at if joining else None
        for live in list_ways(session, corp_id=corp_id, set_id=group.group_set_id):
            listed = group.chat_id in (live.chat_ids or [])
            if listed and threshold is not None and group.member_count >= threshold:
                schedule_keep(session, way=live, reason=f"full-{group.chat_id}")  # rotate it out
            elif not listed and way is not None and live.id == way.id:
                schedule_keep(session, way=live, reason=f"new-{group.chat_id}")  # a group WeCom created
    return join


# --- what the console shows ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attribution:
    join_way: str  # "set name" or "set name · channel name"
    channel: str
    advisor: str


def attribution(session: Session, *, corp_id: int, stay_ids: list[int]) -> dict[int, Attribution]:
    """Each stay's join as a person reads it: by which set's join way and channel, brought by whom."""
    if not stay_ids:
        return {}
    rows = list(session.scalars(select(GroupJoin).where(GroupJoin.corp_id == corp_id,
                                                        GroupJoin.stay_id.in_(sorted(set(stay_ids))))))
    channels = _channel_names(session, corp_id, {r.channel_code_id for r in rows if r.channel_code_id})
    sets = {s.id: s.name for s in session.scalars(select(GroupSet).where(
        GroupSet.id.in_({r.group_set_id for r in rows if r.group_set_id})))}
    staff = {s.id: s.name for s in session.scalars(select(Staff).where(
        Staff.id.in_({r.advisor_staff_id for r in rows if r.advisor_staff_id})))}
    out = {}
    for r in rows:
        channel = channels.get(r.channel_code_id or 0, "")
        way = " · ".join(p for p in (sets.get(r.group_set_id or 0, ""), channel) if p) if r.join_way_id else ""
        out[r.stay_id] = Attribution(join_way=way, channel=channel,
                                     advisor=staff.get(r.advisor_staff_id or 0) or r.advisor_userid or "")
    return out


@dataclass
class WayView:
    id: int
    state: str
    channel_code_id: int | None
    channel_name: str
    config_id: str | None
    qr_code: str | None
    status: str
    chat_names: list[str]
    rotations: int
    rotated_at: dt.datetime | None
    exhausted_at: dt.datetime | None
    last_error: str | None
    joins: int


@dataclass
class GroupFill:
    id: int
    name: str
    member_count: int
    capacity: int
    rotate_at: int
    listed: bool
    percent: int


@dataclass
class Overview:
    settings: GroupSetJoining
    ways: list[WayView]
    groups: list[GroupFill]
    series: dict = field(default_factory=dict)  # joins per day by channel
    by_advisor: list[tuple[str, int]] = field(default_factory=list)
    exhausted: bool = False


def _channel_names(session: Session, corp_id: int, ids: set[int]) -> dict[int, str]:
    from siyu.acquisition.models import ChannelCode

    if not ids:
        return {}
    return {c.id: c.name for c in session.scalars(select(ChannelCode).where(ChannelCode.corp_id == corp_id,
                                                                             ChannelCode.id.in_(sorted(ids))))}


def overview(session: Session, *, principal: Principal, set_id: int, days: int = SERIES_DAYS,
             today: dt.date | None = None) -> Overview:
    """A set's join ways (QR, status, the groups listed, rotations), its groups' fill levels, its
    joins per day by channel over `days` days and by advisor."""
    group_set = _set(session, corp_id=principal.corp_id, set_id=set_id)
    joining = settings(session, corp_id=principal.corp_id, set_id=group_set.id)
    ways = list_ways(session, corp_id=principal.corp_id, set_id=group_set.id)
    from siyu.communities.service import _visible

    groups = list(session.scalars(select(GroupChat).where(  # an advisor sees the groups they own
        *_visible(session, principal), GroupChat.group_set_id == group_set.id,
        GroupChat.dismissed_at.is_(None)).order_by(GroupChat.wecom_created_at, GroupChat.id)))
    names = {g.chat_id: g.name for g in groups}
    listed = {c for w in ways for c in w.chat_ids or []}
    join_counts = dict(session.execute(select(GroupJoin.join_way_id, func.count()).where(
        GroupJoin.corp_id == principal.corp_id, GroupJoin.group_set_id == group_set.id)
        .group_by(GroupJoin.join_way_id)).all())
    today = today or utcnow().astimezone(CALENDAR_ZONE).date()
    first = today - dt.timedelta(days=days - 1)
    start = dt.datetime.combine(first, dt.time(), CALENDAR_ZONE).astimezone(dt.UTC)
    rows = session.execute(select(GroupJoin.joined_at, GroupJoin.channel_code_id, GroupJoin.advisor_staff_id,
                                  GroupJoin.advisor_userid).where(
        GroupJoin.corp_id == principal.corp_id, GroupJoin.group_set_id == group_set.id,
        GroupJoin.joined_at >= start)).all()
    channels = _channel_names(session, principal.corp_id,
                              {r.channel_code_id for r in rows if r.channel_code_id}
                              | {w.channel_code_id for w in ways if w.channel_code_id})
    x = [(first + dt.timedelta(days=i)).isoformat() for i in range(days)]
    per: dict[str, dict[str, int]] = {}
    advisors: dict[str, int] = {}
    staff = {s.id: s.name for s in session.scalars(select(Staff).where(
        Staff.id.in_({r.advisor_staff_id for r in rows if r.advisor_staff_id})))}
    for r in rows:
        day = r.joined_at.astimezone(CALENDAR_ZONE).date().isoformat()
        channel = channels.get(r.channel_code_id or 0, "")
        per.setdefault(channel, dict.fromkeys(x, 0))
        if day in per[channel]:
            per[channel][day] += 1
        who = staff.get(r.advisor_staff_id or 0) or r.advisor_userid or ""
        advisors[who] = advisors.get(who, 0) + 1
    series = {"x": x, "series": [{"name": name, "values": [per[name][d] for d in x]} for name in sorted(per)]}
    views = [WayView(id=w.id, state=w.state, channel_code_id=w.channel_code_id,
                     channel_name=channels.get(w.channel_code_id or 0, ""), config_id=w.config_id,
                     qr_code=w.qr_code, status=w.status,
                     chat_names=[names[c] for c in w.chat_ids or [] if c in names],
                     rotations=w.rotations, rotated_at=w.rotated_at, exhausted_at=w.exhausted_at,
                     last_error=w.last_error, joins=join_counts.get(w.id, 0)) for w in ways]
    fills = [GroupFill(id=g.id, name=g.name, member_count=g.member_count, capacity=joining.capacity,
                       rotate_at=joining.rotate_at, listed=g.chat_id in listed,
                       percent=min(100, round(100 * g.member_count / max(joining.capacity, 1)))) for g in groups]
    return Overview(settings=joining, ways=views, groups=fills, series=series,
                    by_advisor=sorted(advisors.items(), key=lambda kv: -kv[1]),
                    exhausted=any(w.status == JoinWayStatus.EXHAUSTED.value for w in ways))


def exhausted_sets(session: Session, *, corp_id: int) -> set[int]:
    """Sets with a join way out of groups (the alert on the sets list)."""
    return set(session.scalars(select(GroupJoinWay.group_set_id).where(
        GroupJoinWay.corp_id == corp_id, GroupJoinWay.status == JoinWayStatus.EXHAUSTED.value)))


# --- handing a join way out ----------------------------------------------------------------------------------


def live_way_for_code(session: Session, *, corp_id: int, code_id: int | None) -> GroupJoinWay | None:
    """The join way a channel code hands out (its own; made at WeCom and not deleted)."""
    if code_id is None:
        return None
    return session.scalar(select(GroupJoinWay).where(
        GroupJoinWay.corp_id == corp_id, GroupJoinWay.channel_code_id == code_id,
        GroupJoinWay.status != JoinWayStatus.DELETED.value, GroupJoinWay.qr_code.is_not(None)))


def live_way_for_set(session: Session, *, corp_id: int, set_id: int) -> GroupJoinWay | None:
    """The set-wide join way (no channel), made at WeCom and not deleted."""
    return session.scalar(select(GroupJoinWay).where(
        GroupJoinWay.corp_id == corp_id, GroupJoinWay.group_set_id == set_id,
        GroupJoinWay.channel_code_id.is_(None), GroupJoinWay.status != JoinWayStatus.DELETED.value,
        GroupJoinWay.qr_code.is_not(None)))


def attachments_for(session: Session, *, way: GroupJoinWay) -> list[dict]:
    """The join way as message attachments (WeCom's shape): its QR code as an image, to scan or
    long-press in WeChat."""
    if not way.qr_code:
        return []
    return [{"msgtype": "image", "image": {"pic_url": way.qr_code}}]


def set_options(session: Session, *, corp_id: int) -> list[tuple[int, str]]:
    """Sets with a live set-wide join way, for pickers (the verification gate)."""
    rows = session.execute(select(GroupSet.id, GroupSet.name)
                           .join(GroupJoinWay, GroupJoinWay.group_set_id == GroupSet.id)
                           .where(GroupSet.corp_id == corp_id, GroupJoinWay.channel_code_id.is_(None),
                                  GroupJoinWay.status != JoinWayStatus.DELETED.value).order_by(GroupSet.name))
    return [(r.id, r.name) for r in rows]


# --- the verification gate ---------------------------------------------------------------------------------


def gate_join_way(session: Session, *, corp_id: int, gated_community_id: int) -> GroupJoinWay | None:
    """The set-wide join way a verification gate hands out (made at WeCom, not deleted), if linked."""
    set_id = session.scalar(select(GatedJoinWay.group_set_id).where(
        GatedJoinWay.corp_id == corp_id, GatedJoinWay.gated_community_id == gated_community_id))
    return live_way_for_set(session, corp_id=corp_id, set_id=set_id) if set_id is not None else None


def gates(session: Session, *, corp_id: int, set_id: int) -> list[tuple[int, str]]:
    """The verification gates that hand out the set's join way: (gated community id, name)."""
    from siyu.acquisition.models import GatedCommunity

    return [(r.id, r.name) for r in session.execute(
        select(GatedCommunity.id, GatedCommunity.name).join(GatedJoinWay,
                                                            GatedJoinWay.gated_community_id == GatedCommunity.id)
        .where(GatedJoinWay.corp_id == corp_id, GatedJoinWay.group_set_id == set_id).order_by(GatedCommunity.name))]


def gate_options(session: Session, *, corp_id: int) -> list[tuple[int, str]]:
    from siyu.acquisition.models import GatedCommunity

    return [(c.id, c.name) for c in session.scalars(select(GatedCommunity).where(GatedCommunity.corp_id == corp_id)
                                                    .order_by(GatedCommunity.name).limit(500))]


def link_gate(session: Session, *, principal: Principal, set_id: int, gated_community_id: object,
              ip: str | None = None) -> None:
    """Let a verification gate hand out the set's (set-wide) join way to the customers it verified;
    a gate hands out one set's at most (linking it again moves it)."""
    from siyu.acquisition.models import GatedCommunity

    _require_writer(principal)
    group_set = _set(session, corp_id=principal.corp_id, set_id=set_id)
    try:
        gate_id = int(gated_community_id)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        gate_id = 0
    gate = session.get(GatedCommunity, gate_id) if valid_id(gate_id) else None
    if gate is None or gate.corp_id != principal.corp_id:
        raise NotFound("verification gate not found", field="gated_community_id")
    if not any(w.channel_code_id is None for w in list_ways(session, corp_id=principal.corp_id, set_id=set_id)):
        raise Conflict("create the set's join way for the whole set first", field="gated_community_id")
    row = session.scalar(select(GatedJoinWay).where(GatedJoinWay.gated_community_id == gate.id))
    if row is None:
        session.add(GatedJoinWay(corp_id=principal.corp_id, gated_community_id=gate.id, group_set_id=group_set.id))
    else:
        row.group_set_id = group_set.id
    session.flush()
    audit.record(session, corp_id=principal.corp_id, actor=principal, action="gated_community.join_way_linked",
                 target_type="gated_community", target_id=gate.id, detail={"group_set_id": group_set.id}, ip=ip)
