"""Corp tags (企业标签) both ways with WeCom: the tag library read from `get_corp_tag_list`, and
tags added to or removed from a customer in Siyu sent to WeCom with `mark_tag`.

The library sync makes Siyu's groups and tags those WeCom lists: names and order follow WeCom; a
tag WeCom no longer lists (or lists as deleted) is removed with its links (WeCom took it off every
customer too); a group is removed when no tag is left in it. Tags Siyu keeps without a WeCom id
stay as they are (their group too).

Marking: the link changes at once, a timeline entry and an audit entry record who did it, and a
`CustomerTagMark` waits for the job (`customers.mark_tag`) that calls WeCom under the effect key
`mark_tag:{mark id}`. While a mark is pending, a profile read from WeCom keeps it (WeCom's answer
does not know it yet; see `pending_overrides`). A refused call rolls the local change back, with a
timeline note, and the 360 page shows it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from siyu.customers import contacts
from siyu.customers.models import (
    Customer,
    CustomerFollow,
    CustomerTag,
    CustomerTagGroup,
    CustomerTagLink,
    CustomerTagMark,
    FollowStatus,
)
from siyu.db import dialect_insert, utcnow
from siyu.errors import Conflict, Forbidden, InvalidInput, NotFound
from siyu.tenancy import audit
from siyu.tenancy.models import Role
from siyu.tenancy.principal import Principal
from siyu.tenancy.service import valid_id
from siyu.wecom.schemas import CorpTagGroup

SYNC_JOB = "customers.sync_corp_tags"
MARK_JOB = "customers.mark_tag"
TAG_WRITERS = (Role.ADMINISTRATOR, Role.OPERATIONS, Role.ADVISOR)
LIBRARY_ROLES = (Role.ADMINISTRATOR, Role.OPERATIONS)
ACTIONS = ("add", "remove")
MAX_NAME = 60


# --- the library from WeCom ----------------------------------------------------------------------------------


@dataclass
class SyncResult:
    groups_added: int = 0
    groups_removed: int = 0
    tags_added: int = 0
    tags_renamed: int = 0
    tags_removed: int = 0
    links_removed: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def _placeholder(prefix: str, row_id: int) -> str:
    return f"~{prefix}{row_id}"  # never a WeCom name: frees a name for another row in the same flush


def sync_library(session: Session, *, corp_id: int, groups: Sequence[CorpTagGroup]) -> SyncResult:
    """Siyu's corp tags become what WeCom lists (`get_corp_tag_list`, all groups)."""
    result = SyncResult()
    live = [g for g in groups if not g.deleted]
    local_groups = list(session.scalars(select(CustomerTagGroup).where(CustomerTagGroup.corp_id == corp_id)))
    by_gid = {g.wecom_group_id: g for g in local_groups if g.wecom_group_id}
    by_gname = {g.name: g for g in local_groups if not g.wecom_group_id}
    local_tags = list(session.scalars(select(CustomerTag).where(CustomerTag.corp_id == corp_id)))
    by_tid = {t.wecom_tag_id: t for t in local_tags if t.wecom_tag_id}

    # Free every name that changes first (WeCom may swap two names), then set the final ones.
    wanted_group: dict[int, tuple[str, int]] = {}
    wanted_tag: dict[int, tuple[int, str, int]] = {}
    seen_groups, seen_tags = set(), set()
    for g_order, g in enumerate(live):
        gname = (g.group_name or g.group_id)[:MAX_NAME]
        group = by_gid.get(g.group_id) or by_gname.pop(gname, None)
        if group is None:
            group = CustomerTagGroup(corp_id=corp_id, wecom_group_id=g.group_id, name=f"~new-{g.group_id}"[:MAX_NAME],
                                     sort_order=g_order)
            session.add(group)
            session.flush()
            result.groups_added += 1
        group.wecom_group_id = g.group_id
        wanted_group[group.id] = (gname, g_order)
        seen_groups.add(group.id)
        for t_order, t in enumerate(x for x in g.tag if not x.deleted):
            tname = (t.name or t.id)[:MAX_NAME]
            tag = by_tid.get(t.id)
            if tag is None:
                adopt = session.scalar(select(CustomerTag).where(
                    CustomerTag.group_id == group.id, CustomerTag.name == tname, CustomerTag.wecom_tag_id.is_(None)))
                if adopt is not None:
                    tag = adopt
                else:
                    tag = CustomerTag(corp_id=corp_id, group_id=group.id, wecom_tag_id=t.id,
                                      name=f"~new-{t.id}"[:MAX_NAME], sort_order=t_order)
                    session.add(tag)
                    session.flush()
                    result.tags_added += 1
                tag.wecom_tag_id = t.id
            elif tag.name != tname:
                result.tags_renamed += 1
            wanted_tag[tag.id] = (group.id, tname, t_order)
            seen_tags.add(tag.id)

    # Gone at WeCom: its tags and their links (links cascade with the tag).
    gone = [t.id for t in local_tags if t.wecom_tag_id and t.id not in seen_tags]
    if gone:
        result.links_removed = session.scalar(select(func.count()).select_from(CustomerTagLink)
                                              .where(CustomerTagLink.tag_id.in_(gone))) or 0
        session.execute(delete(CustomerTagLink).where(CustomerTagLink.tag_id.in_(gone)))
        session.execute(delete(CustomerTag).where(CustomerTag.id.in_(gone)))
        result.tags_removed = len(gone)
    session.flush()
    session.expire_all()

    groups_now = {g.id: g for g in session.scalars(select(CustomerTagGroup).where(CustomerTagGroup.corp_id == corp_id))}
    tags_now = {t.id: t for t in session.scalars(select(CustomerTag).where(CustomerTag.corp_id == corp_id))}
    for gid in wanted_group:
        groups_now[gid].name = _placeholder("g", gid)
    for tid in wanted_tag:
        tags_now[tid].name = _placeholder("t", tid)
    session.flush()
    for gid, (name, order) in wanted_group.items():
        groups_now[gid].name, groups_now[gid].sort_order = name, order
    for tid, (gid, name, order) in wanted_tag.items():
        tags_now[tid].group_id, tags_now[tid].name, tags_now[tid].sort_order = gid, name, order
    session.flush()

    # A WeCom group WeCom no longer lists: removed when empty, else kept as Siyu's own.
    for group in groups_now.values():
        if group.wecom_group_id and group.id not in seen_groups:
            left = session.scalar(select(func.count()).select_from(CustomerTag).where(CustomerTag.group_id == group.id))
            if left:
                group.wecom_group_id = None
            else:
                session.delete(group)
                result.groups_removed += 1
    session.flush()
    return result


@dataclass(frozen=True)
class LibraryTag:
    id: int
    name: str
    wecom_tag_id: str | None
    customers: int


@dataclass(frozen=True)
class LibraryGroup:
    id: int
    name: str
    wecom_group_id: str | None
    tags: list[LibraryTag] = field(default_factory=list)

    @property
    def local_only(self) -> bool:
        """Siyu's own group: neither it nor any of its tags is known to WeCom (a group first seen
        on a customer's profile has no WeCom id until the library sync reads it)."""
        return not self.wecom_group_id and not any(t.wecom_tag_id for t in self.tags)


def library(session: Session, *, principal: Principal) -> list[LibraryGroup]:
    """The corp's tag groups and tags in WeCom's order, with how many customers carry each tag
    (administrators and operations)."""
    if not principal.has_role(*LIBRARY_ROLES):
        raise Forbidden("your role does not allow this")
    corp_id = principal.corp_id
    counts = dict(session.execute(
        select(CustomerTagLink.tag_id, func.count()).where(CustomerTagLink.corp_id == corp_id)
        .group_by(CustomerTagLink.tag_id)).all())
    groups = {g.id: LibraryGroup(id=g.id, name=g.name, wecom_group_id=g.wecom_group_id) for g in session.scalars(
        select(CustomerTagGroup).where(CustomerTagGroup.corp_id == corp_id)
        .order_by(CustomerTagGroup.sort_order, CustomerTagGroup.id))}
    for t in session.scalars(select(CustomerTag).where(CustomerTag.corp_id == corp_id)
                             .order_by(CustomerTag.sort_order, CustomerTag.id).limit(5000)):
        if t.group_id in groups:
            groups[t.group_id].tags.append(LibraryTag(id=t.id, name=t.name, wecom_tag_id=t.wecom_tag_id,
                                                      customers=counts.get(t.id, 0)))
    return list(groups.values())


def request_sync(session: Session, *, principal: Principal, ip: str | None = None) -> int:
    """Enqueue the library sync from WeCom (administrators and operations); returns the job id."""
    from siyu.jobs.service import enqueue

    if principal.kind != "staff" or not principal.has_role(*LIBRARY_ROLES):
        raise Forbidden("your role does not allow this")
    job = enqueue(session, name=SYNC_JOB, payload={"requested_by": principal.staff_id}, corp_id=principal.corp_id,
                  queue="wecom")
    audit.record(session, corp_id=principal.corp_id, actor=principal, action="customer_tags.sync_requested",
                 target_type="job", target_id=job.id, ip=ip)
    return job.id


# --- marking from Siyu ---------------------------------------------------------------------------------------


def _wecom_userid_for(session: Session, *, customer_id: int, preferred: str | None) -> str | None:
    """The advisor whose follow relation WeCom marks: `preferred` when they follow the customer,
    else the first active follow."""
    userids = list(session.scalars(select(CustomerFollow.wecom_userid).where(
        CustomerFollow.customer_id == customer_id, CustomerFollow.status == FollowStatus.ACTIVE)
        .order_by(CustomerFollow.add_time, CustomerFollow.id)))
    if preferred and preferred in userids:
        return preferred
    return userids[0] if userids else None


def _tag_label(session: Session, tag: CustomerTag) -> str:
    group = session.get(CustomerTagGroup, tag.group_id)
    return f"{group.name if group else ''} · {tag.name}"[:130]


def _link(session: Session, customer: Customer, tag_id: int) -> None:
    session.execute(dialect_insert(session)(CustomerTagLink.__table__).values(
        customer_id=customer.id, tag_id=tag_id, corp_id=customer.corp_id, stage=customer.stage, created_at=utcnow(),
    ).on_conflict_do_nothing(index_elements=["customer_id", "tag_id"]))


def _unlink(session: Session, customer: Customer, tag_id: int) -> None:
    session.execute(delete(CustomerTagLink).where(CustomerTagLink.customer_id == customer.id,
                                                  CustomerTagLink.tag_id == tag_id))


def _has_link(session: Session, customer_id: int, tag_id: int) -> bool:
    return session.scalar(select(CustomerTagLink.tag_id).where(CustomerTagLink.customer_id == customer_id,
                                                               CustomerTagLink.tag_id == tag_id)) is not None


def parse_change(tag_id: object, action: object) -> tuple[int, str]:
    try:
        tid = int(str(tag_id).strip())
    except ValueError:
        raise InvalidInput("choose a tag", field="tag_id") from None
    if not valid_id(tid):
        raise InvalidInput("choose a tag", field="tag_id")
    if action not in ACTIONS:
        raise InvalidInput("must be add or remove", field="action")
    return tid, str(action)


def change_tag(session: Session, *, principal: Principal, customer_id: int, tag_id: object, action: object,
               ip: str | None = None) -> CustomerTagMark | None:
    """Add a corp tag to a customer the caller sees, or remove it: at once in Siyu (timeline,
    audit), then at WeCom through `customers.mark_tag` when the tag has a WeCom id (returned mark);
    a Siyu-only tag stays local (None). Nothing changes when the customer already is that way."""
    from siyu.customers.service import get_customer
    from siyu.jobs.service import enqueue

    if principal.kind != "staff" or not principal.has_role(*TAG_WRITERS):
        raise Forbidden("your role does not allow this")
    customer = get_customer(session, principal=principal, customer_id=customer_id)
    tid, action = parse_change(tag_id, action)
    tag = session.get(CustomerTag, tid)
    if tag is None or tag.corp_id != customer.corp_id:
        raise NotFound("tag not found", field="tag_id")
    linked = _has_link(session, customer.id, tag.id)
    if linked == (action == "add"):
        return None
    userid = None
    if tag.wecom_tag_id:
        staff_userid = _staff_wecom_userid(session, principal)
        userid = _wecom_userid_for(session, customer_id=customer.id, preferred=staff_userid)
        if userid is None:
            raise Conflict("no advisor follows this customer in WeCom: the tag cannot be marked there",
                           field="tag_id")
    (_link if action == "add" else _unlink)(session, customer, tag.id)
    label = _tag_label(session, tag)
    now = utcnow()
    contacts.record_event(session, corp_id=customer.corp_id, customer_id=customer.id, kind="tags_changed", at=now,
                          actor=principal.label, actor_staff_id=principal.staff_id,
                          detail={"added": [label] if action == "add" else [],
                                  "removed": [label] if action == "remove" else [],
                                  "local_only": not tag.wecom_tag_id})
    audit.record(session, corp_id=principal.corp_id, actor=principal,
                 action="customer.tag_added" if action == "add" else "customer.tag_removed",
                 target_type="customer", target_id=customer.id, detail={"tag_id": tag.id, "tag": label}, ip=ip)
    if not tag.wecom_tag_id:
        return None
    mark = CustomerTagMark(corp_id=customer.corp_id, customer_id=customer.id, tag_id=tag.id, tag_name=label,
                           action=action, actor_staff_id=principal.staff_id, wecom_userid=userid, state="pending")
    session.add(mark)
    session.flush()
    enqueue(session, name=MARK_JOB, payload={"mark_id": mark.id}, corp_id=customer.corp_id, queue="wecom",
            idempotency_key=f"{MARK_JOB}:{mark.id}")
    return mark


def _staff_wecom_userid(session: Session, principal: Principal) -> str | None:
    from siyu.tenancy.models import Staff

    staff = session.get(Staff, principal.staff_id) if principal.staff_id else None
    return staff.wecom_userid if staff is not None and staff.corp_id == principal.corp_id else None


@dataclass(frozen=True)
class MarkCall:
    """What the job sends to WeCom for one mark."""

    mark_id: int
    userid: str | None
    external_userid: str
    wecom_tag_id: str | None
    action: str


def mark_call(session: Session, *, corp_id: int, mark_id: int) -> MarkCall | None:
    """The call a pending mark needs (None: no such pending mark of the corp)."""
    mark = session.get(CustomerTagMark, mark_id)
    if mark is None or mark.corp_id != corp_id or mark.state != "pending":
        return None
    customer = session.get(Customer, mark.customer_id)
    tag = session.get(CustomerTag, mark.tag_id) if mark.tag_id else None
    userid = _wecom_userid_for(session, customer_id=mark.customer_id, preferred=mark.wecom_userid)
    return MarkCall(mark_id=mark.id, userid=userid, external_userid=customer.external_userid,
                    wecom_tag_id=tag.wecom_tag_id if tag is not None else None, action=mark.action)


def finish_mark(session: Session, *, corp_id: int, mark_id: int, state: str, userid: str | None = None,
                errcode: int | None = None, detail: str = "") -> None:
    """Record what WeCom answered. `failed`: the local change is rolled back (unless a later
    change of the same tag superseded it) with a timeline note."""
    mark = session.get(CustomerTagMark, mark_id)
    if mark is None or mark.corp_id != corp_id or mark.state != "pending":
        return
    mark.state, mark.errcode, mark.detail, mark.finished_at = state, errcode, detail[:500], utcnow()
    if userid:
        mark.wecom_userid = userid
    if state != "failed":
        session.flush()
        return
    customer = session.get(Customer, mark.customer_id)
    later = mark.tag_id is not None and session.scalar(select(CustomerTagMark.id).where(
        CustomerTagMark.customer_id == mark.customer_id, CustomerTagMark.tag_id == mark.tag_id,
        CustomerTagMark.id > mark.id).limit(1)) is not None
    if mark.tag_id is not None and not later:
        (_unlink if mark.action == "add" else _link)(session, customer, mark.tag_id)
    contacts.record_event(session, corp_id=corp_id, customer_id=customer.id, kind="tag_mark_failed", at=utcnow(),
                          actor="wecom", actor_staff_id=mark.actor_staff_id,
                          detail={"tag": mark.tag_name, "action": mark.action, "errcode": errcode,
                                  "rolled_back": mark.tag_id is not None and not later})
    session.flush()


def failed_marks(session: Session, *, customer_id: int, limit: int = 5) -> list[CustomerTagMark]:
    return list(session.scalars(select(CustomerTagMark).where(
        CustomerTagMark.customer_id == customer_id, CustomerTagMark.state == "failed")
        .order_by(CustomerTagMark.id.desc()).limit(limit)))


def tag_options(session: Session, *, corp_id: int, exclude: Sequence[int] = ()) -> list[tuple[int, str, bool]]:
    """Tags a customer may be given: (id, "group · name", has a WeCom id), in library order."""
    rows = session.execute(
        select(CustomerTag.id, CustomerTagGroup.name, CustomerTag.name, CustomerTag.wecom_tag_id)
        .join(CustomerTagGroup, CustomerTagGroup.id == CustomerTag.group_id).where(CustomerTag.corp_id == corp_id)
        .order_by(CustomerTagGroup.sort_order, CustomerTagGroup.id, CustomerTag.sort_order, CustomerTag.id)
        .limit(2000)).all()
    skip = set(exclude)
    return [(i, f"{g} · {n}", bool(w)) for i, g, n, w in rows if i not in skip]


def pending_marks(session: Session, *, customer_id: int) -> list[CustomerTagMark]:
    return list(session.scalars(select(CustomerTagMark).where(
        CustomerTagMark.customer_id == customer_id, CustomerTagMark.state == "pending")
        .order_by(CustomerTagMark.id.desc())))


def pending_overrides(session: Session, *, customer_id: int) -> dict[int, str]:
    """Tag id -> the action of its latest mark not yet sent: what a profile read from WeCom must
    not undo (WeCom's answer predates it)."""
    out: dict[int, str] = {}
    for mark in session.scalars(select(CustomerTagMark).where(
            CustomerTagMark.customer_id == customer_id, CustomerTagMark.state == "pending",
            CustomerTagMark.tag_id.is_not(None)).order_by(CustomerTagMark.id)):
        out[mark.tag_id] = mark.action
    return out
