"""Keeping customers in step with WeCom: what an add, an edit, a deletion, a lost contact or a
failed transfer changes, and the profile read from `externalcontact/get`.

Every function here is idempotent: applying the same event twice changes nothing the second time
(timeline entries carry the event's key, follow changes compare event times). Events may also
arrive out of order (a deletion processed before its add): a follow keeps the time of the last add
and of its end, and an event older than what the follow already knows changes nothing but the
timeline."""

from __future__ import annotations

import datetime as dt
import logging
import re
import unicodedata
from dataclasses import dataclass

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from siyu import pii
from siyu.customers.models import (
    Customer,
    CustomerEvent,
    CustomerFollow,
    CustomerTag,
    CustomerTagGroup,
    CustomerTagLink,
    FollowStatus,
    LifecycleStage,
)
from siyu.db import dialect_insert, utcnow
from siyu.tenancy.service import get_staff_by_wecom_userid
from siyu.wecom.schemas import ExternalContactDetail

log = logging.getLogger(__name__)

NAME_HASH_KIND = "customer.name"
REMARK_HASH_KIND = "customer_follow.remark"
MAX_NAME = 120
_SPACES = re.compile(r"\s+")


# --- lookup hashes --------------------------------------------------------------------------------------


def normalise(value: str | None) -> str:
    """What exact search compares: NFKC (full-width to half-width), case-folded, spaces collapsed."""
    if not value:
        return ""
    return _SPACES.sub(" ", unicodedata.normalize("NFKC", value)).strip().casefold()


def name_hash(name: str | None) -> str | None:
    value = normalise(name)
    return pii.lookup_hash(value, kind=NAME_HASH_KIND) if value else None


def remark_hash(remark: str | None) -> str | None:
    value = normalise(remark)
    return pii.lookup_hash(value, kind=REMARK_HASH_KIND) if value else None


# --- timeline ---------------------------------------------------------------------------------------------


def record_event(session: Session, *, corp_id: int, customer_id: int, kind: str, at: dt.datetime, actor: str,
                 actor_staff_id: int | None = None, detail: dict | None = None,
                 source_key: str | None = None) -> bool:
    """A timeline entry; with a `source_key` it is written once (False when it was there already)."""
    values = dict(corp_id=corp_id, customer_id=customer_id, kind=kind, at=at, actor=actor[:160],
                  actor_staff_id=actor_staff_id, detail=detail or {}, source_key=source_key)
    if source_key is None:
        session.add(CustomerEvent(**values))
        session.flush()
        return True
    table = CustomerEvent.__table__
    # RETURNING says whether a row went in (an INSERT's rowcount is -1 on PostgreSQL's driver at times).
    inserted = session.execute(dialect_insert(session)(table).values(**values)
                               .on_conflict_do_nothing(index_elements=["corp_id", "source_key"])
                               .returning(table.c.id)).scalar_one_or_none()
    return inserted is not None


def change_stage(session: Session, customer: Customer, stage: str, *, at: dt.datetime, actor: str,
                 actor_staff_id: int | None = None, source_key: str | None = None, reason: str = "") -> bool:
    if customer.stage == stage:
        return False
    previous = customer.stage
    customer.stage = stage
    customer.lost_at = at if stage == LifecycleStage.LOST else None
    # The copies that make per-stage counts of an advisor's or a tag's customers cheap.
    session.execute(update(CustomerFollow).where(CustomerFollow.customer_id == customer.id).values(stage=stage))
    session.execute(update(CustomerTagLink).where(CustomerTagLink.customer_id == customer.id).values(stage=stage))
    detail = {"from": previous, "to": stage, **({"reason": reason} if reason else {})}
    record_event(session, corp_id=customer.corp_id, customer_id=customer.id, kind="stage_changed", at=at,
                 actor=actor, actor_staff_id=actor_staff_id, detail=detail,
                 source_key=f"{source_key}:stage" if source_key else None)
    return True


def _stage_before_lost(session: Session, customer: Customer) -> str:
    """The stage a lost customer had before: a customer who comes back keeps their history."""
    rows = session.scalars(
        select(CustomerEvent.detail).where(CustomerEvent.customer_id == customer.id,
                                           CustomerEvent.kind == "stage_changed")
        .order_by(CustomerEvent.at.desc(), CustomerEvent.id.desc()).limit(20)
    )
    for detail in rows:
        if detail.get("to") == LifecycleStage.LOST and detail.get("from") in set(LifecycleStage):
            return detail["from"]
    return LifecycleStage.NEW.value


def _active_follows(session: Session, customer_id: int) -> int:
    return len(session.scalars(select(CustomerFollow.id).where(
        CustomerFollow.customer_id == customer_id, CustomerFollow.status == FollowStatus.ACTIVE)).all())


# --- customers and follows ----------------------------------------------------------------------------------


def get_by_external_id(session: Session, *, corp_id: int, external_userid: str) -> Customer | None:
    return session.scalar(select(Customer).where(Customer.corp_id == corp_id,
                                                 Customer.external_userid == external_userid))


def ensure_customer(session: Session, *, corp_id: int, external_userid: str, added_at: dt.datetime) -> Customer:
    """The corp's customer with this external_userid, created (stage new) when missing. Safe against
    a concurrent creation of the same customer (insert or skip, then read)."""
    customer = get_by_external_id(session, corp_id=corp_id, external_userid=external_userid)
    if customer is None:
        now = utcnow()
        session.execute(dialect_insert(session)(Customer.__table__).values(
            corp_id=corp_id, external_userid=external_userid, gender=0, stage=LifecycleStage.NEW.value,
            first_added_at=added_at, created_at=now, updated_at=now,
        ).on_conflict_do_nothing(index_elements=["corp_id", "external_userid"]))
        customer = get_by_external_id(session, corp_id=corp_id, external_userid=external_userid)
        assert customer is not None
    elif added_at < customer.first_added_at:
        customer.first_added_at = added_at
    return customer


def _staff_id(session: Session, corp_id: int, wecom_userid: str, cache: dict[str, int | None] | None = None
              ) -> int | None:
    if cache is not None and wecom_userid in cache:
        return cache[wecom_userid]
    staff = get_staff_by_wecom_userid(session, corp_id=corp_id, wecom_userid=wecom_userid)
    staff_id = staff.id if staff is not None else None
    if cache is not None:
        cache[wecom_userid] = staff_id
    return staff_id


def _get_follow(session: Session, customer_id: int, wecom_userid: str) -> CustomerFollow | None:
    return session.scalar(select(CustomerFollow).where(CustomerFollow.customer_id == customer_id,
                                                       CustomerFollow.wecom_userid == wecom_userid))


def _ensure_follow(session: Session, customer: Customer, *, wecom_userid: str, add_time: dt.datetime,
                   state: str | None, staff_cache: dict[str, int | None] | None = None
                   ) -> tuple[CustomerFollow, bool]:
    """The follow relation, created active when missing; returns it and whether it was created."""
    follow = _get_follow(session, customer.id, wecom_userid)
    if follow is not None:
        return follow, False
    now = utcnow()
    session.execute(dialect_insert(session)(CustomerFollow.__table__).values(
        corp_id=customer.corp_id, customer_id=customer.id, wecom_userid=wecom_userid,
        staff_id=_staff_id(session, customer.corp_id, wecom_userid, staff_cache), add_time=add_time,
        state=state, status=FollowStatus.ACTIVE.value, stage=customer.stage, shared=False, created_at=now,
        updated_at=now,
    ).on_conflict_do_nothing(index_elements=["customer_id", "wecom_userid"]))
    follow = _get_follow(session, customer.id, wecom_userid)
    assert follow is not None
    # A second follow relation: from now on this customer is counted once through either.
    if session.scalar(select(func.count()).select_from(CustomerFollow)
                      .where(CustomerFollow.customer_id == customer.id)) > 1:
        session.execute(update(CustomerFollow).where(CustomerFollow.customer_id == customer.id,
                                                     CustomerFollow.shared.is_(False)).values(shared=True))
    return follow, True


@dataclass(frozen=True)
class Applied:
    """What an event did: the customer it concerns (None: unknown to Siyu and not created) and
    whether the follow relation or the stage changed."""

    customer_id: int | None
    changed: bool


def record_add(session: Session, *, corp_id: int, external_userid: str, wecom_userid: str, at: dt.datetime,
               state: str | None = None, source_key: str | None = None, change_type: str = "") -> Applied:
    """A customer added a member of staff (or was added by them): the customer and the follow
    relation exist and are active, with the channel `state`, unless a later end is known."""
    state = (state or None) and state[:64]
    customer = ensure_customer(session, corp_id=corp_id, external_userid=external_userid, added_at=at)
    follow, created = _ensure_follow(session, customer, wecom_userid=wecom_userid, add_time=at, state=state)
    changed = created
    if not created:
        if follow.status != FollowStatus.ACTIVE:
            if follow.ended_at is None or at > follow.ended_at:  # added again after the end
                follow.status, follow.ended_at, follow.add_time, follow.state = FollowStatus.ACTIVE, None, at, state
                changed = True
        elif at > follow.add_time:  # a new add while active: the end in between never reached us
            follow.add_time, follow.state = at, state
            changed = True
        if follow.staff_id is None:
            follow.staff_id = _staff_id(session, corp_id, wecom_userid)
    if customer.stage == LifecycleStage.LOST and follow.status == FollowStatus.ACTIVE:
        change_stage(session, customer, _stage_before_lost(session, customer), at=at, actor=f"wecom:{wecom_userid}",
                     source_key=source_key, reason="added_again")
        changed = True
    detail = {"wecom_userid": wecom_userid, "staff_id": follow.staff_id, "state": state}
    if change_type and change_type != "add_external_contact":
        detail["change_type"] = change_type
    record_event(session, corp_id=corp_id, customer_id=customer.id, kind="added", at=at,
                 actor=f"wecom:{wecom_userid}", actor_staff_id=follow.staff_id, detail=detail, source_key=source_key)
    session.flush()
    return Applied(customer_id=customer.id, changed=changed)


def record_end(session: Session, *, corp_id: int, external_userid: str, wecom_userid: str, at: dt.datetime,
               status: FollowStatus, source_key: str | None = None, detail: dict | None = None) -> Applied:
    """A follow relation ended: the member of staff deleted the customer (`deleted_by_staff`), the
    customer deleted them (`lost`), or a handover moved the customer to another advisor
    (`transferred`). With no active follow left after a deletion the customer is `lost`; a handover
    never makes them lost (the take-over advisor's add may simply arrive later).
    A customer Siyu never saw is not created."""
    customer = get_by_external_id(session, corp_id=corp_id, external_userid=external_userid)
    if customer is None:
        log.info("%s for a customer unknown to corp %s: nothing to record", status.value, corp_id)
        return Applied(customer_id=None, changed=False)
    follow = _get_follow(session, customer.id, wecom_userid)
    changed = False
    if follow is not None and follow.status == FollowStatus.ACTIVE and at >= follow.add_time:
        follow.status, follow.ended_at = status.value, at
        changed = True
    staff_id = follow.staff_id if follow is not None else _staff_id(session, corp_id, wecom_userid)
    kind = {FollowStatus.DELETED_BY_STAFF: "deleted_by_staff", FollowStatus.TRANSFERRED: "transferred"}.get(
        status, "lost")
    record_event(session, corp_id=corp_id, customer_id=customer.id, kind=kind, at=at, actor=f"wecom:{wecom_userid}",
                 actor_staff_id=staff_id, detail={"wecom_userid": wecom_userid, "staff_id": staff_id, **(detail or {})},
                 source_key=source_key)
    session.flush()
    if (changed and status != FollowStatus.TRANSFERRED and customer.stage != LifecycleStage.LOST
            and _active_follows(session, customer.id) == 0):
        change_stage(session, customer, LifecycleStage.LOST.value, at=at, actor=f"wecom:{wecom_userid}",
                     source_key=source_key, reason=kind)
    session.flush()
    return Applied(customer_id=customer.id, changed=changed)


TRANSFER_ADD_WINDOW = dt.timedelta(days=7)


def ended_by_transfer(session: Session, *, corp_id: int, external_userid: str, wecom_userid: str,
                      at: dt.datetime) -> bool:
    """Whether another advisor's follow of this customer ended by a handover shortly before `at`
    (then an add for `wecom_userid` without a welcome code is that handover's take-over)."""
    customer = get_by_external_id(session, corp_id=corp_id, external_userid=external_userid)
    if customer is None:
        return False
    return session.scalar(select(CustomerFollow.id).where(
        CustomerFollow.customer_id == customer.id, CustomerFollow.wecom_userid != wecom_userid,
        CustomerFollow.status == FollowStatus.TRANSFERRED.value,
        CustomerFollow.ended_at >= at - TRANSFER_ADD_WINDOW).limit(1)) is not None


def record_note_event(session: Session, *, corp_id: int, external_userid: str, wecom_userid: str, at: dt.datetime,
                      kind: str, detail: dict, source_key: str | None = None) -> Applied:
    """A timeline entry for an event that changes no state (an edit, a failed transfer)."""
    customer = get_by_external_id(session, corp_id=corp_id, external_userid=external_userid)
    if customer is None:
        return Applied(customer_id=None, changed=False)
    staff_id = _staff_id(session, corp_id, wecom_userid) if wecom_userid else None
    record_event(session, corp_id=corp_id, customer_id=customer.id, kind=kind, at=at,
                 actor=f"wecom:{wecom_userid}" if wecom_userid else "wecom", actor_staff_id=staff_id,
                 detail={"wecom_userid": wecom_userid, "staff_id": staff_id, **detail}, source_key=source_key)
    return Applied(customer_id=customer.id, changed=False)


# --- the profile from externalcontact/get ----------------------------------------------------------------------


def _epoch(value: int | None, default: dt.datetime) -> dt.datetime:
    if not value or value <= 0:
        return default
    try:
        return dt.datetime.fromtimestamp(int(value), dt.UTC)
    except (OverflowError, OSError, ValueError):
        return default


def ensure_tag(session: Session, *, corp_id: int, wecom_tag_id: str, name: str, group_name: str,
               wecom_group_id: str | None = None) -> CustomerTag:
    """The corp tag with WeCom's id, created (in its group, found by name) when missing."""
    tag = session.scalar(select(CustomerTag).where(CustomerTag.corp_id == corp_id,
                                                   CustomerTag.wecom_tag_id == wecom_tag_id))
    if tag is not None:
        if name and tag.name != name[:60]:
            tag.name = name[:60]
        return tag
    group_name = (group_name or "未分组")[:60]
    group = session.scalar(select(CustomerTagGroup).where(CustomerTagGroup.corp_id == corp_id,
                                                          CustomerTagGroup.name == group_name))
    if group is None:
        group = CustomerTagGroup(corp_id=corp_id, name=group_name, wecom_group_id=wecom_group_id)
        session.add(group)
        session.flush()
    tag = CustomerTag(corp_id=corp_id, group_id=group.id, wecom_tag_id=wecom_tag_id, name=(name or wecom_tag_id)[:60])
    session.add(tag)
    session.flush()
    return tag


def _sync_tags(session: Session, customer: Customer, wecom_tags: dict[str, tuple[str, str]], at: dt.datetime
               ) -> None:
    """The customer's WeCom corp tags become exactly `wecom_tags` (tag id -> (group, name)); tags
    Siyu keeps without a WeCom id are left alone, and so are tags marked in Siyu whose mark is not
    sent yet (`siyu.customers.tags.pending_overrides`: WeCom's answer does not know them)."""
    from siyu.customers.tags import pending_overrides

    wanted = {ensure_tag(session, corp_id=customer.corp_id, wecom_tag_id=tid, name=name, group_name=group).id: name
              for tid, (group, name) in wecom_tags.items()}
    current = dict(session.execute(
        select(CustomerTag.id, CustomerTag.name).join(CustomerTagLink, CustomerTagLink.tag_id == CustomerTag.id)
        .where(CustomerTagLink.customer_id == customer.id, CustomerTag.wecom_tag_id.is_not(None))
    ).all())
    for tag_id, action in pending_overrides(session, customer_id=customer.id).items():
        if action == "add" and tag_id in current:  # added in Siyu: WeCom not listing it yet removes nothing
            wanted[tag_id] = current[tag_id]
        elif action == "remove":  # removed in Siyu: WeCom still listing it adds nothing
            wanted.pop(tag_id, None)
    added = [tid for tid in wanted if tid not in current]
    removed = [tid for tid in current if tid not in wanted]
    if added:
        session.execute(dialect_insert(session)(CustomerTagLink.__table__).values(
            [{"customer_id": customer.id, "tag_id": tid, "corp_id": customer.corp_id, "stage": customer.stage,
              "created_at": utcnow()}
             for tid in added]).on_conflict_do_nothing(index_elements=["customer_id", "tag_id"]))
    if removed:
        session.execute(delete(CustomerTagLink).where(CustomerTagLink.customer_id == customer.id,
                                                      CustomerTagLink.tag_id.in_(removed)))
    if added or removed:
        record_event(session, corp_id=customer.corp_id, customer_id=customer.id, kind="tags_changed", at=at,
                     actor="wecom", detail={"added": sorted(wanted[t] for t in added),
                                            "removed": sorted(current[t] for t in removed)})


def apply_profile(session: Session, *, corp_id: int, detail: ExternalContactDetail) -> Customer:
    """Write what `externalcontact/get` says of a customer: name, gender, unionid, each follow's
    remark, description, add way and state, and the corp tags its advisors marked."""
    now = utcnow()
    contact = detail.external_contact
    follows = detail.follow_user
    first = min((_epoch(f.createtime, now) for f in follows), default=now)
    customer = ensure_customer(session, corp_id=corp_id, external_userid=contact.external_userid, added_at=first)
    name = (contact.name or "").strip()[:MAX_NAME] or None
    searchable_changed = customer.search_version == 0
    if name != customer.name:
        customer.name, customer.name_hash = name, name_hash(name)
        searchable_changed = True
    customer.gender = contact.gender if contact.gender in (0, 1, 2) else 0
    customer.unionid = (contact.unionid or None) and contact.unionid[:64]
    staff_cache: dict[str, int | None] = {}
    wecom_tags: dict[str, tuple[str, str]] = {}
    for f in follows:
        add_time = _epoch(f.createtime, now)
        follow, _created = _ensure_follow(session, customer, wecom_userid=f.userid, add_time=add_time,
                                          state=(f.state or None) and f.state[:64], staff_cache=staff_cache)
        remark = f.remark.strip()[:MAX_NAME] or None
        if remark != follow.remark:
            follow.remark, follow.remark_hash = remark, remark_hash(remark)
            searchable_changed = True
        description = f.description.strip()[:300] or None
        if description != follow.description:
            follow.description = description
        if f.add_way is not None and follow.add_way != f.add_way:
            follow.add_way = f.add_way
        if f.state and not follow.state:
            follow.state = f.state[:64]
        if follow.staff_id is None:
            follow.staff_id = _staff_id(session, corp_id, f.userid, staff_cache)
        for tag in f.tags:
            if tag.tag_id and tag.type in (1, None):
                wecom_tags[tag.tag_id] = (tag.group_name or "", tag.tag_name or "")
    _sync_tags(session, customer, wecom_tags, now)
    if searchable_changed:
        from siyu.customers import search  # search folds text as exact search does (normalise, here)

        search.reindex(session, customer=customer)
    customer.profile_synced_at = now
    session.flush()
    return customer


# --- handover (客户继承): what the compliance domain's handover asks and tells ----------------------------------


def followers_of_advisor_customers(session: Session, *, corp_id: int, wecom_userid: str) -> dict[str, set[str]]:
    """The customers an advisor follows actively (external_userid), each with every advisor who
    follows them actively (the advisor included)."""
    mine = (select(CustomerFollow.customer_id)
            .where(CustomerFollow.corp_id == corp_id, CustomerFollow.wecom_userid == wecom_userid,
                   CustomerFollow.status == FollowStatus.ACTIVE))
    rows = session.execute(
        select(Customer.external_userid, CustomerFollow.wecom_userid)
        .join(CustomerFollow, CustomerFollow.customer_id == Customer.id)
        .where(Customer.corp_id == corp_id, Customer.id.in_(mine), CustomerFollow.status == FollowStatus.ACTIVE)
    ).all()
    out: dict[str, set[str]] = {}
    for external_userid, userid in rows:
        out.setdefault(external_userid, set()).add(userid)
    return out


def record_transfer(session: Session, *, corp_id: int, external_userid: str, handover_userid: str,
                    takeover_userid: str, at: dt.datetime, source_key: str | None = None) -> Applied:
    """A handover completed: the take-over advisor follows the customer from `at`, and the handing
    advisor's follow relation ends as `transferred` (not a deletion: the customer stays the firm's).
    WeCom's own events for the same handover (the DELETE_BY_TRANSFER deletion and the take-over
    advisor's add) find the follows in this state and change nothing more."""
    applied = record_add(session, corp_id=corp_id, external_userid=external_userid, wecom_userid=takeover_userid,
                         at=at, source_key=f"{source_key}:add" if source_key else None, change_type="transfer")
    record_end(session, corp_id=corp_id, external_userid=external_userid, wecom_userid=handover_userid, at=at,
               status=FollowStatus.TRANSFERRED, source_key=f"{source_key}:end" if source_key else None,
               detail={"transferred_to": takeover_userid})
    return applied
