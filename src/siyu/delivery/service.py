"""The one delivery policy of every marketing send, and its ledger.

Every marketing send to a customer (a broadcast, a customer SOP step, keyword-reply marketing, …)
claims its ledger row (`claim`) in a committed transaction BEFORE the WeCom call. The row is unique
per (source, customer): a redelivered or resumed job finds the row and never sends twice; a row left
`planned` by a crash is an unknown outcome that the owning domain reconciles with WeCom, never re-sent
blindly.

The decision, in order (the first that applies):
- `opted_out`: the customer withdrew consent to marketing (the privacy ledger);
- `holdout_global`: the customer is in the corp's global control group (no marketing at all);
- `capped_day`, `capped_7_days`, `capped_30_days`: the corp's frequency caps, counted over every
  kind of marketing send by Asia/Shanghai calendar day: today; today and the 6 days before; today
  and the 29 days before (defaults 1, 3, 8);
- `capped_wecom`: WeCom's own per-customer allowance of mass messages (by default as many a China
  calendar month as the month has days; a corp may have 1 a day or 7 a week) — kinds that WeCom
  counts as mass messages (every kind but Moments);
- quiet hours (default 21:00–08:00 Asia/Shanghai): the send is HELD, with `due_at` the next allowed
  minute, and released then by the owning domain's job (which claims again); never dropped.
Capped and excluded sends are recorded as `aborted` with the reason; held and aborted rows do not
count against the caps, `planned` and `sent` ones do.

The global control group: a stable random share of customers (default 5%) chosen by a keyed
universal hash of the customer id, ((id·a + b) mod p) mod 10000 < share in basis points, with the
corp's key (a, b) drawn at random once; re-drawn only on request (audited). The same expression runs
in SQL for the plan preview (`siyu.delivery.plan`).
"""

from __future__ import annotations

import calendar
import datetime as dt
import secrets
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import case, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from siyu.db import utcnow
from siyu.delivery.models import DeliveryLedger, DeliveryPolicy
from siyu.errors import Forbidden, InvalidInput
from siyu.tenancy import audit
from siyu.tenancy.principal import Principal

SHANGHAI = ZoneInfo("Asia/Shanghai")
KINDS = ("broadcast", "sop_slot", "sop_step", "moment", "campaign", "keyword_marketing")
NOT_MASS_MESSAGE = ("moment",)  # Moments have their own allowance at WeCom
COUNTED = ("planned", "sent")
PRIME = 2_147_483_647  # 2^31 - 1: the universal hash's modulus (products stay within 63 bits)
BUCKETS = 10_000
WRITERS = ("administrator", "operations")

DEFAULTS = {"per_day": 1, "per_7_days": 3, "per_30_days": 8, "wecom_allowance": "month",
            "quiet_start_minute": 21 * 60, "quiet_end_minute": 8 * 60, "sends_per_minute": 600,
            "holdout_basis_points": 500}
LIMITS = {"per_day": (0, 100), "per_7_days": (0, 700), "per_30_days": (0, 3000), "quiet_start_minute": (0, 1439),
          "quiet_end_minute": (0, 1439), "sends_per_minute": (1, 100_000), "holdout_basis_points": (0, 5000)}
ALLOWANCES = ("month", "week", "day")

# Reasons, in the order they are decided (the plan preview uses the same order).
REASONS = ("not_friend", "no_advisor", "opted_out", "holdout_global", "holdout_broadcast", "unsuitable",
           "capped_day", "capped_7_days", "capped_30_days", "capped_wecom")


def _key() -> tuple[int, int]:
    return 1 + secrets.randbelow(PRIME - 1), secrets.randbelow(PRIME)


def policy_for(session: Session, *, corp_id: int) -> DeliveryPolicy:
    """The corp's policy; on first read the defaults with a freshly drawn control-group key, stored
    (the key must stay the same from one read to the next)."""
    row = session.get(DeliveryPolicy, corp_id)
    if row is None:
        mult, add = _key()
        row = DeliveryPolicy(corp_id=corp_id, holdout_mult=mult, holdout_add=add, holdout_drawn_at=utcnow(),
                             **DEFAULTS)
        try:
            with session.begin_nested():
                session.add(row)
        except IntegrityError:  # another transaction stored it first
            row = session.get(DeliveryPolicy, corp_id)
    return row


def _require_writer(principal: Principal) -> None:
    if principal.kind == "staff" and not principal.has_role(*WRITERS):
        raise Forbidden("your role does not allow this")


def update_policy(session: Session, *, principal: Principal, **values: object) -> DeliveryPolicy:
    """Set the corp's caps, quiet hours, WeCom allowance, rate and control-group share (audited)."""
    _require_writer(principal)
    row = policy_for(session, corp_id=principal.corp_id)
    changed = {}
    for name, value in values.items():
        if value is None:
            continue
        if name == "wecom_allowance":
            if value not in ALLOWANCES:
                raise InvalidInput("WeCom's allowance is counted by month, week or day", field=name)
        elif name in LIMITS:
            low, high = LIMITS[name]
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise InvalidInput("%(field)s is %(low)s–%(high)s", field=name,
                                   params={"field": name, "low": low, "high": high})
        else:
            raise InvalidInput("no such setting", field=name)
        if getattr(row, name) != value:
            changed[name] = [getattr(row, name), value]
            setattr(row, name, value)
    if changed:
        row.updated_by = principal.label[:120]
        audit.record(session, corp_id=principal.corp_id, actor=principal, action="delivery.policy_changed",
                     target_type="delivery_policy", target_id=principal.corp_id, detail=changed)
    return row


def redraw_holdout(session: Session, *, principal: Principal) -> DeliveryPolicy:
    """Draw a new global control group (a new key): only on request, audited."""
    _require_writer(principal)
    row = policy_for(session, corp_id=principal.corp_id)
    row.holdout_mult, row.holdout_add = _key()
    row.holdout_drawn_at = utcnow()
    audit.record(session, corp_id=principal.corp_id, actor=principal, action="delivery.holdout_redrawn",
                 target_type="delivery_policy", target_id=principal.corp_id,
                 detail={"basis_points": row.holdout_basis_points})
    return row


# --- the control group ---------------------------------------------------------------------------------------


def bucket(customer_id: int, mult: int, add: int) -> int:
    """The customer's bucket 0…9999 under the key (mult, add); the SQL twin is `bucket_sql`."""
    return ((customer_id * mult + add) % PRIME) % BUCKETS


def bucket_sql(column, mult: int, add: int):
    return ((column * mult + add) % PRIME) % BUCKETS


def in_global_holdout(policy: DeliveryPolicy, customer_id: int) -> bool:
    return bucket(customer_id, policy.holdout_mult, policy.holdout_add) < policy.holdout_basis_points


def broadcast_key(salt: int) -> tuple[int, int]:
    """A per-broadcast key from its salt (stable per broadcast, independent of the global one)."""
    return 1 + salt % (PRIME - 1), (salt // PRIME) % PRIME


# --- calendar windows in Asia/Shanghai -----------------------------------------------------------------------


def local(at: dt.datetime) -> dt.datetime:
    return at.astimezone(SHANGHAI)


def day_start(at: dt.datetime, *, days_back: int = 0) -> dt.datetime:
    """UTC start of the Shanghai calendar day `days_back` days before the day of `at`."""
    day = local(at).date() - dt.timedelta(days=days_back)
    return dt.datetime.combine(day, dt.time(), SHANGHAI).astimezone(dt.UTC)


def allowance(policy_allowance: str, at: dt.datetime) -> tuple[dt.datetime, int]:
    """WeCom's allowance period containing `at` (its UTC start) and how many mass messages a
    customer may receive in it (see the emulator's `messaging.allowance_period`)."""
    day = local(at).date()
    if policy_allowance == "day":
        start, cap = day, 1
    elif policy_allowance == "week":
        start, cap = day - dt.timedelta(days=day.weekday()), 7
    else:
        start, cap = day.replace(day=1), calendar.monthrange(day.year, day.month)[1]
    return dt.datetime.combine(start, dt.time(), SHANGHAI).astimezone(dt.UTC), cap


def in_quiet_hours(policy: DeliveryPolicy, at: dt.datetime) -> bool:
    start, end = policy.quiet_start_minute, policy.quiet_end_minute
    if start == end:
        return False
    t = local(at)
    minute = t.hour * 60 + t.minute
    return start <= minute < end if start < end else (minute >= start or minute < end)


def release_at(policy: DeliveryPolicy, at: dt.datetime) -> dt.datetime:
    """The next allowed minute at or after `at` (the end of the quiet hours it falls in)."""
    if not in_quiet_hours(policy, at):
        return at
    t = local(at)
    end = dt.datetime.combine(t.date(), dt.time(policy.quiet_end_minute // 60, policy.quiet_end_minute % 60),
                              SHANGHAI)
    if end <= t:
        end += dt.timedelta(days=1)
    return end.astimezone(dt.UTC)


# --- counting and deciding -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Counts:
    day: int = 0
    days_7: int = 0
    days_30: int = 0
    wecom: int = 0


def counts(session: Session, *, corp_id: int, customer_id: int, at: dt.datetime, wecom_allowance: str = "month"
           ) -> Counts:
    """The customer's counted sends (planned or sent, every kind) in each window ending at `at`."""
    d0, d7, d30 = day_start(at), day_start(at, days_back=6), day_start(at, days_back=29)
    a0, _cap = allowance(wecom_allowance, at)
    L = DeliveryLedger
    mass = L.kind.not_in(NOT_MASS_MESSAGE)
    row = session.execute(select(
        func.coalesce(func.sum(case((L.at >= d0, 1), else_=0)), 0),
        func.coalesce(func.sum(case((L.at >= d7, 1), else_=0)), 0),
        func.coalesce(func.sum(case((L.at >= d30, 1), else_=0)), 0),
        func.coalesce(func.sum(case(((L.at >= a0) & mass, 1), else_=0)), 0),
    ).where(L.corp_id == corp_id, L.customer_id == customer_id, L.state.in_(COUNTED), L.at >= min(d30, a0),
            L.at <= at)).one()
    return Counts(*(int(v) for v in row))


def cap_reason(policy: DeliveryPolicy, c: Counts, *, at: dt.datetime, kind: str) -> str | None:
    """The cap a further send at `at` would break, or None (pure: the Hypothesis tests check it)."""
    if c.day >= policy.per_day:
        return "capped_day"
    if c.days_7 >= policy.per_7_days:
        return "capped_7_days"
    if c.days_30 >= policy.per_30_days:
        return "capped_30_days"
    if kind not in NOT_MASS_MESSAGE and c.wecom >= allowance(policy.wecom_allowance, at)[1]:
        return "capped_wecom"
    return None


def _opted_out(session: Session, *, corp_id: int, customer_id: int) -> bool:
    from siyu.customers.models import Customer
    from siyu.privacy.service import refused_recipients

    ext = session.scalar(select(Customer.external_userid).where(Customer.id == customer_id,
                                                                Customer.corp_id == corp_id))
    if ext is None:
        return True
    return bool(refused_recipients(session, corp_id=corp_id, kind="marketing", recipients=[ext]))


@dataclass(frozen=True)
class Claim:
    """The answer to a claim: `state` planned (send now), held (until `due_at`) or aborted
    (`reason`); `fresh` False when the row existed already (a redelivered job: planned means the
    outcome of an earlier attempt is unknown — reconcile, do not send blindly)."""

    state: str
    reason: str
    due_at: dt.datetime | None
    fresh: bool
    ledger_id: int

    @property
    def go(self) -> bool:
        return self.state == "planned" and self.fresh


def _decide(session: Session, policy: DeliveryPolicy, *, corp_id: int, customer_id: int, kind: str,
            at: dt.datetime, holdout_exempt: bool = False) -> tuple[str, str, dt.datetime | None]:
    if _opted_out(session, corp_id=corp_id, customer_id=customer_id):
        return "aborted", "opted_out", None
    if not holdout_exempt and in_global_holdout(policy, customer_id):
        return "aborted", "holdout_global", None
    reason = cap_reason(policy, counts(session, corp_id=corp_id, customer_id=customer_id, at=at,
                                       wecom_allowance=policy.wecom_allowance), at=at, kind=kind)
    if reason is not None:
        return "aborted", reason, None
    if in_quiet_hours(policy, at):
        return "held", "quiet_hours", release_at(policy, at)
    return "planned", "", None


def claim(session: Session, *, corp_id: int, customer_id: int, kind: str, source: str, at: dt.datetime | None = None,
          advisor_userid: str | None = None) -> Claim:
    """Decide and record one marketing send before it is made (commit before calling WeCom).

    A row that exists is returned as it is (fresh=False), except a held one whose time has come: it
    is decided again (caps may have filled meanwhile) and becomes planned, held again or aborted."""
    if kind not in KINDS:
        raise InvalidInput("unknown kind of marketing send", field="kind")
    at = at or utcnow()
    policy = policy_for(session, corp_id=corp_id)
    row = session.scalar(select(DeliveryLedger).where(DeliveryLedger.source == source,
                                                      DeliveryLedger.customer_id == customer_id))
    if row is not None:
        if row.state != "held" or (row.due_at is not None and row.due_at > at):
            return Claim(row.state, row.reason, row.due_at, False, row.id)
        state, reason, due = _decide(session, policy, corp_id=corp_id, customer_id=customer_id, kind=kind, at=at)
        row.state, row.reason, row.due_at, row.at = state, reason, due, at
        session.flush()
        return Claim(state, reason, due, True, row.id)
    state, reason, due = _decide(session, policy, corp_id=corp_id, customer_id=customer_id, kind=kind, at=at)
    row = DeliveryLedger(corp_id=corp_id, customer_id=customer_id, kind=kind, source=source[:80], state=state,
                         reason=reason, at=at, due_at=due, advisor_userid=advisor_userid)
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:  # a concurrent claim of the same send won
        row = session.scalar(select(DeliveryLedger).where(DeliveryLedger.source == source,
                                                          DeliveryLedger.customer_id == customer_id))
        if row is None:  # not a duplicate: another integrity error (no such customer)
            raise
        return Claim(row.state, row.reason, row.due_at, False, row.id)
    return Claim(state, reason, due, True, row.id)


def record_outcome(session: Session, *, source: str, customer_ids: list[int] | set[int], state: str,
                   reason: str = "", sent_at: dt.datetime | None = None) -> int:
    """Mark claimed sends as sent or failed (WeCom's answer); returns the rows changed."""
    if state not in ("sent", "failed", "aborted"):
        raise ValueError(state)
    ids = list(customer_ids)
    changed = 0
    for i in range(0, len(ids), 500):
        rows = session.scalars(select(DeliveryLedger).where(DeliveryLedger.source == source,
                                                            DeliveryLedger.customer_id.in_(ids[i:i + 500]),
                                                            DeliveryLedger.state == "planned"))
        for row in rows:
            row.state, row.reason = state, reason[:40]
            if state == "sent":
                row.sent_at = sent_at or utcnow()
            changed += 1
    return changed


def ledger_summary(session: Session, *, source: str) -> dict[str, int]:
    """Rows of one source by state and reason: {"sent": 10, "aborted:capped_day": 2, ...}."""
    rows = session.execute(select(DeliveryLedger.state, DeliveryLedger.reason, func.count())
                           .where(DeliveryLedger.source == source)
                           .group_by(DeliveryLedger.state, DeliveryLedger.reason))
    return {(f"{state}:{reason}" if reason else state): n for state, reason, n in rows}
