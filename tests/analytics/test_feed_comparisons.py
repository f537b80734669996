"""The comparison reports (siyu.analytics.comparisons) against hand-computed answers, the same on
the main database's SQL, DuckDB and ClickHouse (chdb); the significance tests against hand-computed
statistics."""

from __future__ import annotations

import datetime as dt
import math
import uuid

import pytest

from siyu.analytics import comparisons, service
from siyu.analytics.engines import open_engine
from siyu.analytics.reports import Filters, run_report
from siyu.db import session_scope

T0 = dt.datetime(2026, 3, 2, 2, 0, tzinfo=dt.UTC)  # Monday 10:00 in Shanghai
DAY = dt.timedelta(days=1)


def test_two_proportion_z_and_chi_square_match_the_hand_computed_case():
    # A: 40 of 200 replied, B: 60 of 200. Pooled p = 0.25; se = sqrt(0.25 · 0.75 · (1/200 + 1/200)) = 0.0433013;
    # z = (0.30 − 0.20) / se = 2.309401; two-sided p = erfc(z / √2) = 0.020921; χ² = z² = 5.333333 (1 df).
    z, p = comparisons.two_proportion_z(40, 200, 60, 200)
    assert z == pytest.approx(2.309401, abs=1e-6)
    assert p == pytest.approx(0.020921, abs=1e-6)
    stat, df, p_chi = comparisons.chi_square([40, 60], [200, 200])
    assert (stat, df) == (pytest.approx(16 / 3, abs=1e-9), 1)
    assert p_chi == pytest.approx(p, abs=1e-12)
    # 2 df: P(X ≥ x) = exp(−x/2) exactly; 5.991465 is the 5 % point. 3 df: 7.814728 is the 5 % point.
    assert comparisons.p_chi_square(5.991465, 2) == pytest.approx(0.05, abs=1e-6)
    assert comparisons.p_chi_square(7.814728, 3) == pytest.approx(0.05, abs=1e-6)
    assert comparisons.p_chi_square(40.0, 10) == pytest.approx(1.7e-5, rel=0.05)  # tables: 1.69e-5
    assert comparisons.chi_square([0, 0], [10, 10]) is None, "nobody replied: the test says nothing"
    assert comparisons.two_proportion_z(0, 0, 1, 2) is None


@pytest.fixture(scope="module")
def data_set(database_url):
    """A corp's events written once (the engines read committed rows)."""
    from siyu.tenancy import service as tenancy

    rows = []

    def ev(customer, type, at, key, **dims):
        rows.append(service.event_row(corp_id=corp_id, customer_id=None, customer_key=f"c{customer}", type=type,
                                      ts=at, source_key=f"t:{key}", **dims))

    with session_scope() as s:
        corp_id = tenancy.create_corp(s, slug=f"cmp-{uuid.uuid4().hex[:8]}", name="对比测试银行").id
    n = 0
    # Experiment: variant 1 (A) 200 customers, 40 reply within the window; variant 2 (B) 200, 60 do.
    for arm, replies in (("1", 40), ("2", 60)):
        for i in range(200):
            n += 1
            ev(n, "customer.added", T0, f"add{n}", variant=arm, persona="7" if arm == "1" else "8", advisor="zhang")
            if i < replies:
                ev(n, "message.received", T0 + DAY, f"msg{n}")
    # Outside the window (31 days after the add) and before the add: not counted.
    ev(300, "message.received", T0 + 31 * DAY, "late")
    ev(1, "message.received", T0 - DAY, "early")
    # Lifecycle and advisors: c1001 added week 0, verified week 1, invested week 2, matured week 3,
    # reinvested week 4; c1002 added week 0 by li, lost week 2; c1003 added week 1 by li, nothing more.
    week = 7 * DAY
    ev(1001, "customer.added", T0, "l1", advisor="li")
    ev(1001, "customer.verified", T0 + week, "l2")
    ev(1001, "order.invested", T0 + 2 * week, "l3", amount_fen=100_000)
    ev(1001, "order.matured", T0 + 3 * week, "l4")
    ev(1001, "order.invested", T0 + 4 * week, "l5", amount_fen=100_000)
    ev(1002, "customer.added", T0, "l6", advisor="li")
    ev(1002, "customer.lost", T0 + 2 * week, "l7", advisor="li")
    ev(1003, "customer.added", T0 + week, "l8", advisor="li")
    # Groups: g1 (a study group) c1001 in for 10 days, c1002 in for 4 days: emptied, lifetime 10 days.
    # g2 (a product group): c1003 joined and is still in: alive.
    ev(1001, "group.joined", T0, "g1", group_key="g1")
    ev(1001, "group.left", T0 + 10 * DAY, "g2", group_key="g1")
    ev(1002, "group.joined", T0 + DAY, "g3", group_key="g1")
    ev(1002, "group.left", T0 + 5 * DAY, "g4", group_key="g1")
    ev(1003, "group.joined", T0 + week, "g5", group_key="g2")
    with session_scope() as s:
        service.record_many(s, rows)
    yield corp_id
    with session_scope() as s:  # other tests count what the engines copy
        from sqlalchemy import delete

        from siyu.analytics.models import AnalyticsEvent

        s.execute(delete(AnalyticsEvent).where(AnalyticsEvent.corp_id == corp_id))


ENGINES = ["sql", "duckdb", "clickhouse"]


@pytest.fixture(scope="module", params=ENGINES)
def engine(request, data_set):
    with open_engine(request.param) as e:
        yield e


def test_experiments_by_variant(engine, data_set):
    out = run_report("experiments", engine, Filters(corp_id=data_set), by="variant", window_days=30)
    arms = {a["key"]: a for a in out["arms"]}
    assert {k: (a["customers"], a["replied"], a["replied_rate"]) for k, a in arms.items()} == {
        "1": (200, 40, 0.2), "2": (200, 60, 0.3)}, "the late reply and the reply before the add do not count"
    replied = out["tests"]["replied"]
    assert (replied["control"], replied["df"]) == ("1", 1)
    assert replied["p"] == pytest.approx(0.020921, abs=1e-6)
    assert replied["versus_control"] == [{"key": "2", "z": pytest.approx(2.3094, abs=1e-4),
                                          "p": pytest.approx(0.020921, abs=1e-6)}]
    assert out["tests"]["invested"]["p"] is None, "nobody in the experiment invested"
    by_persona = run_report("experiments", engine, Filters(corp_id=data_set), by="persona", window_days=30)
    assert [(a["key"], a["customers"], a["replied"]) for a in by_persona["arms"]] == [("7", 200, 40), ("8", 200, 60)]


def test_lifecycle_per_week(engine, data_set):
    out = run_report("lifecycle", engine, Filters(corp_id=data_set, date_to=(T0 + 4 * 7 * DAY).date()), weeks=5)
    stages = [(w["week"], w["new"], w["activated"], w["invested"], w["reinvested"], w["lost"]) for w in out["weeks"]]
    # The 100 who replied are activated from week 0 (a reply the day after the add), and so are c1001 and
    # c1002 (they joined a group that week); the other 300 stay new. c1003 comes in week 1 and joins a
    # group the same week; c1001 invests in week 2 (c1002 is lost) and reinvests after a maturity in week 4.
    assert stages == [
        ("2026-03-02", 300, 100 + 2, 0, 0, 0),
        ("2026-03-09", 300, 100 + 3, 0, 0, 0),
        ("2026-03-16", 300, 100 + 1, 1, 0, 1),
        ("2026-03-23", 300, 100 + 1, 1, 0, 1),
        ("2026-03-30", 300, 100 + 1, 0, 1, 1),
    ]


def test_group_lifetime_by_positioning(engine, data_set):
    out = run_report("group_lifetime", engine, Filters(corp_id=data_set), positions={"g1": "study", "g2": "product"})
    assert out["rows"] == [
        {"positioning": "product", "groups": 1, "alive": 1, "joined": 1, "left": 0, "median_lifetime_days": None,
         "median_stay_days": None},
        {"positioning": "study", "groups": 1, "alive": 0, "joined": 2, "left": 2, "median_lifetime_days": 10.0,
         "median_stay_days": 7.0},
    ]


def test_advisor_performance(engine, data_set):
    out = run_report("advisor_performance", engine, Filters(corp_id=data_set))
    assert out["rows"] == [
        {"advisor": "li", "added": 3, "verified": 1, "invested": 1, "lost": 1,
         "verified_rate": round(1 / 3, 4), "invested_rate": round(1 / 3, 4)},
        {"advisor": "zhang", "added": 400, "verified": 0, "invested": 0, "lost": 0, "verified_rate": 0.0,
         "invested_rate": 0.0},
    ]
    assert math.isclose(out["rows"][0]["verified_rate"], 0.3333)
