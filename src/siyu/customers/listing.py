"""The customer list (客户列表): filters, keyset pages, counts per lifecycle stage, under the
caller's visibility, at a million customers per corp.

How the queries stay fast on SQLite (`siyu bench customers` measures them):

* every list is ordered by (first_added_at, id) descending, and every filter on the customer's own
  columns (corp, stage, added dates) is a range of an index in that order, so a page reads ~50
  index entries however many customers match;
* filters through other tables (who follows, tags, channel state, search) pick out sets of
  customers. A small set (a search, a rare advisor) is read by id and sorted; otherwise the ordered
  index is read and each customer tested (EXISTS), so a page stops after ~50 matches and never
  reads a whole set;
* counts per stage are index range counts whenever the question allows: the corp's customers per
  stage (and added dates), advisors' active follows per stage, a tag's links per stage, a channel's
  follows per stage (follows and tag links carry a copy of the customer's stage for this, and
  follows a `shared` flag so that a customer with several follows is counted once). Other
  combinations read the smallest set by id, test each customer of a narrow range, or probe the
  corp's range against the sets held in memory, whichever reads fewer rows.

`tests/customers/test_listing.py` checks every plan against a plain computation."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from sqlalchemy import Select, func, select, union
from sqlalchemy.orm import Session

from siyu import pii
from siyu.customers import contacts, search
from siyu.customers.models import Customer, CustomerFollow, CustomerTag, CustomerTagLink, FollowStatus, LifecycleStage
from siyu.db import is_postgres
from siyu.errors import InvalidInput
from siyu.tenancy.models import Staff
from siyu.tenancy.principal import Principal
from siyu.tenancy.service import valid_id, visible_staff_ids

CALENDAR_ZONE = ZoneInfo("Asia/Shanghai")
PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
MAX_QUERY = 128
MAX_STATE = 64
STAGES = tuple(s.value for s in LifecycleStage)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


# --- filters -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CustomerFilters:
    """What the list is narrowed to. `q` finds a customer by exact name (through its lookup hash),
    external_userid, the firm's customer id or an advisor's exact remark; `state` is a prefix of the
    channel `state` of any of the customer's follows; dates are calendar days in Asia/Shanghai,
    both inclusive."""

    q: str = ""
    stage: str | None = None
    staff_id: int | None = None
    tag_id: int | None = None
    state: str = ""
    added_from: dt.date | None = None
    added_to: dt.date | None = None

    @property
    def active(self) -> bool:
        return any((self.q, self.stage, self.staff_id, self.tag_id, self.state, self.added_from, self.added_to))


def _text(value: object, *, field: str, max_length: int) -> str:
    value = (value if isinstance(value, str) else "" if value is None else str(value)).strip()
    if _CONTROL.search(value):
        raise InvalidInput("must not contain control characters", field=field)
    if len(value) > max_length:
        raise InvalidInput("must have at most %(n)s characters", field=field, params={"n": max_length})
    return value


def _id(value: object, *, field: str) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = value.strip()
        if not (value.isascii() and value.isdigit()) or len(value) > 19:
            raise InvalidInput("not a valid id", field=field)
        value = int(value)
    if not valid_id(value):
        raise InvalidInput("not a valid id", field=field)
    return value


def _date(value: object, *, field: str) -> dt.date | None:
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value.astimezone(CALENDAR_ZONE).date() if value.tzinfo else value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value).strip())
    except ValueError:
        raise InvalidInput("a date is written YYYY-MM-DD", field=field) from None


def make_filters(*, q: object = None, stage: object = None, staff_id: object = None, tag_id: object = None,
                 state: object = None, added_from: object = None, added_to: object = None) -> CustomerFilters:
    """Checked filters from what a form or query string gave (strings or typed values)."""
    stage_value = _text(stage, field="stage", max_length=20) or None
    if stage_value is not None and stage_value not in STAGES:
        raise InvalidInput("unknown lifecycle stage", field="stage")
    start, end = _date(added_from, field="added_from"), _date(added_to, field="added_to")
    if start and end and start > end:
        raise InvalidInput("the first day is after the last", field="added_from")
    return CustomerFilters(
        q=_text(q, field="q", max_length=MAX_QUERY),
        stage=stage_value,
        staff_id=_id(staff_id, field="staff_id"),
        tag_id=_id(tag_id, field="tag_id"),
        state=_text(state, field="state", max_length=MAX_STATE),
        added_from=start,
        added_to=end,
    )


def _day_start(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=CALENDAR_ZONE).astimezone(dt.UTC)


# --- the keyset cursor ---------------------------------------------------------------------------------------

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def encode_cursor(first_added_at: dt.datetime, customer_id: int) -> str:
    micros = (first_added_at - _EPOCH) // dt.timedelta(microseconds=1)
    return f"{micros}-{customer_id}"


def decode_cursor(value: str | None) -> tuple[dt.datetime, int] | None:
    if not value:
        return None
    micros, sep, cid = str(value).partition("-")
    if not sep or not micros.isascii() or not micros.isdigit() or not cid.isascii() or not cid.isdigit() \
            or len(micros) > 18 or len(cid) > 19 or not valid_id(int(cid)):
        raise InvalidInput("not a page of this list; start from the first page", field="after")
    return _EPOCH + dt.timedelta(microseconds=int(micros)), int(cid)


# --- what the caller sees, and how to read it ----------------------------------------------------------------

# A set of customer ids smaller than this is read by id for a page (and sorted); a larger one is
# tested customer by customer while the ordered index is read, which finds a page after about
# 50 × (corp / set) entries.
LIST_READ_BY_ID_BELOW = 5_000
# Counting: a set this large is cheaper to probe, held in memory, while the corp's index is read
# (~0.2 µs an entry) than to read customer by customer (~1 µs each).
COUNT_READ_BY_ID_BELOW = 150_000


def _followed_by(corp_id: int, staff_ids: Iterable[int]) -> Select:
    return select(CustomerFollow.customer_id).where(
        CustomerFollow.corp_id == corp_id, CustomerFollow.staff_id.in_(sorted(staff_ids)),
        CustomerFollow.status == FollowStatus.ACTIVE.value)


ID_PREFIX_MIN = 4  # an id prefix shorter than this would match too much to be a search


def _prefix(column, prefix: str, *, postgres: bool):
    if postgres:
        return column.startswith(prefix, autoescape=True)
    # A range on the binary-ordered index is exactly a prefix match; LIKE could not use the index.
    return (column >= prefix) & (column < prefix + "\U0010ffff")


def _search_ids(corp_id: int, q: str, *, postgres: bool) -> Select:
    """Customers whose name or an advisor's remark contains `q` (the blind index), whose exact name or
    remark is `q`, or whose external_userid or firm id is `q` or starts with it (4 characters or more)."""
    if len(q) >= ID_PREFIX_MIN:
        parts = [select(Customer.id).where(Customer.corp_id == corp_id, _prefix(column, q, postgres=postgres))
                 for column in (Customer.external_userid, Customer.firm_customer_id)]
    else:
        parts = [select(Customer.id).where(Customer.corp_id == corp_id, Customer.external_userid == q),
                 select(Customer.id).where(Customer.corp_id == corp_id, Customer.firm_customer_id == q)]
    partial = search.matching_ids(corp_id, q)
    if partial is not None:
        parts.append(partial)
    name_hash = contacts.name_hash(q)
    if name_hash:
        parts.append(select(Customer.id).where(Customer.corp_id == corp_id, Customer.name_hash == name_hash))
        parts.append(select(CustomerFollow.customer_id).where(CustomerFollow.corp_id == corp_id,
                                                              CustomerFollow.remark_hash == contacts.remark_hash(q)))
    return union(*parts)


def _state_prefix(session: Session, prefix: str):
    return _prefix(CustomerFollow.state, prefix, postgres=is_postgres(session))


@dataclass(frozen=True)
class Scope:
    """The caller's question, resolved: the corp, whose followers narrow it (visibility or the
    advisor filter; None: anyone's), and the filters."""

    corp_id: int
    staff_ids: tuple[int, ...] | None
    filters: CustomerFilters


def resolve_scope(session: Session, principal: Principal, filters: CustomerFilters) -> Scope | None:
    """None when the caller can see nothing that matches (no visible staff, another's advisor)."""
    visible = visible_staff_ids(session, principal=principal)
    if filters.staff_id is not None:
        if visible is not None and filters.staff_id not in visible:
            return None
        # The advisor's customers are within what the caller sees: their staff's customers.
        staff: tuple[int, ...] | None = (filters.staff_id,)
    elif visible is not None:
        if not visible:
            return None
        staff = tuple(sorted(visible))
    else:
        staff = None
    if filters.tag_id is not None and session.scalar(
            select(CustomerTag.corp_id).where(CustomerTag.id == filters.tag_id)) != principal.corp_id:
        return None  # another corp's tag (or none): no customer of this corp has it
    return Scope(corp_id=principal.corp_id, staff_ids=staff, filters=filters)


def _range_conditions(scope: Scope, *, stage: str | None = None) -> list:
    """Conditions on the customer's own columns: each a range of the (corp, [stage,] added) indexes."""
    f = scope.filters
    conds: list = [Customer.corp_id == scope.corp_id]
    if stage or f.stage:
        conds.append(Customer.stage == (stage or f.stage))
    if f.added_from:
        conds.append(Customer.first_added_at >= _day_start(f.added_from))
    if f.added_to:
        conds.append(Customer.first_added_at < _day_start(f.added_to + dt.timedelta(days=1)))
    return conds


@dataclass(frozen=True)
class IdSet:
    """Customers picked out through another table: as a set of ids (`ids`), as a test of one
    customer (`exists`, correlated), and what it costs to know how many (`size`)."""

    ids: Select
    exists: object
    size: Callable[[Session, int], int]  # (session, cap): how many, counting no further than `cap`


def _sized(statement: Select) -> Callable[[Session, int], int]:
    return lambda session, cap: _count(session, statement.limit(cap))


def _id_sets(session: Session, scope: Scope) -> list[IdSet]:
    f, corp_id = scope.filters, scope.corp_id
    sets = []
    if f.q:
        found = _search_ids(corp_id, f.q, postgres=is_postgres(session))
        sets.append(IdSet(found, Customer.id.in_(found), _sized(found)))  # a part of a name can match many
    if scope.staff_ids is not None:
        followed = _followed_by(corp_id, scope.staff_ids)
        mine = select(CustomerFollow.id).where(
            CustomerFollow.customer_id == Customer.id, CustomerFollow.staff_id.in_(scope.staff_ids),
            CustomerFollow.status == FollowStatus.ACTIVE.value).exists()
        sets.append(IdSet(followed, mine, _sized(followed)))
    if f.tag_id is not None:
        # the tag is the corp's (checked in resolve_scope), so its links are too
        tagged = select(CustomerTagLink.customer_id).where(CustomerTagLink.tag_id == f.tag_id)
        has_tag = select(CustomerTagLink.tag_id).where(CustomerTagLink.customer_id == Customer.id,
                                                       CustomerTagLink.tag_id == f.tag_id).exists()
        sets.append(IdSet(tagged, has_tag, _sized(tagged)))
    if f.state:
        channel = select(CustomerFollow.customer_id).where(CustomerFollow.corp_id == corp_id,
                                                           _state_prefix(session, f.state))
        came_by = select(CustomerFollow.id).where(CustomerFollow.customer_id == Customer.id,
                                                  _state_prefix(session, f.state)).exists()
        sets.append(IdSet(channel, came_by, _sized(channel)))
    return sets


def _by_id(scope: Scope, conds: list, sets: list[IdSet]) -> list:
    """Read the first set's customers by id; test the others on each of them."""
    # `corp_id + 0` is no index range, so the database cannot start from the corp's indexes.
    return [(Customer.corp_id + 0) == scope.corp_id, *conds[1:], Customer.id.in_(sets[0].ids),
            *(s.exists for s in sets[1:])]


def _ordered(session: Session, scope: Scope, cap: int) -> tuple[list, list[tuple[int, IdSet]]]:
    """The range conditions, and the sets smallest first with their sizes (up to `cap`: beyond it
    the choice no longer depends on the number)."""
    conds = _range_conditions(scope)
    sets = _id_sets(session, scope)
    sized = sorted(((s.size(session, cap), i, s) for i, s in enumerate(sets)), key=lambda t: (t[0], t[1]))
    return conds, [(n, s) for n, _i, s in sized]


def _list_where(session: Session, scope: Scope) -> list:
    """A page: a small set is read by id and sorted; otherwise the ordered index is read and each
    customer tested (a page stops after ~50 matches; no set is read whole)."""
    conds, sets = _ordered(session, scope, LIST_READ_BY_ID_BELOW)
    if not sets:
        return conds
    if sets[0][0] < LIST_READ_BY_ID_BELOW:
        return _by_id(scope, conds, [s for _n, s in sets])
    return conds + [s.exists for _n, s in sets]


def _count_where(session: Session, scope: Scope) -> list:
    """Counting: the cheapest of reading the smallest set by id, testing each customer of a narrow
    range (a stage, some days), or probing the corp's range against the sets held in memory."""
    conds, sets = _ordered(session, scope, COUNT_READ_BY_ID_BELOW)
    if not sets:
        return conds
    smallest = sets[0][0]
    f = scope.filters
    if f.stage or f.added_from or f.added_to:
        in_range = _count(session, select(Customer.id).where(*conds).limit(smallest // len(sets) + 1))
        if in_range * len(sets) <= smallest:
            return conds + [s.exists for _n, s in sets]
    if smallest < COUNT_READ_BY_ID_BELOW:
        return _by_id(scope, conds, [s for _n, s in sets])
    return conds + [Customer.id.in_(s.ids) for _n, s in sets]


@dataclass(frozen=True)
class FollowInfo:
    id: int
    staff_id: int | None
    staff_name: str | None
    wecom_userid: str
    state: str | None
    status: str
    add_time: dt.datetime
    ended_at: dt.datetime | None = None
    add_way: int | None = None
    remark_masked: str = ""


@dataclass(frozen=True)
class CustomerRow:
    """A customer as lists show them: the name masked."""

    id: int
    external_userid: str
    name_masked: str
    gender: int
    stage: str
    first_added_at: dt.datetime
    firm_customer_id: str | None
    follows: list[FollowInfo] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)

    @property
    def active_follows(self) -> list[FollowInfo]:
        return [f for f in self.follows if f.status == FollowStatus.ACTIVE]


@dataclass(frozen=True)
class CustomerPage:
    rows: list[CustomerRow]
    next_after: str | None  # pass as `after` for the next page; None on the last


def _staff_names(session: Session, corp_id: int, staff_ids: Iterable[int | None]) -> dict[int, str]:
    ids = sorted({i for i in staff_ids if i is not None})
    if not ids:
        return {}
    return dict(session.execute(select(Staff.id, Staff.name).where(Staff.corp_id == corp_id, Staff.id.in_(ids))).all())


def _follows_of(session: Session, corp_id: int, customer_ids: list[int], *, with_remarks: bool = False
                ) -> dict[int, list[FollowInfo]]:
    if not customer_ids:
        return {}
    columns = [CustomerFollow.id, CustomerFollow.customer_id, CustomerFollow.staff_id, CustomerFollow.wecom_userid,
               CustomerFollow.state, CustomerFollow.status, CustomerFollow.add_time, CustomerFollow.ended_at,
               CustomerFollow.add_way]
    if with_remarks:
        columns.append(CustomerFollow.remark)
    rows = session.execute(select(*columns).where(CustomerFollow.customer_id.in_(customer_ids))
                           .order_by(CustomerFollow.add_time, CustomerFollow.id)).all()
    names = _staff_names(session, corp_id, (r.staff_id for r in rows))
    out: dict[int, list[FollowInfo]] = {}
    for r in rows:
        out.setdefault(r.customer_id, []).append(FollowInfo(
            id=r.id, staff_id=r.staff_id, staff_name=names.get(r.staff_id), wecom_userid=r.wecom_userid,
            state=r.state, status=r.status, add_time=r.add_time, ended_at=r.ended_at, add_way=r.add_way,
            remark_masked=pii.mask_name(r.remark) if with_remarks else ""))
    return out


def _tags_of(session: Session, customer_ids: list[int]) -> dict[int, list[str]]:
    if not customer_ids:
        return {}
    rows = session.execute(
        select(CustomerTagLink.customer_id, CustomerTag.name)
        .join(CustomerTag, CustomerTag.id == CustomerTagLink.tag_id)
        .where(CustomerTagLink.customer_id.in_(customer_ids)).order_by(CustomerTag.sort_order, CustomerTag.id)
    ).all()
    out: dict[int, list[str]] = {}
    for customer_id, name in rows:
        out.setdefault(customer_id, []).append(name)
    return out


_ROW_COLUMNS = (Customer.id, Customer.external_userid, Customer.name, Customer.gender, Customer.stage,
                Customer.first_added_at, Customer.firm_customer_id)


def _rows(session: Session, corp_id: int, records) -> list[CustomerRow]:
    ids = [r.id for r in records]
    follows = _follows_of(session, corp_id, ids)
    tags = _tags_of(session, ids)
    return [CustomerRow(id=r.id, external_userid=r.external_userid, name_masked=pii.mask_name(r.name), gender=r.gender,
                        stage=r.stage, first_added_at=r.first_added_at, firm_customer_id=r.firm_customer_id,
                        follows=follows.get(r.id, []), tags=tags.get(r.id, []))
            for r in records]


def list_customers(session: Session, *, principal: Principal, filters: CustomerFilters | None = None,
                   after: str | None = None, limit: int = PAGE_SIZE) -> CustomerPage:
    """One page of the caller's customers, newest first (by first add, then id), keyset-paged:
    `after` is the previous page's `next_after`."""
    filters = filters or CustomerFilters()
    limit = max(1, min(int(limit), MAX_PAGE_SIZE))
    cursor = decode_cursor(after)
    scope = resolve_scope(session, principal, filters)
    if scope is None:
        return CustomerPage(rows=[], next_after=None)
    conds = _list_where(session, scope)
    if cursor is not None:
        at, cid = cursor
        # (first_added_at, id) < cursor, written so that the index range on first_added_at applies.
        conds += [Customer.first_added_at <= at, (Customer.first_added_at < at) | (Customer.id < cid)]
    records = session.execute(
        select(*_ROW_COLUMNS).where(*conds).order_by(Customer.first_added_at.desc(), Customer.id.desc())
        .limit(limit + 1)
    ).all()
    more = len(records) > limit
    records = records[:limit]
    last = records[-1] if records and more else None
    return CustomerPage(rows=_rows(session, principal.corp_id, records),
                        next_after=encode_cursor(last.first_added_at, last.id) if last else None)


def _count(session: Session, statement) -> int:
    return session.scalar(select(func.count()).select_from(statement.subquery())) or 0


def _follow_counts(session: Session, conds: list, *, stage: str | None, leading) -> dict[str, int]:
    """Customers per stage through the follows matching `conds`. Follows of customers who have only
    one are counted straight from the index, grouped in its order (`leading`, then stage: no
    sorting); customers with several follows are counted once each."""
    out: dict[str, int] = {}
    stages = CustomerFollow.stage.in_([stage] if stage else STAGES)  # lets the index seek past the stage
    single = select(CustomerFollow.stage, func.count()).where(*conds, stages, CustomerFollow.shared.is_(False)) \
        .group_by(leading, CustomerFollow.stage)
    several = select(CustomerFollow.stage, func.count(func.distinct(CustomerFollow.customer_id))) \
        .where(*conds, stages, CustomerFollow.shared.is_(True)).group_by(CustomerFollow.stage)
    for statement in (single, several):
        for row_stage, n in session.execute(statement):
            out[row_stage] = out.get(row_stage, 0) + n
    return out


def stage_counts(session: Session, *, principal: Principal, filters: CustomerFilters | None = None) -> dict[str, int]:
    """The caller's customers under `filters` per lifecycle stage, every stage present (the list's
    chart; their sum is the list's total)."""
    filters = filters or CustomerFilters()
    out = dict.fromkeys(STAGES, 0)
    scope = resolve_scope(session, principal, filters)
    if scope is None:
        return out
    f, corp_id, staff_ids = filters, scope.corp_id, scope.staff_ids
    dated = bool(f.added_from or f.added_to)
    through = {name for name, on in (("staff", staff_ids is not None), ("tag", f.tag_id is not None),
                                      ("state", bool(f.state)), ("search", bool(f.q))) if on}
    if not through:
        # the corp's customers per stage (and added dates): one index range each
        for stage in [f.stage] if f.stage else STAGES:
            out[stage] = _count(session, select(Customer.id).where(*_range_conditions(scope, stage=stage)))
        return out
    if through == {"staff"} and not dated:
        # advisors' customers: their active follows per stage, an advisor at a time (index order)
        active = [CustomerFollow.corp_id == corp_id, CustomerFollow.status == FollowStatus.ACTIVE.value]
        if len(staff_ids) == 1:  # one follow per customer and advisor: nothing is counted twice
            rows = session.execute(select(CustomerFollow.stage, func.count()).where(
                *active, CustomerFollow.staff_id == staff_ids[0], *([CustomerFollow.stage == f.stage] if f.stage
                                                                    else [])).group_by(CustomerFollow.stage))
            counts = dict(rows.all())
        else:
            counts = _follow_counts(session, [*active, CustomerFollow.staff_id.in_(staff_ids)], stage=f.stage,
                                    leading=CustomerFollow.staff_id)
    elif through == {"tag"} and not dated:
        # a tag's customers: its links per stage (one per customer)
        counts = dict(session.execute(select(CustomerTagLink.stage, func.count()).where(
            CustomerTagLink.tag_id == f.tag_id, *([CustomerTagLink.stage == f.stage] if f.stage else []))
            .group_by(CustomerTagLink.stage)).all())
    elif through == {"state"} and not dated:
        # a channel's customers: their follows with that state, each customer once
        counts = _follow_counts(session, [CustomerFollow.corp_id == corp_id, _state_prefix(session, f.state)],
                                stage=f.stage, leading=CustomerFollow.state)
    else:
        conds = _count_where(session, scope)
        counts = dict(session.execute(select(Customer.stage, func.count()).where(*conds)
                                      .group_by(Customer.stage)).all())
    for stage, n in counts.items():
        out[stage] = out.get(stage, 0) + n
    return out


def count_customers(session: Session, *, principal: Principal, filters: CustomerFilters | None = None) -> int:
    return sum(stage_counts(session, principal=principal, filters=filters).values())


def customer_conditions(session: Session, principal: Principal, filters: CustomerFilters | None = None
                        ) -> list | None:
    """The WHERE clause of the caller's customers (None: nothing), for queries of other parts of
    the domain (unmasking a page of names, the dashboard's days)."""
    scope = resolve_scope(session, principal, filters or CustomerFilters())
    return None if scope is None else _list_where(session, scope)
