"""The customers domain's actions for the console and the REST API: the 360 view of one customer,
notes, the firm's identity link, unmasking, the dashboard's figures. The list, its filters and
counts are in `siyu.customers.listing` (re-exported here, so callers use `service.*`).

Visibility is enforced here, in every function that takes a `principal`: an advisor sees the
customers they actively follow (their department's subtree when their Staff row `sees_department`),
operations, administrators, compliance officers, auditors and API keys see the whole corp
(`siyu.tenancy.service.visible_staff_ids`). A customer the caller may not see is "not found".

Names and remarks leave this module masked (`siyu.pii.mask_name`); `unmask_customer` returns them in
clear and writes an audit entry."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu import pii
from siyu.console.i18n import N_
from siyu.customers import contacts
from siyu.customers.listing import (  # noqa: F401 - the list's API, re-exported
    CALENDAR_ZONE,
    MAX_PAGE_SIZE,
    MAX_QUERY,
    MAX_STATE,
    PAGE_SIZE,
    STAGES,
    CustomerFilters,
    CustomerPage,
    CustomerRow,
    FollowInfo,
    _day_start,
    _followed_by,
    _follows_of,
    _staff_names,
    count_customers,
    customer_conditions,
    decode_cursor,
    encode_cursor,
    list_customers,
    make_filters,
    stage_counts,
)
from siyu.customers.models import (
    Customer,
    CustomerEvent,
    CustomerFollow,
    CustomerNote,
    CustomerTag,
    CustomerTagGroup,
    CustomerTagLink,
    LifecycleStage,
)
from siyu.db import utcnow
from siyu.errors import Conflict, Forbidden, InvalidInput, NotFound
from siyu.tenancy import audit
from siyu.tenancy.models import Role, Staff
from siyu.tenancy.principal import Principal
from siyu.tenancy.service import valid_id, visible_staff_ids

MAX_NOTE = 2000
TIMELINE_LIMIT = 100
FIRM_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")
EXTERNAL_ID_RE = re.compile(r"[A-Za-z0-9_\-]{1,64}")
_NOTE_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # newlines and tabs are fine in a note
# Roles that write notes; compliance officers and auditors read.
NOTE_WRITERS = (Role.ADMINISTRATOR, Role.OPERATIONS, Role.ADVISOR)


# --- one customer -----------------------------------------------------------------------------------------------


def _may_see(session: Session, principal: Principal, customer: Customer) -> bool:
    if customer.corp_id != principal.corp_id:
        return False
    visible = visible_staff_ids(session, principal=principal)
    if visible is None:
        return True
    if not visible:
        return False
    return session.scalar(_followed_by(principal.corp_id, visible).where(
        CustomerFollow.customer_id == customer.id).limit(1)) is not None


def get_customer(session: Session, *, principal: Principal, customer_id: int) -> Customer:
    customer = session.get(Customer, customer_id) if valid_id(customer_id) else None
    if customer is None or not _may_see(session, principal, customer):
        raise NotFound("customer not found", field="customer_id")
    return customer


def valid_external_userid(value: object, *, field: str = "external_userid") -> str:
    if not isinstance(value, str) or not EXTERNAL_ID_RE.fullmatch(value):
        raise InvalidInput("an external_userid is 1–64 letters, digits, '-' or '_'", field=field)
    return value


def get_customer_by_external_id(session: Session, *, principal: Principal, external_userid: str) -> Customer:
    ext = valid_external_userid(external_userid)
    customer = contacts.get_by_external_id(session, corp_id=principal.corp_id, external_userid=ext)
    if customer is None or not _may_see(session, principal, customer):
        raise NotFound("customer not found", field="external_userid")
    return customer


def valid_firm_customer_id(value: object, *, field: str = "firm_customer_id") -> str:
    if not isinstance(value, str) or not FIRM_ID_RE.fullmatch(value.strip()):
        raise InvalidInput("the firm's customer id is 1–64 letters, digits, '.', '_' or '-'", field=field)
    return value.strip()


def get_customer_by_firm_id(session: Session, *, principal: Principal, firm_customer_id: str,
                            field: str = "firm_customer_id") -> Customer:
    """The customer linked to the firm's own customer id (for the firm integration API)."""
    ref = valid_firm_customer_id(firm_customer_id, field=field)
    customer = session.scalar(select(Customer).where(Customer.corp_id == principal.corp_id,
                                                     Customer.firm_customer_id == ref))
    if customer is None or not _may_see(session, principal, customer):
        raise NotFound("customer not found", field=field)
    return customer


def customer_detail_by_firm_id(session: Session, *, principal: Principal, firm_customer_id: str) -> CustomerDetail:
    return _detail(session, get_customer_by_firm_id(session, principal=principal, firm_customer_id=firm_customer_id))


@dataclass(frozen=True)
class TagInfo:
    id: int
    group: str
    name: str


@dataclass(frozen=True)
class NoteInfo:
    id: int
    author: str | None
    text: str
    created_at: dt.datetime


@dataclass(frozen=True)
class RiskInfo:
    """The compliance domain's risk assessment in force (C1–C5), looked up by the customer's refs."""

    level: str
    expires_at: dt.datetime
    expired: bool
    source: str
    customer_ref: str


@dataclass(frozen=True)
class CustomerDetail:
    """The 360 view: profile (masked), follows, tags, notes, risk level, timeline."""

    row: CustomerRow
    unionid: str | None
    lost_at: dt.datetime | None
    profile_synced_at: dt.datetime | None
    created_at: dt.datetime
    tags: list[TagInfo]
    notes: list[NoteInfo]
    events: list[CustomerEvent]
    risk: RiskInfo | None
    staff_names: dict[int, str]


def risk_of(session: Session, *, corp_id: int, refs: Iterable[str | None]) -> RiskInfo | None:
    """The customer's current risk assessment from `siyu.compliance.suitability` (by external_userid
    or the firm's customer id, whichever was assessed last); None when there is none."""
    from siyu.compliance import suitability
    from siyu.errors import SiyuError

    found = []
    for ref in dict.fromkeys(r for r in refs if r):
        try:
            current = suitability.current_assessment(session, corp_id=corp_id, customer_ref=ref)
        except SiyuError:
            continue
        if current is not None:
            found.append((current.assessed_at, current.id, ref, current))
    if not found:
        return None
    _at, _id, ref, current = max(found, key=lambda f: (f[0], f[1]))
    return RiskInfo(level=current.level, expires_at=current.expires_at, expired=current.expires_at <= utcnow(),
                    source=current.source, customer_ref=ref)


def customer_detail(session: Session, *, principal: Principal, customer_id: int) -> CustomerDetail:
    customer = get_customer(session, principal=principal, customer_id=customer_id)
    return _detail(session, customer)


def _detail(session: Session, customer: Customer) -> CustomerDetail:
    corp_id = customer.corp_id
    follows = _follows_of(session, corp_id, [customer.id], with_remarks=True).get(customer.id, [])
    row = CustomerRow(id=customer.id, external_userid=customer.external_userid,
                      name_masked=pii.mask_name(customer.name), gender=customer.gender, stage=customer.stage,
                      first_added_at=customer.first_added_at, firm_customer_id=customer.firm_customer_id,
                      follows=follows, tags=[])
    tags = [TagInfo(id=t.id, group=g, name=t.name) for t, g in session.execute(
        select(CustomerTag, CustomerTagGroup.name).join(CustomerTagLink, CustomerTagLink.tag_id == CustomerTag.id)
        .join(CustomerTagGroup, CustomerTagGroup.id == CustomerTag.group_id)
        .where(CustomerTagLink.customer_id == customer.id)
        .order_by(CustomerTagGroup.sort_order, CustomerTagGroup.id, CustomerTag.sort_order, CustomerTag.id)
    ).all()]
    notes = list(session.scalars(select(CustomerNote).where(CustomerNote.customer_id == customer.id)
                                 .order_by(CustomerNote.created_at.desc(), CustomerNote.id.desc()).limit(100)))
    events = list(session.scalars(select(CustomerEvent).where(CustomerEvent.customer_id == customer.id)
                                  .order_by(CustomerEvent.at.desc(), CustomerEvent.id.desc()).limit(TIMELINE_LIMIT)))
    names = _staff_names(session, corp_id, [*(n.author_staff_id for n in notes), *(e.actor_staff_id for e in events),
                                            *(e.detail.get("staff_id") for e in events
                                              if isinstance(e.detail.get("staff_id"), int))])
    return CustomerDetail(
        row=row, unionid=customer.unionid, lost_at=customer.lost_at, profile_synced_at=customer.profile_synced_at,
        created_at=customer.created_at, tags=tags,
        notes=[NoteInfo(id=n.id, author=names.get(n.author_staff_id), text=n.text, created_at=n.created_at)
               for n in notes],
        events=events,
        risk=risk_of(session, corp_id=corp_id, refs=(customer.external_userid, customer.firm_customer_id)),
        staff_names=names,
    )


def customer_detail_by_external_id(session: Session, *, principal: Principal, external_userid: str
                                   ) -> CustomerDetail:
    return _detail(session, get_customer_by_external_id(session, principal=principal,
                                                        external_userid=external_userid))


@dataclass(frozen=True)
class Unmasked:
    name: str | None
    remarks: dict[int, str | None]  # follow id -> remark


def unmask_customer(session: Session, *, principal: Principal, customer_id: int, ip: str | None = None,
                    reason: str = "") -> Unmasked:
    """The customer's name and remarks in clear, for this caller, this once: audited."""
    customer = get_customer(session, principal=principal, customer_id=customer_id)
    remarks = dict(session.execute(select(CustomerFollow.id, CustomerFollow.remark)
                                   .where(CustomerFollow.customer_id == customer.id)).all())
    audit.record(session, corp_id=principal.corp_id, actor=principal, action="customer.unmasked",
                 target_type="customer", target_id=customer.id,
                 detail={"fields": ["name", "remark"], **({"reason": reason[:200]} if reason else {})}, ip=ip)
    return Unmasked(name=customer.name, remarks=remarks)


def unmask_names(session: Session, *, principal: Principal, customer_ids: list[int], ip: str | None = None
                 ) -> dict[int, str | None]:
    """Clear names of customers the caller may see (the REST API's `unmask=true`): one audit entry."""
    if not customer_ids:
        return {}
    conds = customer_conditions(session, principal) or [False]
    rows = dict(session.execute(select(Customer.id, Customer.name).where(*conds, Customer.id.in_(customer_ids))).all())
    if rows:
        audit.record(session, corp_id=principal.corp_id, actor=principal, action="customer.unmasked",
                     target_type="customer", target_id=",".join(map(str, sorted(rows)))[:80],
                     detail={"fields": ["name"], "customers": len(rows)}, ip=ip)
    return rows


# --- notes, identity link ----------------------------------------------------------------------------------------


def add_note(session: Session, *, principal: Principal, customer_id: int, text: str) -> CustomerNote:
    """An advisor's note on a customer they see (跟进记录); compliance officers and auditors only read."""
    if principal.kind != "staff" or not principal.has_role(*NOTE_WRITERS):
        raise Forbidden("your role does not allow this")
    customer = get_customer(session, principal=principal, customer_id=customer_id)
    text = (text or "").strip()
    if not text:
        raise InvalidInput("this field is required", field="text")
    if len(text) > MAX_NOTE:
        raise InvalidInput("must have at most %(n)s characters", field="text", params={"n": MAX_NOTE})
    if _NOTE_CONTROL.search(text):
        raise InvalidInput("must not contain control characters", field="text")
    note = CustomerNote(corp_id=customer.corp_id, customer_id=customer.id, author_staff_id=principal.staff_id,
                        text=text)
    session.add(note)
    session.flush()
    contacts.record_event(session, corp_id=customer.corp_id, customer_id=customer.id, kind="note_added", at=utcnow(),
                          actor=principal.label, actor_staff_id=principal.staff_id, detail={"note_id": note.id})
    return note


def _masked_ref(value: str | None) -> str | None:
    if not value:
        return None
    return "*" * max(0, len(value) - 4) + value[-4:] if len(value) > 4 else "*" * len(value)


def link_firm_customer(session: Session, *, principal: Principal, external_userid: str,
                       firm_customer_id: str, ip: str | None = None) -> Customer:
    """Link the customer to the firm's own customer id (客户号), unique within the corp. Linking
    again to the same id changes nothing; to another id replaces the link (both audited)."""
    customer = get_customer_by_external_id(session, principal=principal, external_userid=external_userid)
    if not isinstance(firm_customer_id, str) or not FIRM_ID_RE.fullmatch(firm_customer_id.strip()):
        raise InvalidInput("the firm's customer id is 1–64 letters, digits, '.', '_' or '-'", field="firm_customer_id")
    firm_customer_id = firm_customer_id.strip()
    if customer.firm_customer_id == firm_customer_id:
        return customer
    other = session.scalar(select(Customer.id).where(Customer.corp_id == principal.corp_id,
                                                     Customer.firm_customer_id == firm_customer_id,
                                                     Customer.id != customer.id))
    if other is not None:
        raise Conflict("another customer is linked to this firm customer id", field="firm_customer_id")
    previous = customer.firm_customer_id
    customer.firm_customer_id = firm_customer_id
    session.flush()
    detail = {"firm_customer_id": _masked_ref(firm_customer_id), "previous": _masked_ref(previous)}
    contacts.record_event(session, corp_id=customer.corp_id, customer_id=customer.id, kind="firm_linked", at=utcnow(),
                          actor=principal.label, actor_staff_id=principal.staff_id, detail=detail)
    audit.record(session, corp_id=principal.corp_id, actor=principal, action="customer.linked",
                 target_type="customer", target_id=customer.id, detail=detail, ip=ip)
    return customer


# --- what the filters offer ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AdvisorOption:
    id: int
    name: str


def advisor_options(session: Session, *, principal: Principal) -> list[AdvisorOption]:
    """Members of staff the advisor filter offers: those with a WeCom user id whose customers the
    caller sees."""
    visible = visible_staff_ids(session, principal=principal)
    q = select(Staff.id, Staff.name).where(Staff.corp_id == principal.corp_id, Staff.wecom_userid.is_not(None))
    if visible is not None:
        q = q.where(Staff.id.in_(sorted(visible)))
    return [AdvisorOption(id=i, name=n) for i, n in session.execute(q.order_by(Staff.name, Staff.id).limit(1000))]


def list_tags(session: Session, *, corp_id: int) -> list[TagInfo]:
    return [TagInfo(id=t.id, group=g, name=t.name) for t, g in session.execute(
        select(CustomerTag, CustomerTagGroup.name).join(CustomerTagGroup, CustomerTagGroup.id == CustomerTag.group_id)
        .where(CustomerTag.corp_id == corp_id)
        .order_by(CustomerTagGroup.sort_order, CustomerTagGroup.id, CustomerTag.sort_order, CustomerTag.id)
        .limit(2000)
    ).all()]


# --- dashboard -------------------------------------------------------------------------------------------------------

NEW_CUSTOMER_DAYS = 14




def dashboard_charts(session: Session, *, principal: Principal) -> list[dict]:
    """New customers per day (Asia/Shanghai) over two weeks: a view for those who run acquisition
    (administrators, operations); advisors see their figures."""
    if not principal.has_role(Role.ADMINISTRATOR, Role.OPERATIONS):
        return []
    today = utcnow().astimezone(CALENDAR_ZONE).date()
    days = [today - dt.timedelta(days=NEW_CUSTOMER_DAYS - 1 - i) for i in range(NEW_CUSTOMER_DAYS)]
    conds = customer_conditions(session, principal)
    counts = dict.fromkeys(days, 0)
    for day in days if conds is not None else ():
        # One index range per day: cheaper than reading two weeks of rows and counting in Python.
        counts[day] = session.scalar(select(func.count()).select_from(Customer).where(
            *conds, Customer.first_added_at >= _day_start(day),
            Customer.first_added_at < _day_start(day + dt.timedelta(days=1)))) or 0
    return [{
        "key": "new_customers",
        "title": N_("New customers per day"),
        "kind": "bar",
        "x": [d.isoformat() for d in days],
        "series": [{"label": N_("New customers"), "values": [counts[d] for d in days]}],
    }]



def follow_endings(session: Session, *, corp_id: int, since: dt.datetime, until: dt.datetime
                   ) -> dict[str, dict[str, int]]:
    """Follows that ended in [since, until), per advisor's WeCom userid: {"lost": customers who deleted
    the advisor, "deleted": customers the advisor deleted} (for service-quality reports)."""
    rows = session.execute(
        select(CustomerFollow.wecom_userid, CustomerFollow.status, func.count())
        .where(CustomerFollow.corp_id == corp_id, CustomerFollow.ended_at >= since, CustomerFollow.ended_at < until,
               CustomerFollow.status.in_(("lost", "deleted_by_staff")))
        .group_by(CustomerFollow.wecom_userid, CustomerFollow.status))
    out: dict[str, dict[str, int]] = {}
    for userid, status, n in rows:
        counts = out.setdefault(userid, {"lost": 0, "deleted": 0})
        counts["lost" if status == "lost" else "deleted"] += n
    return out


# What people read for a follow's `state` (the tracking parameter of the code it came through): the
# channel code's name, which acquisition keeps. It registers a lookup here so that customers need not
# import it; without one the raw state is shown.
_channel_namers: list = []


def register_channel_namer(namer) -> None:
    """`namer(session, corp_id=, states=) -> {state: name}` for the states it knows."""
    if namer not in _channel_namers:
        _channel_namers.append(namer)


def channel_names(session: Session, *, corp_id: int, states: Iterable[str | None]) -> dict[str, str]:
    wanted = {s for s in states if s}
    names: dict[str, str] = {}
    for namer in _channel_namers:
        if wanted - names.keys():
            names.update(namer(session, corp_id=corp_id, states=wanted - names.keys()))
    return names


def masked_names(session: Session, *, corp_id: int, external_userids: Iterable[str | None]) -> dict[str, str]:
    """external_userid -> the customer's masked name, for pages that list customers by WeCom id
    (data requests, handovers): a person reads names, never ids."""
    wanted = sorted({e for e in external_userids if e})
    out: dict[str, str] = {}
    for start in range(0, len(wanted), 500):
        rows = session.execute(select(Customer.external_userid, Customer.name).where(
            Customer.corp_id == corp_id, Customer.external_userid.in_(wanted[start:start + 500])))
        out.update({ext: pii.mask_name(name) or "*" for ext, name in rows})
    return out


# Who else knows of handovers in flight: the handover domain (a higher layer) registers its check
# here (`register_transfer_check`), so customers and acquisition ask without importing it.
_transfer_checks: list = []


def register_transfer_check(check) -> None:
    """`check(session, corp_id=, external_userid=, takeover_userid=) -> bool`: whether a handover
    of this customer to this advisor was asked for and is waiting or just done."""
    if check not in _transfer_checks:
        _transfer_checks.append(check)


def is_transfer_add(session: Session, *, corp_id: int, external_userid: str, wecom_userid: str,
                    at: dt.datetime) -> bool:
    """An add_external_contact that is a handover completing (WeCom sends the take-over advisor one,
    without State or WelcomeCode): Siyu asked for this transfer (a registered check says so), or
    another advisor's follow just ended by one (DELETE_BY_TRANSFER). It is no channel add and gets
    no welcome."""
    if contacts.ended_by_transfer(session, corp_id=corp_id, external_userid=external_userid,
                                  wecom_userid=wecom_userid, at=at):
        return True
    return any(check(session, corp_id=corp_id, external_userid=external_userid, takeover_userid=wecom_userid)
               for check in _transfer_checks)


# --- customers as other domains see them (communities' group members) ------------------------------------------


@dataclass(frozen=True)
class CustomerRef:
    id: int
    external_userid: str
    name_masked: str
    stage: str


def customer_refs(session: Session, *, corp_id: int, external_userids: Iterable[str]) -> dict[str, CustomerRef]:
    """The corp's customers among `external_userids`, by external_userid, with the name masked (for
    a domain that shows people by external id, e.g. a group's members). Unknown ids are left out."""
    ids = sorted({e for e in external_userids if isinstance(e, str) and e})
    out: dict[str, CustomerRef] = {}
    for start in range(0, len(ids), 500):
        rows = session.execute(select(Customer.id, Customer.external_userid, Customer.name, Customer.stage)
                               .where(Customer.corp_id == corp_id,
                                      Customer.external_userid.in_(ids[start:start + 500])))
        for r in rows:
            out[r.external_userid] = CustomerRef(id=r.id, external_userid=r.external_userid,
                                                 name_masked=pii.mask_name(r.name), stage=r.stage)
    return out


@dataclass(frozen=True)
class CustomerStanding:
    verified: bool  # linked to the firm's customer record (the verification gate, or staff)
    invested: bool  # the firm reported an investment (已投资) at least once


def customer_standing(session: Session, *, corp_id: int, external_userids: Iterable[str]
                      ) -> dict[str, CustomerStanding]:
    """Whether each of the corp's customers among `external_userids` is verified and has invested
    (for a domain that counts its people, e.g. a group's health). Unknown ids are left out."""
    ids = sorted({e for e in external_userids if isinstance(e, str) and e})
    out: dict[str, CustomerStanding] = {}
    for start in range(0, len(ids), 500):
        rows = session.execute(select(Customer.id, Customer.external_userid, Customer.firm_customer_id, Customer.stage)
                               .where(Customer.corp_id == corp_id,
                                      Customer.external_userid.in_(ids[start:start + 500])))
        by_id = {r.id: r for r in rows}
        invested = set(session.scalars(select(CustomerEvent.customer_id).where(
            CustomerEvent.corp_id == corp_id, CustomerEvent.customer_id.in_(list(by_id)),
            CustomerEvent.kind == "invested").distinct())) if by_id else set()
        for r in by_id.values():
            out[r.external_userid] = CustomerStanding(
                verified=bool(r.firm_customer_id),
                invested=r.id in invested or r.stage in (LifecycleStage.INVESTED, LifecycleStage.REINVESTED))
    return out
