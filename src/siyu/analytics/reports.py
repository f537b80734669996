"""The analytics reports, each defined once as SQL over the events and run on any engine
(siyu.analytics.engines: DuckDB, ClickHouse, the main database's SQL) with the same answers.

The exact counting rules are in docs/analytics.md. In short:

- The data set is one corp's events (`Filters.corp_id`) or, with `corp_id=None`, the events loaded by
  `siyu analytics import` without a corp.
- A customer's *first add* is their earliest `customer.added` (ties: the lower id). Their channel,
  campaign and advisor are the first add's. The channel, campaign and advisors filters select
  customers by their first add.
- Dates are Asia/Shanghai calendar days, both ends included; each report says which events the date
  range selects.

How a report is defined (for new reports, e.g. in another module):

    from siyu.analytics.reports import Filters, Query, report

    @report("adds_by_advisor")
    def adds_by_advisor(q: Query, f: Filters) -> dict:
        '''Customers added per advisor in the date range.'''
        rows = q.rows(f'''{q.with_base()}
            SELECT e.advisor, COUNT(DISTINCT e.customer_key) FROM ev e
            WHERE e.type = 'customer.added' AND {q.in_range("e.ts_s")}
            GROUP BY e.advisor''')
        return {"rows": [{"advisor": a, "customers": int(n)} for a, n in sorted(rows, key=sort_key)]}

    result = run_report("adds_by_advisor", engine, Filters(corp_id=3))   # or adds_by_advisor(engine, f)

`q.with_base()` opens a WITH clause defining `ev` (the data set's events, customer filter applied;
columns id, customer_key, type, ts_s, channel, join_way, campaign, advisor, persona, variant,
product, group_key, amount_fen), `fa` (one row per selected customer with an add: customer_key, t
= first add's ts_s, channel, campaign, advisor) and `sp` (the data set's spend: channel, campaign, d_from,
d_to, amount_fen); add CTEs with `q.with_base("x AS (...)", ...)`. `q.d` is the engine's dialect
(`q.d.idiv`, `q.d.day`, `q.d.week`, `q.d.yyyymm`, `q.d.lit` for every value put into SQL).
A report returns plain JSON-able data built from integers the engine returned (compute shares and
medians in Python so that every engine gives the same answer), sorted deterministically.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import wraps
from typing import Any

from siyu.analytics.engines import DAY_S, SHANGHAI_OFFSET_S, AnalyticsEngine
from siyu.analytics.events import EVENT_TYPES

EPOCH_DAY = dt.date(1970, 1, 1)

# What a customer does (not the advisor: message.sent is the advisor's): the events that make a
# customer "active" in a week of the retention report.
ACTIVE_TYPES: tuple[str, ...] = ("message.received", "group.joined", "customer.verified", "order.invested",
                                 "order.redeemed", "order.matured", "coupon.redeemed")
COST_TYPES: tuple[str, ...] = ("campaign.reward_paid", "coupon.redeemed")
MATURITY_TYPES: tuple[str, ...] = ("order.matured", "order.redeemed")


class ReportError(ValueError):
    """Bad report parameters (an unknown step, a window of zero days...): the message names them."""


@dataclass(frozen=True)
class Filters:
    """Which events a report reads: the data set (`corp_id`, None = imported), an inclusive range of
    Asia/Shanghai days, and customers by their first add's channel or campaign."""

    corp_id: int | None = None
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    channel: str | None = None
    campaign: str | None = None
    # customers whose first add was by one of these advisors (WeCom user ids): an advisor's own
    # figures, a department's (its advisors); None: everyone, () nobody
    advisors: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.advisors is not None and not isinstance(self.advisors, tuple):
            object.__setattr__(self, "advisors", tuple(self.advisors))
        if self.date_from and self.date_to and self.date_from > self.date_to:
            raise ReportError(f"--from {self.date_from} is after --to {self.date_to}")


def day_number(day: dt.date) -> int:
    return (day - EPOCH_DAY).days


def date_of(day: int) -> dt.date:
    return EPOCH_DAY + dt.timedelta(days=int(day))


def week_monday(week: int) -> dt.date:
    return date_of(int(week) * 7 - 3)


def sort_key(row: Sequence[Any]) -> tuple:
    """Orders rows with NULL keys last, whatever their types."""
    return tuple((v is None, v if v is not None else 0) for v in row)


class Query:
    """A report's view of one engine and one set of filters."""

    def __init__(self, engine: AnalyticsEngine, filters: Filters) -> None:
        self.engine, self.f, self.d = engine, filters, engine.dialect

    def rows(self, sql: str) -> list[tuple]:
        return self.engine.rows(sql)

    # the range of times, in seconds, of the date filter
    @property
    def t_from(self) -> int | None:
        return None if self.f.date_from is None else day_number(self.f.date_from) * DAY_S - SHANGHAI_OFFSET_S

    @property
    def t_to(self) -> int | None:
        """The first second after the range."""
        return None if self.f.date_to is None else (day_number(self.f.date_to) + 1) * DAY_S - SHANGHAI_OFFSET_S

    def in_range(self, ts_s: str) -> str:
        parts = []
        if self.t_from is not None:
            parts.append(f"{ts_s} >= {self.t_from}")
        if self.t_to is not None:
            parts.append(f"{ts_s} < {self.t_to}")
        return " AND ".join(parts) or "1 = 1"

    def corp(self, column: str = "corp_id") -> str:
        return f"{column} IS NULL" if self.f.corp_id is None else f"{column} = {int(self.f.corp_id)}"

    def with_base(self, *more: str) -> str:
        d, f = self.d, self.f
        cols = "id, customer_key, type, ts_s, channel, join_way, campaign, advisor, persona, variant, product, " \
               "group_key, amount_fen"
        ctes = [
            f"ev0 AS (SELECT {cols} FROM {self.engine.events} ev_src WHERE {self.corp()})",
            "fa0 AS (SELECT customer_key, t, channel, campaign, advisor FROM (SELECT customer_key, ts_s AS t, "
            "channel, campaign, advisor, ROW_NUMBER() OVER (PARTITION BY customer_key ORDER BY ts_s, id) AS rn "
            "FROM ev0 WHERE type = 'customer.added') firsts WHERE rn = 1)",
        ]
        conditions = []
        if f.channel is not None:
            conditions.append(f"channel = {d.lit(f.channel)}")
        if f.campaign is not None:
            conditions.append(f"campaign = {d.lit(f.campaign)}")
        if f.advisors is not None:
            conditions.append(f"advisor IN ({', '.join(d.lit(a) for a in f.advisors)})" if f.advisors else "1 = 0")
        if conditions:
            where = " AND ".join(conditions)
            ctes.append(f"fa AS (SELECT customer_key, t, channel, campaign, advisor FROM fa0 WHERE {where})")
            ctes.append(f"ev AS (SELECT {cols} FROM ev0 WHERE customer_key IN (SELECT customer_key FROM fa))")
        else:
            ctes.append("fa AS (SELECT customer_key, t, channel, campaign, advisor FROM fa0)")
            ctes.append(f"ev AS (SELECT {cols} FROM ev0)")
        ctes.append(f"sp AS (SELECT channel, campaign, d_from, d_to, amount_fen FROM {self.engine.spend} sp_src "
                    f"WHERE {self.corp()})")
        ctes.extend(more)
        return "WITH " + ",\n".join(ctes) + "\n"


REPORTS: dict[str, Callable[..., dict]] = {}


def report(name: str) -> Callable[[Callable[..., dict]], Callable[..., dict]]:
    """Registers a report: `fn(q: Query, f: Filters, **params) -> dict` becomes
    `fn(engine, filters, **params) -> dict` and `run_report(name, engine, filters, **params)`."""

    def register(fn: Callable[..., dict]) -> Callable[..., dict]:
        @wraps(fn)
        def run(engine: AnalyticsEngine, filters: Filters | None = None, **params: Any) -> dict:
            filters = filters or Filters()
            return fn(Query(engine, filters), filters, **params)

        REPORTS[name] = run
        return run

    return register


def run_report(name: str, engine: AnalyticsEngine, filters: Filters | None = None, **params: Any) -> dict:
    if name not in REPORTS:
        raise ReportError(f"unknown report {name!r} (one of {', '.join(sorted(REPORTS))})")
    return REPORTS[name](engine, filters, **params)


def _check_types(steps: Sequence[str], what: str = "step") -> None:
    for s in steps:
        if s not in EVENT_TYPES:
            raise ReportError(f"unknown {what} {s!r} (one of {', '.join(EVENT_TYPES)})")


def _positive(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ReportError(f"{name} must be a whole number above 0, not {value!r}")
    return value


# --- funnel -----------------------------------------------------------------------------------------


@report("funnel")
def funnel(q: Query, f: Filters, *, steps: Sequence[str], window_days: int) -> dict:
    """Customers reaching each of the ordered `steps` (event types).

    A chain starts at a step-1 event in the date range; step k+1 is an event of its type at or
    after the chain's step-k event (the same second counts; for a step of the same type as the one
    before, a later event), at most `window_days` × 24 h after the chain's step-1 event. A customer
    reaches step k if one of their chains does (each step follows the earliest qualifying event,
    which reaches at least as far as any other choice); each customer counts once per step."""
    steps = list(steps)
    if not steps:
        raise ReportError("steps: name at least one event type")
    _check_types(steps)
    window_s = _positive(window_days, "window_days") * DAY_S
    d = q.d
    need_seq = any(steps[i] == steps[i - 1] for i in range(1, len(steps)))
    src = "evs" if need_seq else "ev"
    seq = "seq" if need_seq else "id"
    ctes = []
    if need_seq:
        ctes.append("evs AS (SELECT customer_key, type, ts_s, ROW_NUMBER() OVER "
                    "(PARTITION BY customer_key ORDER BY ts_s, id) AS seq FROM ev)")
    ctes.append(f"s1 AS (SELECT customer_key, ts_s AS t0, ts_s AS t, {seq} AS sq FROM {src} "
                f"WHERE type = {d.lit(steps[0])} AND {q.in_range('ts_s')})")
    for k in range(1, len(steps)):
        after = "e.sq_e > p.sq" if steps[k] == steps[k - 1] else "e.ts_s >= p.t"
        ctes.append(
            f"s{k + 1} AS (SELECT p.customer_key, p.t0, MIN(e.ts_s) AS t, MIN(e.sq_e) AS sq FROM s{k} p "
            f"JOIN (SELECT customer_key, ts_s, {seq} AS sq_e FROM {src} WHERE type = {d.lit(steps[k])}) e "
            f"ON e.customer_key = p.customer_key WHERE {after} AND e.ts_s <= p.t0 + {window_s} "
            "GROUP BY p.customer_key, p.t0, p.sq)")
    union = " UNION ALL ".join(f"SELECT {k + 1} AS step, COUNT(DISTINCT customer_key) AS n FROM s{k + 1}"
                               for k in range(len(steps)))
    counts = dict(q.rows(q.with_base(*ctes) + union))
    return {"steps": [{"name": s, "customers": int(counts.get(i + 1) or 0)} for i, s in enumerate(steps)]}


# --- retention --------------------------------------------------------------------------------------


@report("retention")
def retention(q: Query, f: Filters, *, by: str | None = None, weeks: int = 8) -> dict:
    """Cohorts of customers by the ISO week (Asia/Shanghai) of their first add in the date range, and
    by its channel or campaign (`by`); for each week offset 0..`weeks` after the add week, the
    customers active (an event of ACTIVE_TYPES) and invested (order.invested) in that week."""
    if by not in (None, "channel", "campaign"):
        raise ReportError(f"by must be channel or campaign, not {by!r}")
    if isinstance(weeks, bool) or not isinstance(weeks, int) or not 0 <= weeks <= 520:
        raise ReportError(f"weeks must be a whole number from 0 to 520, not {weeks!r}")
    d = q.d
    key = by or "NULL"
    types = ", ".join(d.lit(t) for t in ACTIVE_TYPES)
    cohort = (f"coh AS (SELECT customer_key, {d.week('t')} AS cw, {key} AS k FROM fa WHERE {q.in_range('t')})")
    # one row per customer and week they were active in; inv = 1 if they invested that week
    act = (f"act AS (SELECT customer_key, {d.week('ts_s')} AS w, "
           f"MAX(CASE WHEN type = 'order.invested' THEN 1 ELSE 0 END) AS inv FROM ev WHERE type IN ({types}) "
           f"GROUP BY customer_key, {d.week('ts_s')})")
    sql = q.with_base(cohort, act) + (
        "SELECT coh.cw, coh.k, -1 AS off, COUNT(*) AS active, 0 AS invested FROM coh GROUP BY coh.cw, coh.k "
        "UNION ALL "
        "SELECT coh.cw, coh.k, act.w - coh.cw AS off, COUNT(*) AS active, SUM(act.inv) AS invested "
        "FROM coh JOIN act ON act.customer_key = coh.customer_key "
        f"WHERE act.w >= coh.cw AND act.w <= coh.cw + {int(weeks)} GROUP BY coh.cw, coh.k, act.w - coh.cw")
    sizes: dict[tuple, int] = {}
    cells: dict[tuple, dict[int, tuple[int, int]]] = defaultdict(dict)
    for cw, k, off, active, invested in q.rows(sql):
        if int(off) < 0:
            sizes[(int(cw), k)] = int(active)
        else:
            cells[(int(cw), k)][int(off)] = (int(active), int(invested))
    rows = []
    for (cw, k), size in sorted(sizes.items(), key=lambda kv: sort_key(kv[0])):
        row: dict[str, Any] = {"cohort_week": week_monday(cw).isoformat()}
        if by:
            row[by] = k
        row["customers"] = size
        row["weeks"] = [{"offset": off, "active": cells[(cw, k)].get(off, (0, 0))[0],
                         "active_share": _share(cells[(cw, k)].get(off, (0, 0))[0], size),
                         "invested": cells[(cw, k)].get(off, (0, 0))[1],
                         "invested_share": _share(cells[(cw, k)].get(off, (0, 0))[1], size)}
                        for off in range(weeks + 1)]
        rows.append(row)
    return {"by": by, "weeks": weeks, "rows": rows}


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


# --- reinvestment -----------------------------------------------------------------------------------


@report("reinvestment")
def reinvestment(q: Query, f: Filters, *, days: int = 30) -> dict:
    """Maturities and redemptions (order.matured, order.redeemed) in the date range, and whether the
    customer invested again (order.invested) at or after it and at most `days` × 24 h later.

    Customers: who had one; reinvested customers: who reinvested after at least one; rate =
    reinvested customers / customers. Time to reinvest: per reinvested maturity, to the first
    investment after it — mean in days (from seconds), median of whole days elapsed. By month of the
    maturity (Asia/Shanghai) for the chart."""
    window_s = _positive(days, "days") * DAY_S
    d = q.d
    mats = ", ".join(d.lit(t) for t in MATURITY_TYPES)
    m = f"m AS (SELECT id, customer_key, ts_s AS t FROM ev WHERE type IN ({mats}) AND {q.in_range('ts_s')})"
    hit = ("hit AS (SELECT m.id, MIN(i.ts_s) - m.t AS delay FROM m JOIN (SELECT customer_key, ts_s FROM ev "
           "WHERE type = 'order.invested') i ON i.customer_key = m.customer_key "
           f"WHERE i.ts_s >= m.t AND i.ts_s <= m.t + {window_s} GROUP BY m.id, m.t)")
    mm = (f"mm AS (SELECT m.customer_key, {d.yyyymm(d.day('m.t'))} AS ym, hit.delay AS delay FROM m "
          "LEFT JOIN hit ON hit.id = m.id)")
    sql = q.with_base(m, hit, mm) + (
        # kind 0: per month and whole days of delay (-1: not reinvested): maturities and the delay's sum
        f"SELECT 0 AS kind, ym, COALESCE({d.idiv('delay', DAY_S)}, -1) AS dd, COUNT(*) AS n, "
        "COALESCE(SUM(delay), 0) AS s FROM mm GROUP BY ym, COALESCE(" + d.idiv("delay", DAY_S) + ", -1) "
        # kind 1: customers per month; kind 2: over all
        "UNION ALL SELECT 1 AS kind, ym, 0 AS dd, COUNT(DISTINCT customer_key) AS n, "
        "COUNT(DISTINCT CASE WHEN delay IS NOT NULL THEN customer_key END) AS s FROM mm GROUP BY ym "
        "UNION ALL SELECT 2 AS kind, 0 AS ym, 0 AS dd, COUNT(DISTINCT customer_key) AS n, "
        "COUNT(DISTINCT CASE WHEN delay IS NOT NULL THEN customer_key END) AS s FROM mm")
    hist: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    sums: dict[int, int] = defaultdict(int)
    maturities: dict[int, int] = defaultdict(int)
    customers: dict[int, tuple[int, int]] = {}
    total = (0, 0)
    for kind, ym, dd, n, s in q.rows(sql):
        kind, ym, dd, n, s = int(kind), int(ym or 0), int(dd), int(n), int(s or 0)
        if kind == 0:
            maturities[ym] += n
            if dd >= 0:
                hist[ym][dd] += n
                sums[ym] += s
        elif kind == 1:
            customers[ym] = (n, s)
        else:
            total = (n, s)

    def figures(hist_: dict[int, int], sum_s: int, n_maturities: int, custs: tuple[int, int]) -> dict:
        reinvested = sum(hist_.values())
        return {"customers": custs[0], "reinvested_customers": custs[1], "rate": _share(custs[1], custs[0]),
                "maturities": n_maturities, "reinvested_maturities": reinvested,
                "median_days": _median(hist_),
                "mean_days": round(sum_s / reinvested / DAY_S, 2) if reinvested else None}

    all_hist: dict[int, int] = defaultdict(int)
    for h in hist.values():
        for dd, n in h.items():
            all_hist[dd] += n
    by_month = [{"month": f"{ym // 100:04d}-{ym % 100:02d}",
                 **figures(hist.get(ym, {}), sums.get(ym, 0), maturities[ym], customers.get(ym, (0, 0)))}
                for ym in sorted(maturities)]
    return {"days": days, **figures(all_hist, sum(sums.values()), sum(maturities.values()), total),
            "by_month": by_month}


def _median(hist: dict[int, int]) -> float | None:
    """The median of values given as {value: count}."""
    n = sum(hist.values())
    if not n:
        return None
    ordered = sorted(hist.items())

    def nth(i: int) -> int:
        seen = 0
        for value, count in ordered:
            seen += count
            if i < seen:
                return value
        raise AssertionError

    if n % 2:
        return float(nth(n // 2))
    return (nth(n // 2 - 1) + nth(n // 2)) / 2


# --- CAC and ROI ------------------------------------------------------------------------------------


def _cost_sql(q: Query, key: str) -> str:
    """The CTE `cost(k, amount)`: rewards paid and coupons redeemed in the range (the event's own
    channel/campaign, else the customer's first add's), and spend prorated to the range."""
    d = q.d
    types = ", ".join(d.lit(t) for t in COST_TYPES)
    if q.f.date_from is None and q.f.date_to is None:
        spend_amount, spend_where = "sp.amount_fen", "1 = 1"
    else:
        lo = day_number(q.f.date_from) if q.f.date_from else None
        hi = day_number(q.f.date_to) if q.f.date_to else None
        start = f"CASE WHEN sp.d_from > {lo} THEN sp.d_from ELSE {lo} END" if lo is not None else "sp.d_from"
        end = f"CASE WHEN sp.d_to < {hi} THEN sp.d_to ELSE {hi} END" if hi is not None else "sp.d_to"
        spend_amount = d.idiv(f"sp.amount_fen * ({end} - {start} + 1)", "(sp.d_to - sp.d_from + 1)")
        spend_where = " AND ".join(
            ([f"sp.d_to >= {lo}"] if lo is not None else []) + ([f"sp.d_from <= {hi}"] if hi is not None else []))
    spend_filter = []
    if q.f.channel is not None:
        spend_filter.append(f"sp.channel = {d.lit(q.f.channel)}")
    if q.f.campaign is not None:
        spend_filter.append(f"sp.campaign = {d.lit(q.f.campaign)}")
    if q.f.advisors is not None:  # entered spend is a channel's or campaign's, not an advisor's
        spend_filter.append("1 = 0")
    spend_where = " AND ".join([spend_where, *spend_filter])
    return (f"cost AS (SELECT COALESCE(e.{key}, fa0.{key}) AS k, COALESCE(e.amount_fen, 0) AS amount FROM ev e "
            f"LEFT JOIN fa0 ON fa0.customer_key = e.customer_key WHERE e.type IN ({types}) AND {q.in_range('e.ts_s')} "
            f"UNION ALL SELECT sp.{key} AS k, {spend_amount} AS amount FROM sp WHERE {spend_where})")


def _cac_rows(q: Query, key: str) -> dict[Any, tuple[int, int]]:
    sql = q.with_base(_cost_sql(q, key)) + (
        "SELECT k, SUM(amount) AS cost, SUM(n) AS customers FROM ("
        "SELECT k, amount, 0 AS n FROM cost UNION ALL "
        f"SELECT {key} AS k, 0 AS amount, 1 AS n FROM fa WHERE {q.in_range('t')}) x GROUP BY k")
    return {k: (int(cost or 0), int(n or 0)) for k, cost, n in q.rows(sql)}


def _div_half_up(a: int, b: int) -> int | None:
    return (2 * a + b) // (2 * b) if b else None


@report("cac")
def cac(q: Query, f: Filters, *, by: str = "channel") -> dict:
    """Cost of acquiring a customer per channel or campaign. Cost: campaign.reward_paid and
    coupon.redeemed amounts of events in the date range (an event without its own channel/campaign
    counts for the customer's first add's) plus entered spend, prorated by the days of its period
    inside the range (whole fen, rounded down per entry). Customers: those whose first add is in the
    range and in that channel/campaign. cac_fen = cost / customers rounded half up (None with none)."""
    if by not in ("channel", "campaign"):
        raise ReportError(f"by must be channel or campaign, not {by!r}")
    data = _cac_rows(q, by)
    rows = [{by: k, "cost_fen": cost, "customers": n, "cac_fen": _div_half_up(cost, n)}
            for k, (cost, n) in sorted(data.items(), key=lambda kv: sort_key((kv[0],)))]
    return {"by": by, "rows": rows}


@report("roi")
def roi(q: Query, f: Filters) -> dict:
    """Per campaign: its cost (as in `cac`), the customers it acquired (first add in the range), how
    many of them invested and how much (order.invested in the range), and invested / cost."""
    costs = _cac_rows(q, "campaign")
    sql = q.with_base() + (
        "SELECT fa.campaign, COUNT(DISTINCT e.customer_key), COALESCE(SUM(e.amount_fen), 0) FROM fa "
        "JOIN ev e ON e.customer_key = fa.customer_key "
        f"WHERE e.type = 'order.invested' AND {q.in_range('fa.t')} AND {q.in_range('e.ts_s')} GROUP BY fa.campaign")
    invested = {k: (int(n), int(s)) for k, n, s in q.rows(sql)}
    rows = []
    for k in sorted(set(costs) | set(invested), key=lambda v: sort_key((v,))):
        cost, customers = costs.get(k, (0, 0))
        investors, amount = invested.get(k, (0, 0))
        rows.append({"campaign": k, "cost_fen": cost, "customers": customers, "investors": investors,
                     "invested_fen": amount, "invested_per_cost": round(amount / cost, 4) if cost else None})
    return {"rows": rows}
