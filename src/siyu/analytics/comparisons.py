"""Comparison reports, defined in the report framework of `siyu.analytics.reports` (one SQL, every
engine, integers from the engine and shares and tests computed here):

- `experiments`: welcome A/B variants or personas (`by`) compared on what customers did after
  their add — replied (message.received), joined a group, verified, invested — each within
  `window_days` of the add, with significance: Pearson's chi-square test of independence over all
  arms (k × 2 table, k − 1 degrees of freedom), and for each arm against the control (the first
  arm in key order) the two-proportion z-test, two-sided, pooled variance (for two arms the two
  agree: z² = χ²). p-values from the normal and chi-square distributions (`p_chi_square`).
- `lifecycle`: the number of customers in each stage at the end of each week (Asia/Shanghai):
  new (added), activated (verified, joined a group or wrote to their advisor), invested,
  reinvested (invested again at or after a maturity or redemption), lost (their last add was
  followed by a loss).
- `group_lifetime`: per group (`group_key`) from its customers' joins and leaves: lifetime from the
  first join to the last leave of a group nobody is in any more (others are alive), members' stay
  days; summed per positioning (`positions`: group key → positioning, from the communities domain).
- `advisor_performance`: per advisor (the add's advisor): customers added, of them verified and
  invested after the add, and customers lost (customer.lost with that advisor). Reply times are
  the quality domain's and are joined in by the dashboard.

Each customer is counted in an experiment by their first add (its variant or persona); customers
whose first add has none are left out."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from siyu.analytics.engines import DAY_S, SHANGHAI_OFFSET_S
from siyu.analytics.reports import (
    Filters,
    Query,
    ReportError,
    _median,
    _positive,
    _share,
    report,
    sort_key,
    week_monday,
)

EXPERIMENT_OUTCOMES: tuple[tuple[str, str], ...] = (
    ("replied", "message.received"), ("joined", "group.joined"), ("verified", "customer.verified"),
    ("invested", "order.invested"))
ACTIVATING = ("customer.verified", "group.joined", "message.received")
STAGES = ("new", "activated", "invested", "reinvested", "lost")


# --- statistics ----------------------------------------------------------------------------------------

def _upper_gamma_regularized(a: float, x: float) -> float:
    """Q(a, x) = Γ(a, x) / Γ(a): a series below a + 1, a continued fraction above (Lentz)."""
    if x <= 0:
        return 1.0
    gln = math.lgamma(a)
    if x < a + 1:
        term = total = 1.0 / a
        n = a
        for _ in range(1000):
            n += 1
            term *= x / n
            total += term
            if abs(term) < abs(total) * 1e-15:
                break
        return max(0.0, 1.0 - total * math.exp(-x + a * math.log(x) - gln))
    tiny = 1e-300
    b = x + 1 - a
    c, d = 1 / tiny, 1 / b
    h = d
    for i in range(1, 1000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-15:
            break
    return min(1.0, math.exp(-x + a * math.log(x) - gln) * h)


def p_chi_square(statistic: float, df: int) -> float:
    """P(X ≥ statistic) for X chi-square with `df` degrees of freedom."""
    if df < 1:
        raise ValueError("df must be at least 1")
    if statistic <= 0:
        return 1.0
    if df == 1:
        return math.erfc(math.sqrt(statistic / 2))
    return _upper_gamma_regularized(df / 2, statistic / 2)


def chi_square(successes: Sequence[int], totals: Sequence[int]) -> tuple[float, int, float] | None:
    """Pearson's chi-square test of independence of a k × 2 table (successes, failures per arm):
    (statistic, degrees of freedom, p-value); None when it says nothing (fewer than two arms with
    customers, or nobody or everybody succeeded)."""
    arms = [(s, n) for s, n in zip(successes, totals, strict=True) if n > 0]
    total, hits = sum(n for _, n in arms), sum(s for s, _ in arms)
    if len(arms) < 2 or hits == 0 or hits == total:
        return None
    p = hits / total
    stat = sum((s - n * p) ** 2 / (n * p) + ((n - s) - n * (1 - p)) ** 2 / (n * (1 - p)) for s, n in arms)
    df = len(arms) - 1
    return stat, df, p_chi_square(stat, df)


def two_proportion_z(s1: int, n1: int, s2: int, n2: int) -> tuple[float, float] | None:
    """The two-proportion z-test (pooled), arm 2 against arm 1: (z, two-sided p); None when undefined."""
    if n1 <= 0 or n2 <= 0:
        return None
    pooled = (s1 + s2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return None
    z = (s2 / n2 - s1 / n1) / se
    return z, math.erfc(abs(z) / math.sqrt(2))


# --- experiments -----------------------------------------------------------------------------------------

def _first_add_cte(q: Query, column: str) -> str:
    return (f"arm AS (SELECT customer_key, t, k FROM (SELECT customer_key, ts_s AS t, {column} AS k, "
            "ROW_NUMBER() OVER (PARTITION BY customer_key ORDER BY ts_s, id) AS rn FROM ev "
            f"WHERE type = 'customer.added') firsts WHERE rn = 1 AND k IS NOT NULL AND {q.in_range('t')})")


@report("experiments")
def experiments(q: Query, f: Filters, *, by: str = "variant", window_days: int = 30) -> dict:
    """Arms (welcome variants or personas of the customers' first adds in the date range) compared
    on replied / joined / verified / invested within `window_days` after the add."""
    if by not in ("variant", "persona"):
        raise ReportError(f"by must be variant or persona, not {by!r}")
    window_s = _positive(window_days, "window_days") * DAY_S
    d = q.d
    outcome_cols = ", ".join(
        f"COUNT(DISTINCT CASE WHEN e.type = {d.lit(t)} THEN arm.customer_key END) AS {name}"
        for name, t in EXPERIMENT_OUTCOMES)
    types = ", ".join(d.lit(t) for _, t in EXPERIMENT_OUTCOMES)
    sql = q.with_base(_first_add_cte(q, by)) + (
        "SELECT arm.k, 0 AS part, COUNT(*) AS customers, 0, 0, 0, 0 FROM arm GROUP BY arm.k "
        f"UNION ALL SELECT arm.k, 1 AS part, 0, {outcome_cols} FROM arm JOIN ev e ON e.customer_key = arm.customer_key "
        f"WHERE e.type IN ({types}) AND e.ts_s >= arm.t AND e.ts_s <= arm.t + {window_s} GROUP BY arm.k")
    sizes: dict[str, int] = {}
    hits: dict[str, dict[str, int]] = defaultdict(dict)
    for k, part, n, *outcomes in q.rows(sql):
        if int(part) == 0:
            sizes[k] = int(n)
        else:
            hits[k] = {name: int(v) for (name, _), v in zip(EXPERIMENT_OUTCOMES, outcomes, strict=True)}
    keys = sorted(sizes, key=lambda v: sort_key((v,)))
    arms = []
    for k in keys:
        row: dict[str, Any] = {"key": k, "customers": sizes[k]}
        for name, _ in EXPERIMENT_OUTCOMES:
            s = hits.get(k, {}).get(name, 0)
            row[name] = s
            row[f"{name}_rate"] = _share(s, sizes[k])
        arms.append(row)
    tests = {}
    for name, _ in EXPERIMENT_OUTCOMES:
        overall = chi_square([a[name] for a in arms], [a["customers"] for a in arms])
        versus = []
        for a in arms[1:]:
            z = two_proportion_z(arms[0][name], arms[0]["customers"], a[name], a["customers"])
            versus.append({"key": a["key"], "z": round(z[0], 4) if z else None, "p": round(z[1], 6) if z else None})
        tests[name] = {"chi_square": round(overall[0], 4) if overall else None, "df": overall[1] if overall else None,
                       "p": round(overall[2], 6) if overall else None, "control": arms[0]["key"] if arms else None,
                       "versus_control": versus}
    return {"by": by, "window_days": window_days, "arms": arms, "tests": tests,
            "method": "chi-square test of independence; two-proportion z-test against the control"}


# --- lifecycle ----------------------------------------------------------------------------------------------

@report("lifecycle")
def lifecycle(q: Query, f: Filters, *, weeks: int = 12) -> dict:
    """Customers per stage at the end of each of the last `weeks` weeks up to the range's end (or the
    latest event). A customer's stage in a week: lost when their latest loss is after their latest
    add (both up to that week), else the furthest of reinvested, invested, activated, new reached."""
    if isinstance(weeks, bool) or not isinstance(weeks, int) or not 1 <= weeks <= 260:
        raise ReportError(f"weeks must be a whole number from 1 to 260, not {weeks!r}")
    d = q.d
    w = d.week
    act = ", ".join(d.lit(t) for t in ACTIVATING)
    upto = f"ts_s < {q.t_to}" if q.t_to is not None else "ts_s IS NOT NULL"
    mats = "'order.matured', 'order.redeemed'"
    per = (
        "per AS (SELECT customer_key, "
        f"MIN(CASE WHEN type = 'customer.added' THEN {w('ts_s')} END) AS aw, "
        f"MIN(CASE WHEN type IN ({act}) THEN {w('ts_s')} END) AS vw, "
        f"MIN(CASE WHEN type = 'order.invested' THEN {w('ts_s')} END) AS iw, "
        f"MIN(CASE WHEN type IN ({mats}) THEN ts_s END) AS mt, "
        "MAX(CASE WHEN type = 'customer.added' THEN ts_s END) AS la, "
        "MAX(CASE WHEN type = 'customer.lost' THEN ts_s END) AS ll "
        f"FROM ev WHERE {upto} GROUP BY customer_key)")
    re = ("re AS (SELECT per.customer_key, MIN(" + w("e.ts_s") + ") AS rw FROM per JOIN ev e ON "
          "e.customer_key = per.customer_key WHERE e.type = 'order.invested' AND per.mt IS NOT NULL "
          f"AND e.ts_s >= per.mt AND e.{upto} GROUP BY per.customer_key)")
    sql = q.with_base(per, re) + (
        f"SELECT per.aw, per.vw, per.iw, re.rw, CASE WHEN per.ll > per.la THEN {w('per.ll')} END AS lw, "
        f"COUNT(*) FROM per LEFT JOIN re ON re.customer_key = per.customer_key WHERE per.aw IS NOT NULL "
        "GROUP BY per.aw, per.vw, per.iw, re.rw, CASE WHEN per.ll > per.la THEN " + w("per.ll") + " END")
    groups = [tuple(None if v is None else int(v) for v in row) for row in q.rows(sql)]
    if not groups:
        return {"weeks": [], "stages": list(STAGES)}
    last = max(max(v for v in g[:5] if v is not None) for g in groups)
    if q.t_to is not None:  # the week of the range's last day (see siyu.analytics.engines: Asia/Shanghai)
        last = ((q.t_to - 1 + SHANGHAI_OFFSET_S) // DAY_S + 3) // 7
    first = max(last - weeks + 1, min(g[0] for g in groups))

    out = []
    for week in range(first, last + 1):
        counts = dict.fromkeys(STAGES, 0)
        for aw, vw, iw, rw, lw, n in groups:
            if aw > week:
                continue
            if lw is not None and lw <= week:
                stage = "lost"
            elif rw is not None and rw <= week:
                stage = "reinvested"
            elif iw is not None and iw <= week:
                stage = "invested"
            elif vw is not None and vw <= week:
                stage = "activated"
            else:
                stage = "new"
            counts[stage] += n
        out.append({"week": week_monday(week).isoformat(), **counts})
    return {"weeks": out, "stages": list(STAGES)}


# --- group lifetime -----------------------------------------------------------------------------------------

@report("group_lifetime")
def group_lifetime(q: Query, f: Filters, *, positions: Mapping[str, str] | None = None) -> dict:
    """Per positioning (`positions`: group key → positioning; other groups are "other"): groups,
    groups alive (someone still in), the median lifetime in days of the groups that emptied, customers
    joined and left, and the median stay in days of the customers who left."""
    positions = dict(positions or {})
    sql = q.with_base() + (
        "SELECT group_key, 0 AS part, MIN(CASE WHEN type = 'group.joined' THEN ts_s END), "
        "MAX(CASE WHEN type = 'group.left' THEN ts_s END), "
        "SUM(CASE WHEN type = 'group.joined' THEN 1 ELSE 0 END), SUM(CASE WHEN type = 'group.left' THEN 1 ELSE 0 END) "
        "FROM ev WHERE type IN ('group.joined', 'group.left') AND group_key IS NOT NULL GROUP BY group_key "
        "UNION ALL SELECT j.group_key, 1 AS part, " + q.d.idiv("l.ts_s - j.ts_s", DAY_S) + ", 0, COUNT(*), 0 "
        "FROM ev j JOIN ev l ON l.customer_key = j.customer_key AND l.group_key = j.group_key "
        "AND l.type = 'group.left' AND l.ts_s >= j.ts_s "
        "WHERE j.type = 'group.joined' GROUP BY j.group_key, " + q.d.idiv("l.ts_s - j.ts_s", DAY_S))
    groups: dict[str, dict[str, Any]] = {}
    stays: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for key, part, a, b, c, e in q.rows(sql):
        if int(part) == 0:
            groups[key] = {"first": int(a) if a is not None else None, "last_left": int(b) if b is not None else None,
                           "joined": int(c or 0), "left": int(e or 0)}
        else:
            stays[key][int(a)] += int(c)
    by_pos: dict[str, dict[str, Any]] = {}
    for key, g in groups.items():
        pos = positions.get(key, "other")
        agg = by_pos.setdefault(pos, {"groups": 0, "alive": 0, "joined": 0, "left": 0,
                                      "_life": defaultdict(int), "_stay": defaultdict(int)})
        agg["groups"] += 1
        agg["joined"] += g["joined"]
        agg["left"] += g["left"]
        if g["left"] >= g["joined"] and g["first"] is not None and g["last_left"] is not None:
            agg["_life"][(g["last_left"] - g["first"]) // DAY_S] += 1
        else:
            agg["alive"] += 1
        for days, n in stays.get(key, {}).items():
            agg["_stay"][days] += n
    rows = []
    for pos in sorted(by_pos):
        agg = by_pos[pos]
        rows.append({"positioning": pos, "groups": agg["groups"], "alive": agg["alive"], "joined": agg["joined"],
                     "left": agg["left"], "median_lifetime_days": _median(agg["_life"]),
                     "median_stay_days": _median(agg["_stay"])})
    return {"rows": rows}


# --- advisors -----------------------------------------------------------------------------------------------

@report("advisor_performance")
def advisor_performance(q: Query, f: Filters) -> dict:
    """Per advisor: customers added in the range (their adds to this advisor), of them verified and
    invested at or after that add, and customers lost in the range (customer.lost of this advisor)."""
    sql = q.with_base(
        "ad AS (SELECT advisor, customer_key, MIN(ts_s) AS t FROM ev WHERE type = 'customer.added' "
        f"AND advisor IS NOT NULL AND {q.in_range('ts_s')} GROUP BY advisor, customer_key)") + (
        "SELECT ad.advisor, 0 AS part, COUNT(*), 0, 0 FROM ad GROUP BY ad.advisor "
        "UNION ALL SELECT ad.advisor, 1 AS part, 0, "
        "COUNT(DISTINCT CASE WHEN e.type = 'customer.verified' THEN ad.customer_key END), "
        "COUNT(DISTINCT CASE WHEN e.type = 'order.invested' THEN ad.customer_key END) "
        "FROM ad JOIN ev e ON e.customer_key = ad.customer_key AND e.ts_s >= ad.t "
        "WHERE e.type IN ('customer.verified', 'order.invested') GROUP BY ad.advisor "
        "UNION ALL SELECT advisor, 2 AS part, COUNT(DISTINCT customer_key), 0, 0 FROM ev "
        f"WHERE type = 'customer.lost' AND advisor IS NOT NULL AND {q.in_range('ts_s')} GROUP BY advisor")
    data: dict[str, dict[str, int]] = defaultdict(lambda: {"added": 0, "verified": 0, "invested": 0, "lost": 0})
    for advisor, part, a, b, c in q.rows(sql):
        part = int(part)
        if part == 0:
            data[advisor]["added"] = int(a)
        elif part == 1:
            data[advisor]["verified"], data[advisor]["invested"] = int(b), int(c)
        else:
            data[advisor]["lost"] = int(a)
    rows = [{"advisor": k, **v, "verified_rate": _share(v["verified"], v["added"]),
             "invested_rate": _share(v["invested"], v["added"])} for k, v in sorted(data.items())]
    return {"rows": rows}
