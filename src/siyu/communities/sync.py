"""Keeping group chats in step with WeCom: apply what `groupchat/get` says (the source of truth) to
the group and its members, and publish `group.joined` / `group.left` for each change.

Every function here is idempotent: applying the same WeCom answer twice changes nothing the second
time, so a redelivered `change_external_chat` callback (which fetches again) or a re-run job is
harmless. A member who is in WeCom's list but has no open stay here joined; a member with an open
stay who is no longer in the list left. Domain events carry keys built from the stay, so even a
publish repeated in another transaction enqueues nothing new."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.communities.models import GroupChat, GroupMember, MemberType
from siyu.customers.service import customer_refs
from siyu.db import utcnow
from siyu.jobs.events import publish
from siyu.tenancy.service import get_staff_by_wecom_userid
from siyu.wecom.schemas import GroupChat as WecomGroupChat

log = logging.getLogger(__name__)

GROUP_JOINED = "group.joined"
GROUP_LEFT = "group.left"
MAX_NAME = 200


@dataclass
class ApplyResult:
    created: bool = False
    changed: list[str] | None = None  # group fields that changed
    joined: int = 0
    left: int = 0

    def as_dict(self) -> dict[str, object]:
        return {"created": self.created, "changed": self.changed or [], "joined": self.joined, "left": self.left}


def epoch(value: int | None, default: dt.datetime | None = None) -> dt.datetime | None:
    if isinstance(value, int) and 0 < value < 2**33:
        return dt.datetime.fromtimestamp(value, dt.UTC)
    return default


def get_by_chat_id(session: Session, *, corp_id: int, chat_id: str, lock: bool = False) -> GroupChat | None:
    """`lock`: hold the group's row until commit (PostgreSQL), so two events of one group applied at
    once by two workers take turns instead of both opening a stay for the same new member."""
    query = select(GroupChat).where(GroupChat.corp_id == corp_id, GroupChat.chat_id == chat_id)
    return session.scalar(query.with_for_update() if lock else query)


def _staff_ids(session: Session, corp_id: int, userids: Iterable[str]) -> dict[str, int | None]:
    out: dict[str, int | None] = {}
    for userid in set(userids):
        staff = get_staff_by_wecom_userid(session, corp_id=corp_id, wecom_userid=userid)
        out[userid] = staff.id if staff is not None else None
    return out


def open_members(session: Session, group_id: int) -> dict[str, GroupMember]:
    rows = session.scalars(select(GroupMember).where(GroupMember.group_id == group_id, GroupMember.left_at.is_(None))
                           .order_by(GroupMember.id))
    out: dict[str, GroupMember] = {}
    for row in rows:
        out.setdefault(row.member_id, row)
    return out


def _event_payload(group: GroupChat, member: GroupMember) -> dict[str, object]:
    return {"group_id": group.id, "stay_id": member.id, "chat_id": group.chat_id, "group_name": group.name,
            "group_set_id": group.group_set_id, "positioning": group.positioning,
            "owner_userid": group.owner_userid, "external_userid": member.member_id,
            "customer_id": member.customer_id, "join_scene": member.join_scene, "state": member.state,
            "invitor_userid": member.invitor_userid, "joined_at": member.joined_at.isoformat(),
            "left_at": member.left_at.isoformat() if member.left_at else None, "quit_scene": member.quit_scene}


def apply_group_chat(session: Session, *, corp_id: int, detail: WecomGroupChat, at: dt.datetime | None = None,
                     quit_scene: int | None = None, left_ids: Iterable[str] = ()) -> tuple[GroupChat, ApplyResult]:
    """Make the group and its members what WeCom says (`groupchat/get`).

    `at` is when a member not in WeCom's list left (the event's time; the sync's time otherwise);
    `quit_scene` is recorded for the members in `left_ids` (a del_member event's list)."""
    now = utcnow()
    at = at or now
    result = ApplyResult(changed=[])
    group = get_by_chat_id(session, corp_id=corp_id, chat_id=detail.chat_id, lock=True)
    if group is None:
        group = GroupChat(corp_id=corp_id, chat_id=detail.chat_id, admin_userids=[])
        session.add(group)
        result.created = True
    values = {"name": detail.name[:MAX_NAME], "owner_userid": detail.owner, "notice": detail.notice,
              "admin_userids": [a.userid for a in detail.admin_list],
              "wecom_created_at": epoch(detail.create_time), "member_version": detail.member_version or ""}
    for key, value in values.items():
        if getattr(group, key) != value:
            if not result.created:
                result.changed.append(key)
            setattr(group, key, value)
    if group.dismissed_at is not None:  # WeCom answers for it: the group is alive after all
        group.dismissed_at = None
        result.changed.append("dismissed_at")
    staff = _staff_ids(session, corp_id, [detail.owner, *(m.userid for m in detail.member_list if m.type == 1)])
    if group.owner_staff_id != staff.get(detail.owner):
        group.owner_staff_id = staff.get(detail.owner)
    group.synced_at = now
    session.flush()

    current = open_members(session, group.id)
    listed = {m.userid: m for m in detail.member_list}
    refs = customer_refs(session, corp_id=corp_id,
                         external_userids=[m.userid for m in detail.member_list if m.type == 2])
    joined: list[GroupMember] = []
    for member_id, m in listed.items():
        row = current.get(member_id)
        customer = refs.get(member_id) if m.type == 2 else None
        if row is None:
            row = GroupMember(corp_id=corp_id, group_id=group.id, member_id=member_id,
                              member_type=MemberType.STAFF.value if m.type == 1 else MemberType.CUSTOMER.value,
                              joined_at=epoch(m.join_time, at), join_scene=m.join_scene,
                              invitor_userid=(m.invitor or {}).get("userid") if m.invitor else None,
                              state=m.state, name=m.name or None,
                              customer_id=customer.id if customer else None,
                              staff_id=staff.get(member_id) if m.type == 1 else None)
            session.add(row)
            joined.append(row)
            continue
        # Fill in what an earlier read did not know (a customer added since; a name asked for now).
        if customer is not None and row.customer_id != customer.id:
            row.customer_id = customer.id
        if m.name and row.name != m.name:
            row.name = m.name
    left_set = set(left_ids)
    left: list[GroupMember] = []
    for member_id, row in current.items():
        if member_id not in listed:
            row.left_at = max(at, row.joined_at)
            row.quit_scene = quit_scene if member_id in left_set else None
            left.append(row)
    session.flush()
    group.member_count = len(listed)
    group.customer_count = sum(1 for m in listed.values() if m.type == 2)
    result.joined, result.left = len(joined), len(left)
    for row in joined:
        if row.member_type == MemberType.CUSTOMER.value:
            publish(session, GROUP_JOINED, _event_payload(group, row), corp_id=corp_id, key=f"stay:{row.id}")
    for row in left:
        if row.member_type == MemberType.CUSTOMER.value:
            publish(session, GROUP_LEFT, _event_payload(group, row), corp_id=corp_id, key=f"stay:{row.id}")
    return group, result


def mark_dismissed(session: Session, *, corp_id: int, chat_id: str, at: dt.datetime) -> GroupChat | None:
    """解散: the group is gone in WeCom (dismiss event, or groupchat/get no longer finds it). Its
    members' stays stay as they were (the group's last picture); idempotent."""
    group = get_by_chat_id(session, corp_id=corp_id, chat_id=chat_id, lock=True)
    if group is None or group.dismissed_at is not None:
        return group
    group.dismissed_at = at
    return group


def known_chat_ids(session: Session, *, corp_id: int) -> list[str]:
    """Chat ids of the corp's groups that are not dismissed (the full sync re-reads those WeCom no
    longer lists, to find out they are gone)."""
    return list(session.scalars(select(GroupChat.chat_id).where(GroupChat.corp_id == corp_id,
                                                                GroupChat.dismissed_at.is_(None))))
