"""Segments: a rule (`siyu.audiences.rules`) compiled to ONE SQL statement over the corp's customers.

Every condition is a column test on `customer` or a subquery served by an index, so a count is one
statement and works the same on SQLite and PostgreSQL; nothing is evaluated customer by customer in
Python. Subqueries are EXISTS / NOT EXISTS correlated on the customer's id (or external_userid), with
one exception on SQLite: conditions whose members are one index range (tags, an event kind or
investments in a window) are `customer.id IN (SELECT customer_id ...)`, which SQLite reads once into
a temporary b-tree and then probes in memory, where a correlated probe per customer would read the
disk (six times faster at a million customers, see `siyu bench segment`). PostgreSQL plans both
forms as the same semi-join, and NOT IN is poor there, so it gets EXISTS. Within a group, conditions
on the customer row come first, then the in-memory sets, then the correlated subqueries, so the
database skips the costly tests for rows that already failed.

Other domains take a segment as an audience through `segment_customer_ids` (a saved segment) or
`rule_customer_ids` (a rule not saved): a SELECT of `customer.id`, to use as a subquery."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    case,
    false,
    func,
    not_,
    or_,
    select,
)
from sqlalchemy.orm import Session, aliased

from siyu import pii
from siyu.audiences import rules
from siyu.audiences.models import Segment, SegmentCount
from siyu.db import utcnow
from siyu.errors import Conflict, InvalidInput, NotFound
from siyu.tenancy.principal import Principal

SHANGHAI = ZoneInfo("Asia/Shanghai")
SAMPLE_SIZE = 20


# ---------------------------------------------------------------- time windows (Asia/Shanghai days)

def shanghai_today(now: dt.datetime) -> dt.date:
    return now.astimezone(SHANGHAI).date()


def day_start(day: dt.date) -> dt.datetime:
    """The first instant of a Shanghai calendar day, in UTC."""
    return dt.datetime.combine(day, dt.time(), tzinfo=SHANGHAI).astimezone(dt.UTC)


def _window(column, cond, now: dt.datetime) -> list[ColumnElement[bool]]:
    terms: list[ColumnElement[bool]] = []
    if cond.within_days is not None:
        terms.append(column >= day_start(shanghai_today(now) - dt.timedelta(days=cond.within_days - 1)))
    if cond.from_ is not None:
        terms.append(column >= day_start(cond.from_))
    if cond.to is not None:
        terms.append(column < day_start(cond.to + dt.timedelta(days=1)))
    return terms


# ---------------------------------------------------------------- the compiler

class _Compiler:
    def __init__(self, session: Session, corp_id: int, now: dt.datetime):
        from siyu.customers.models import Customer

        self.session, self.corp_id, self.now = session, corp_id, now
        self.c = Customer
        # SQLite: conditions that are one index range become IN sets (see the module's doc).
        self.sets = session.get_bind().dialect.name == "sqlite"

    # Checks that ids a rule names belong to the corp (tenancy): an id of another corp, or none at all,
    # is an error naming the field, never a silent empty match.
    def _own(self, model, ids, path: str, *, column=None) -> None:
        column = column if column is not None else model.id
        wanted = set(ids)
        found = set(self.session.scalars(select(column).where(model.corp_id == self.corp_id, column.in_(wanted))))
        missing = sorted(wanted - found, key=str)
        if missing:
            raise InvalidInput("not in this corp: %(ids)s", field=path,
                               params={"ids": ", ".join(map(str, missing[:5]))})

    def node(self, node: rules.Node, path: str) -> ColumnElement[bool]:
        if node.condition is not None:
            return self.condition(node.condition, path)
        if node.op == "not":
            return not_(self.node(node.children[0], f"{path}.not"))
        stages = None
        if node.op == "all" and self.sets:
            # A tag's customers carry a copy of their stage (kept in step by customers.contacts): with a
            # stage condition beside it, the tag set is read from the (tag, stage) index range only.
            for child in node.children:
                if child.condition is not None and child.condition.kind == "stage":
                    stages = set(child.condition.stages) if stages is None else stages & set(child.condition.stages)
        parts = []
        for i, child in enumerate(node.children):
            child_path = f"{path}.{node.op}[{i}]"
            if stages is not None and child.condition is not None and child.condition.kind == "tags":
                expr = self._c_tags(child.condition, child_path, stages=sorted(stages))
            else:
                expr = self.node(child, child_path)
            parts.append((self._cost(child, self.sets), i, expr))
        parts.sort(key=lambda p: (p[0], p[1]))
        terms = [p[2] for p in parts]
        if node.op == "all":
            return and_(*terms)
        if node.op == "any":
            return or_(*terms)
        return not_(or_(*terms))  # none

    @staticmethod
    def _cost(node: rules.Node, sets: bool) -> int:
        """Row tests first, then in-memory sets (SQLite), then correlated subqueries, the cheaper first."""
        if node.condition is None:
            return 5
        kind = node.condition.kind
        if sets and kind in ("tags", "event", "invested"):
            return 1
        return {"gender": 0, "added": 0, "firm_customer": 0, "lost": 0, "stage": 0, "tags": 2, "risk_level": 2,
                "risk_expiry": 2, "consent": 2, "advisor": 2, "channel": 3, "group": 3, "join_way": 3,
                "invested": 3, "event": 4, "holds": 4, "redeemed_not_reinvested": 4}.get(kind, 5)

    def condition(self, cond, path: str) -> ColumnElement[bool]:
        return getattr(self, f"_c_{cond.kind}")(cond, path)

    # -- the customer row
    def _c_gender(self, cond, path):
        return self.c.gender.in_(cond.values)

    def _c_added(self, cond, path):
        return and_(*_window(self.c.first_added_at, cond, self.now))

    def _c_firm_customer(self, cond, path):
        return self.c.firm_customer_id.is_not(None) if cond.present else self.c.firm_customer_id.is_(None)

    def _c_lost(self, cond, path):
        return self.c.stage == "lost" if cond.lost else self.c.stage != "lost"

    def _c_stage(self, cond, path):
        return self.c.stage.in_(cond.stages)

    # -- tags
    def _c_tags(self, cond, path, *, stages: list[str] | None = None):
        from siyu.customers.models import CustomerTag, CustomerTagLink

        self._own(CustomerTag, cond.tag_ids, f"{path}.tag_ids")

        def has(ids):
            if self.sets:
                terms = [CustomerTagLink.tag_id.in_(ids)]
                if stages is not None and cond.match != "none":
                    terms.append(CustomerTagLink.stage.in_(stages))
                return self.c.id.in_(select(CustomerTagLink.customer_id).where(*terms))
            return (select(CustomerTagLink.customer_id)
                    .where(CustomerTagLink.customer_id == self.c.id, CustomerTagLink.tag_id.in_(ids)).exists())

        if cond.match == "all":
            return and_(*[has([t]) for t in dict.fromkeys(cond.tag_ids)])
        if cond.match == "any":
            return has(cond.tag_ids)
        return ~has(cond.tag_ids)

    # -- risk assessment in force: the latest by assessed_at among the customer's refs
    def _current_assessment(self, *terms) -> ColumnElement[bool]:
        from siyu.compliance.models import CustomerRiskAssessment as A

        a, b = aliased(A), aliased(A)
        refs = (self.c.external_userid, self.c.firm_customer_id)
        newer = (select(b.id).where(b.corp_id == self.corp_id, b.customer_ref.in_(refs),
                                    or_(b.assessed_at > a.assessed_at,
                                        and_(b.assessed_at == a.assessed_at, b.id > a.id)))
                 .correlate_except(b).exists())
        return (select(a.id).where(a.corp_id == self.corp_id, a.customer_ref.in_(refs), *[t(a) for t in terms],
                                   ~newer).exists())

    def _c_risk_level(self, cond, path):
        return self._current_assessment(lambda a: a.level.in_(cond.levels))

    def _c_risk_expiry(self, cond, path):
        from siyu.compliance.models import CustomerRiskAssessment as A

        now = self.now
        if cond.state == "unassessed":
            return ~(select(A.id).where(A.corp_id == self.corp_id,
                                        A.customer_ref.in_((self.c.external_userid, self.c.firm_customer_id)))
                     .exists())
        if cond.state == "expired":
            return self._current_assessment(lambda a: a.expires_at <= now)
        if cond.state == "valid":
            return self._current_assessment(lambda a: a.expires_at > now)
        end = day_start(shanghai_today(now) + dt.timedelta(days=cond.days + 1))
        return self._current_assessment(lambda a: a.expires_at > now, lambda a: a.expires_at < end)

    # -- channel and join way
    def _c_channel(self, cond, path):
        from siyu.acquisition.models import ChannelAdd, ChannelCode

        self._own(ChannelCode, cond.code_ids, f"{path}.code_ids")
        return (select(ChannelAdd.id).where(ChannelAdd.corp_id == self.corp_id,
                                            ChannelAdd.external_userid == self.c.external_userid,
                                            ChannelAdd.code_id.in_(cond.code_ids)).exists())

    def _c_join_way(self, cond, path):
        from siyu.communities.joinway_models import GroupJoin, GroupJoinWay

        self._own(GroupJoinWay, cond.join_way_ids, f"{path}.join_way_ids")
        return (select(GroupJoin.id).where(GroupJoin.customer_id == self.c.id,
                                           GroupJoin.join_way_id.in_(cond.join_way_ids)).exists())

    # -- group membership (now: not left)
    def _c_group(self, cond, path):
        from siyu.communities.models import GroupChat, GroupMember, GroupSet

        terms = [GroupMember.corp_id == self.corp_id, GroupMember.customer_id == self.c.id,
                 GroupMember.left_at.is_(None)]
        if cond.scope == "group":
            self._own(GroupChat, cond.ids, f"{path}.ids")
            terms.append(GroupMember.group_id.in_(cond.ids))
        elif cond.scope == "group_set":
            self._own(GroupSet, cond.ids, f"{path}.ids")
            terms.append(GroupMember.group_id.in_(select(GroupChat.id).where(
                GroupChat.corp_id == self.corp_id, GroupChat.group_set_id.in_(cond.ids))))
        return select(GroupMember.id).where(*terms).exists()

    # -- the timeline
    def _c_event(self, cond, path):
        from siyu.customers.models import CustomerEvent as E

        terms = [E.corp_id == self.corp_id, E.kind == cond.event, *_window(E.at, cond, self.now)]
        if self.sets:
            return self.c.id.in_(select(E.customer_id).where(*terms))
        return select(E.id).where(E.customer_id == self.c.id, *terms).exists()

    # -- orders and holdings (the firm's pushed orders, money in fen)
    def _c_invested(self, cond, path):
        from siyu.integration.models import FirmOrder as O

        terms = [O.corp_id == self.corp_id, O.kind == "investment", *_window(O.occurred_at, cond, self.now)]
        if cond.product_codes:
            terms.append(O.product_code.in_(cond.product_codes))
        if self.sets:
            return self.c.id.in_(select(O.customer_id).where(*terms))
        return select(O.id).where(O.customer_id == self.c.id, *terms).exists()

    def _c_redeemed_not_reinvested(self, cond, path):
        from siyu.integration.models import FirmOrder as O

        r, i = aliased(O), aliased(O)
        start = day_start(shanghai_today(self.now) - dt.timedelta(days=cond.within_days - 1))
        again = (select(i.id).where(i.customer_id == self.c.id, i.kind == "investment",
                                    i.occurred_at > r.occurred_at).correlate_except(i).exists())
        return (select(r.id).where(r.customer_id == self.c.id, r.kind == "redemption", r.occurred_at >= start, ~again)
                .exists())

    def _c_holds(self, cond, path):
        from siyu.integration.models import FirmOrder as O

        net = func.sum(case((O.kind == "investment", O.amount_fen), else_=-O.amount_fen))
        having = [net > 0]
        if cond.min_risk != "R1":
            having.append(func.max(O.product_risk_level) >= cond.min_risk)
        terms = [O.customer_id == self.c.id]
        if cond.product_codes:
            terms.append(O.product_code.in_(cond.product_codes))
        return select(O.product_code).where(*terms).group_by(O.product_code).having(*having).exists()

    # -- consent ledger (the latest record per purpose is in force)
    def _c_consent(self, cond, path):
        from siyu.privacy.models import ConsentRecord as R

        r, later = aliased(R), aliased(R)
        same = [r.corp_id == self.corp_id, r.external_userid == self.c.external_userid, r.purpose == cond.purpose]
        if cond.state == "unknown":
            return ~select(r.id).where(*same).exists()
        newer = (select(later.id).where(later.corp_id == self.corp_id, later.external_userid == r.external_userid,
                                        later.purpose == r.purpose, later.id > r.id).correlate_except(later).exists())
        granted = r.granted.is_(True) if cond.state == "granted" else r.granted.is_(False)
        return select(r.id).where(*same, granted, ~newer).exists()

    # -- the advisors who follow the customer now
    def _c_advisor(self, cond, path):
        from siyu.customers.models import CustomerFollow
        from siyu.tenancy.models import Department, Staff
        from siyu.tenancy.service import department_subtree_ids

        staff_ids = set(cond.staff_ids)
        if cond.staff_ids:
            self._own(Staff, cond.staff_ids, f"{path}.staff_ids")
        if cond.department_ids:
            self._own(Department, cond.department_ids, f"{path}.department_ids")
            departments: set[int] = set()
            for d in cond.department_ids:
                departments |= department_subtree_ids(self.session, corp_id=self.corp_id, department_id=d)
            staff_ids |= set(self.session.scalars(select(Staff.id).where(Staff.corp_id == self.corp_id,
                                                                          Staff.department_id.in_(departments))))
        if not staff_ids:
            return false()
        return (select(CustomerFollow.id).where(CustomerFollow.customer_id == self.c.id,
                                                CustomerFollow.status == "active",
                                                CustomerFollow.staff_id.in_(sorted(staff_ids))).exists())


def compile_rule(session: Session, *, corp_id: int, rule: dict | rules.Node, now: dt.datetime | None = None,
                 path: str = "rule") -> ColumnElement[bool]:
    """The rule as one boolean SQL expression over `customer` (correlated subqueries)."""
    node = rule if isinstance(rule, rules.Node) else rules.parse(rule, path=path)
    return _Compiler(session, corp_id, now or utcnow()).node(node, path)


def rule_customer_ids(session: Session, *, corp_id: int, rule: dict, now: dt.datetime | None = None) -> Select:
    """A SELECT of `customer.id` (one column) of the corp's customers that match `rule` (not saved),
    to use as a subquery. A rule that is not valid is an `InvalidInput` naming the field path."""
    from siyu.customers.models import Customer

    # correlate(None): used inside a query over `customer` too, it keeps its own FROM customer.
    return (select(Customer.id).where(Customer.corp_id == corp_id,
                                      compile_rule(session, corp_id=corp_id, rule=rule, now=now))
            .correlate(None))


def segment_customer_ids(session: Session, *, corp_id: int, segment_id: int, now: dt.datetime | None = None) -> Select:
    """A SELECT of `customer.id` (one column) of a saved segment's members now, to use as a subquery
    (broadcasts, SOP, campaigns). `NotFound` when the corp has no such segment."""
    segment = get_segment(session, corp_id=corp_id, segment_id=segment_id)
    return rule_customer_ids(session, corp_id=corp_id, rule=segment.rule, now=now)


# ---------------------------------------------------------------- counting and sampling

def count_rule(session: Session, *, corp_id: int, rule: dict, now: dt.datetime | None = None) -> int:
    from siyu.customers.models import Customer

    where = compile_rule(session, corp_id=corp_id, rule=rule, now=now)
    return session.scalar(select(func.count()).select_from(Customer).where(Customer.corp_id == corp_id, where)) or 0


@dataclass(frozen=True)
class SampleRow:
    """A member as a sample shows them: masked name, never an external id."""

    id: int
    name_masked: str
    avatar_initial: str
    gender: int
    stage: str
    first_added_at: dt.datetime


def sample_rule(session: Session, *, corp_id: int, rule: dict, limit: int = SAMPLE_SIZE,
                now: dt.datetime | None = None) -> list[SampleRow]:
    """Up to `limit` members, the latest added first, names masked."""
    from siyu.customers.models import Customer

    where = compile_rule(session, corp_id=corp_id, rule=rule, now=now)
    rows = session.execute(select(Customer.id, Customer.name, Customer.gender, Customer.stage, Customer.first_added_at)
                           .where(Customer.corp_id == corp_id, where)
                           .order_by(Customer.first_added_at.desc(), Customer.id.desc()).limit(max(1, min(limit, 100))))
    out = []
    for r in rows:
        masked = pii.mask_name(r.name) or "*"
        out.append(SampleRow(id=r.id, name_masked=masked, avatar_initial=masked[0], gender=r.gender, stage=r.stage,
                             first_added_at=r.first_added_at))
    return out


# ---------------------------------------------------------------- saved segments

def get_segment(session: Session, *, corp_id: int, segment_id: int) -> Segment:
    segment = session.get(Segment, segment_id) if isinstance(segment_id, int) else None
    if segment is None or segment.corp_id != corp_id:
        raise NotFound("segment not found", field="segment_id")
    return segment


def list_segments(session: Session, *, corp_id: int) -> list[Segment]:
    return list(session.scalars(select(Segment).where(Segment.corp_id == corp_id).order_by(Segment.name, Segment.id)))


def _name(value: object) -> str:
    name = value.strip() if isinstance(value, str) else ""
    if not name:
        raise InvalidInput("a segment needs a name", field="name")
    if len(name) > 60:
        raise InvalidInput("at most %(n)s characters", field="name", params={"n": 60})
    return name


def _description(value: object) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > 500:
        raise InvalidInput("at most %(n)s characters", field="description", params={"n": 500})
    return value.strip()


def _checked_rule(session: Session, corp_id: int, rule: object) -> dict:
    node = rules.parse(rule)
    compile_rule(session, corp_id=corp_id, rule=node)  # ids of the corp
    return rules.dump(node)


def _unique_name(session: Session, corp_id: int, name: str, segment_id: int | None = None) -> None:
    clash = session.scalar(select(Segment.id).where(Segment.corp_id == corp_id, Segment.name == name))
    if clash is not None and clash != segment_id:
        raise Conflict("a segment with this name exists", field="name")


def _audit(session: Session, segment: Segment, *, actor: Principal, action: str) -> None:
    from siyu.tenancy import audit

    audit.record(session, corp_id=segment.corp_id, actor=actor, action=action, target_type="segment",
                 target_id=segment.id, detail={"name": segment.name})


def create_segment(session: Session, *, principal: Principal, name: object, rule: object,
                   description: object = "", owner_staff_id: int | None = None) -> Segment:
    corp_id = principal.corp_id
    name = _name(name)
    description = _description(description)
    stored = _checked_rule(session, corp_id, rule)
    owner = _owner(session, corp_id, owner_staff_id) if owner_staff_id is not None else principal.staff_id
    _unique_name(session, corp_id, name)
    segment = Segment(corp_id=corp_id, name=name, description=description, rule=stored, owner_staff_id=owner,
                      created_by=principal.label)
    session.add(segment)
    session.flush()
    _audit(session, segment, actor=principal, action="segment.create")
    return segment


def _owner(session: Session, corp_id: int, staff_id: object) -> int:
    from siyu.tenancy.models import Staff

    staff = session.get(Staff, staff_id) if isinstance(staff_id, int) else None
    if staff is None or staff.corp_id != corp_id:
        raise InvalidInput("no such member of staff in this corp", field="owner_staff_id")
    return staff.id


_UNSET = object()


def update_segment(session: Session, *, principal: Principal, segment_id: int, name: object = _UNSET,
                   description: object = _UNSET, rule: object = _UNSET, owner_staff_id: object = _UNSET) -> Segment:
    segment = get_segment(session, corp_id=principal.corp_id, segment_id=segment_id)
    values: dict = {}
    if name is not _UNSET:
        values["name"] = _name(name)
        _unique_name(session, segment.corp_id, values["name"], segment.id)
    if description is not _UNSET:
        values["description"] = _description(description)
    if rule is not _UNSET:
        values["rule"] = _checked_rule(session, segment.corp_id, rule)
    if owner_staff_id is not _UNSET:
        values["owner_staff_id"] = _owner(session, segment.corp_id, owner_staff_id) if owner_staff_id is not None \
            else None
    for k, v in values.items():
        setattr(segment, k, v)
    if "rule" in values:
        segment.last_count, segment.last_counted_at = None, None
    session.flush()
    _audit(session, segment, actor=principal, action="segment.update")
    return segment


def delete_segment(session: Session, *, principal: Principal, segment_id: int) -> None:
    segment = get_segment(session, corp_id=principal.corp_id, segment_id=segment_id)
    _audit(session, segment, actor=principal, action="segment.delete")
    session.delete(segment)
    session.flush()


def count_segment(session: Session, *, corp_id: int, segment_id: int, now: dt.datetime | None = None) -> int:
    """Count a saved segment now and keep the figure on it (the list shows it)."""
    segment = get_segment(session, corp_id=corp_id, segment_id=segment_id)
    count = count_rule(session, corp_id=corp_id, rule=segment.rule, now=now)
    segment.last_count, segment.last_counted_at = count, now or utcnow()
    return count


def record_daily_count(session: Session, *, corp_id: int, segment_id: int, now: dt.datetime | None = None
                       ) -> SegmentCount:
    """Count a segment and keep the figure as the day's (Asia/Shanghai) point of its history; a later
    count the same day replaces it."""
    now = now or utcnow()
    started = time.perf_counter()
    count = count_segment(session, corp_id=corp_id, segment_id=segment_id, now=now)
    ms = int((time.perf_counter() - started) * 1000)
    day = shanghai_today(now)
    row = session.scalar(select(SegmentCount).where(SegmentCount.segment_id == segment_id, SegmentCount.day == day))
    if row is None:
        row = SegmentCount(corp_id=corp_id, segment_id=segment_id, day=day, count=count, duration_ms=ms, counted_at=now)
        session.add(row)
    else:
        row.count, row.duration_ms, row.counted_at = count, ms, now
    session.flush()
    return row


def count_history(session: Session, *, corp_id: int, segment_id: int, days: int = 90) -> list[SegmentCount]:
    get_segment(session, corp_id=corp_id, segment_id=segment_id)
    return list(session.scalars(select(SegmentCount).where(SegmentCount.segment_id == segment_id)
                                .order_by(SegmentCount.day.desc()).limit(days)))[::-1]
