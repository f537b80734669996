"""The reports against hand-computed answers, on every engine (DuckDB, in-process ClickHouse, the
test database's own SQL): skipped, repeated and late steps, events in the same second, cohorts with
no activity, reinvestment at exactly N days and at N+1, cost events without a channel, no customers."""

from __future__ import annotations

import datetime as dt

import pytest

from analytics.reportdata import ENGINE_NAMES, Events, at
from analytics.reportdata import report as run
from siyu.analytics.reports import Filters, ReportError


@pytest.fixture(params=ENGINE_NAMES)
def engine_name(request):
    return request.param


@pytest.fixture
def ev(session):
    return Events(session)


def rep(name, engine_name, session, tmp_path, filters=None, **params):
    return run(name, engine_name, session, tmp_path, filters, **params)


ADD, VER, INV = "customer.added", "customer.verified", "order.invested"


def test_funnel_counts_each_customer_once_per_step_within_the_window(engine_name, session, tmp_path, ev):
    d0 = "2026-03-02"
    ev.add("a", ADD, at(d0))
    ev.add("a", VER, at("2026-03-03"))
    ev.add("a", INV, at("2026-03-04"))
    ev.add("b", ADD, at(d0))
    ev.add("b", INV, at("2026-03-04"))  # skips verification
    ev.add("c", ADD, at(d0))
    ev.add("c", VER, at("2026-03-03"))
    ev.add("c", VER, at("2026-03-04"))
    ev.add("c", INV, at("2026-03-05"))  # repeats a step: counted once
    ev.add("d", ADD, at(d0))
    ev.add("d", VER, at("2026-03-03"))
    ev.add("d", INV, at("2026-03-10"))  # late
    # the same second, the later step written first
    ev.add("e", INV, at(d0, "09:00:00"))
    ev.add("e", VER, at(d0, "09:00:00"))
    ev.add("e", ADD, at(d0, "09:00:00"))
    ev.add("f", VER, at(d0))
    ev.add("f", ADD, at("2026-03-03"))  # verified before the add
    # a second add starts a chain of its own
    ev.add("g", ADD, at(d0))
    ev.add("g", ADD, at("2026-03-12"))
    ev.add("g", VER, at("2026-03-13"))
    ev.add("g", INV, at("2026-03-14"))
    # exactly 7 days after the first step counts; a second later does not
    ev.add("h", ADD, at(d0))
    ev.add("h", VER, at("2026-03-03"))
    ev.add("h", INV, at("2026-03-09"))
    ev.add("i", ADD, at(d0))
    ev.add("i", VER, at("2026-03-03"))
    ev.add("i", INV, at("2026-03-09", "10:00:01"))
    ev.add("j", "message.received", at(d0))  # never added
    result = rep("funnel", engine_name, session, tmp_path, steps=[ADD, VER, INV], window_days=7)
    assert result == {"steps": [{"name": ADD, "customers": 9}, {"name": VER, "customers": 7},
                                {"name": INV, "customers": 5}]}


def test_funnel_with_a_step_repeated_needs_two_events(engine_name, session, tmp_path, ev):
    ev.add("once", INV, at("2026-03-02"))
    ev.add("twice", INV, at("2026-03-02"))
    ev.add("twice", INV, at("2026-03-20"))
    ev.add("same-second", INV, at("2026-03-02"), amount_fen=1)
    ev.add("same-second", INV, at("2026-03-02"), amount_fen=2)
    ev.add("too-late", INV, at("2026-03-02"))
    ev.add("too-late", INV, at("2026-04-02"))
    result = rep("funnel", engine_name, session, tmp_path, steps=[INV, INV, INV], window_days=30)
    assert [s["customers"] for s in result["steps"]] == [4, 2, 0]


def test_funnel_date_range_selects_the_first_step_and_channel_selects_customers(engine_name, session, tmp_path, ev):
    ev.add("early", ADD, at("2026-02-28", "23:59:59"), channel="ad")
    ev.add("early", VER, at("2026-03-01"))
    ev.add("in", ADD, at("2026-03-01", "00:00:00"), channel="ad")
    ev.add("in", VER, at("2026-03-02"))
    ev.add("other", ADD, at("2026-03-01"), channel="branch")
    ev.add("other", VER, at("2026-03-02"))
    result = rep("funnel", engine_name, session, tmp_path, Filters(date_from=dt.date(2026, 3, 1)),
                 steps=[ADD, VER], window_days=3)
    assert [s["customers"] for s in result["steps"]] == [2, 2]
    result = rep("funnel", engine_name, session, tmp_path, Filters(channel="ad"), steps=[ADD, VER], window_days=3)
    assert [s["customers"] for s in result["steps"]] == [2, 2]
    result = rep("funnel", engine_name, session, tmp_path, Filters(channel="ad", date_to=dt.date(2026, 2, 28)),
                 steps=[ADD, VER], window_days=3)
    assert [s["customers"] for s in result["steps"]] == [1, 1]


def test_funnel_refuses_bad_parameters(session, tmp_path):
    with pytest.raises(ReportError, match="unknown step 'customer.add'"):
        rep("funnel", "sql", session, tmp_path, steps=[ADD, "customer.add"], window_days=7)
    with pytest.raises(ReportError, match="window_days"):
        rep("funnel", "sql", session, tmp_path, steps=[ADD], window_days=0)
    with pytest.raises(ReportError, match="steps"):
        rep("funnel", "sql", session, tmp_path, steps=[], window_days=3)


def test_retention_by_add_week_and_channel(engine_name, session, tmp_path, ev):
    ev.add("p", ADD, at("2026-03-02"), channel="ad")
    ev.add("p", "message.received", at("2026-03-04"))  # week 0
    ev.add("p", INV, at("2026-03-10"), amount_fen=100_000)  # week 1
    ev.add("p", "message.sent", at("2026-03-17"))  # the advisor's: not the customer's activity
    ev.add("q", ADD, at("2026-03-08", "23:30:00"), channel="ad")  # Sunday night in Shanghai: same week, no activity
    ev.add("r", ADD, at("2026-03-09", "00:30:00"), channel="branch")  # Sunday 16:30 UTC: next week in Shanghai
    ev.add("r", "group.joined", at("2026-03-09", "01:00:00"))
    ev.add("s", ADD, at("2026-03-03"), channel="ad")
    ev.add("s", ADD, at("2026-03-10"), channel="branch")  # a later add does not move the customer
    ev.add("s", "coupon.redeemed", at("2026-03-24"), amount_fen=500)  # week 3
    ev.add("z", ADD, at("2026-03-05"), channel="sms")  # a cohort with no activity
    result = rep("retention", engine_name, session, tmp_path, by="channel", weeks=3)

    def weeks(*cells):
        size = cells[0]
        return [{"offset": i, "active": a, "active_share": round(a / size, 4), "invested": v,
                 "invested_share": round(v / size, 4)} for i, (a, v) in enumerate(cells[1:])]

    assert result["rows"] == [
        {"cohort_week": "2026-03-02", "channel": "ad", "customers": 3,
         "weeks": weeks(3, (1, 0), (1, 1), (0, 0), (1, 0))},
        {"cohort_week": "2026-03-02", "channel": "sms", "customers": 1,
         "weeks": weeks(1, (0, 0), (0, 0), (0, 0), (0, 0))},
        {"cohort_week": "2026-03-09", "channel": "branch", "customers": 1,
         "weeks": weeks(1, (1, 0), (0, 0), (0, 0), (0, 0))},
    ]
    by_week = rep("retention", engine_name, session, tmp_path, weeks=1)
    assert [(r["cohort_week"], r["customers"], r["weeks"][0]["active"]) for r in by_week["rows"]] == [
        ("2026-03-02", 4, 1), ("2026-03-09", 1, 1)]


def test_reinvestment_within_n_days(engine_name, session, tmp_path, ev):
    ev.add("m1", "order.matured", at("2026-03-01"), amount_fen=100_000)
    ev.add("m1", INV, at("2026-03-31"), amount_fen=100_000)  # exactly 30 days: reinvested
    ev.add("m2", "order.matured", at("2026-03-01"), amount_fen=100_000)
    ev.add("m2", INV, at("2026-04-01"), amount_fen=100_000)  # 31 days: not
    ev.add("m3", INV, at("2026-03-04"), amount_fen=5_000)  # before: not a reinvestment
    ev.add("m3", "order.redeemed", at("2026-03-05", "12:00:00"), amount_fen=5_000)
    ev.add("m3", INV, at("2026-03-05", "12:00:00"), amount_fen=5_000)  # the same second: 0 days
    ev.add("m4", "order.matured", at("2026-04-02", "12:00:00"))
    ev.add("m4", INV, at("2026-04-04", "00:00:00"))  # 1.5 days
    ev.add("m4", "order.matured", at("2026-04-10", "12:00:00"))
    ev.add("m4", INV, at("2026-04-12", "18:00:00"))  # 2.25 days
    result = rep("reinvestment", engine_name, session, tmp_path, days=30)
    assert result == {
        "days": 30, "customers": 4, "reinvested_customers": 3, "rate": 0.75, "maturities": 5,
        "reinvested_maturities": 4, "median_days": 1.5, "mean_days": round((30 + 0 + 1.5 + 2.25) / 4, 2),
        "by_month": [
            {"month": "2026-03", "customers": 3, "reinvested_customers": 2, "rate": round(2 / 3, 4), "maturities": 3,
             "reinvested_maturities": 2, "median_days": 15.0, "mean_days": 15.0},
            {"month": "2026-04", "customers": 1, "reinvested_customers": 1, "rate": 1.0, "maturities": 2,
             "reinvested_maturities": 2, "median_days": 1.5, "mean_days": round((1.5 + 2.25) / 2, 2)},
        ]}
    assert rep("reinvestment", engine_name, session, tmp_path, days=31)["reinvested_customers"] == 4
    with pytest.raises(ReportError, match="days"):
        rep("reinvestment", engine_name, session, tmp_path, days=-1)


def _acquisition(ev):
    ev.add("a1", ADD, at("2026-03-02"), channel="ad", campaign="spring")
    ev.add("a2", ADD, at("2026-03-03"), channel="ad")
    ev.add("b1", ADD, at("2026-03-04"), channel="branch", campaign="spring")
    ev.add("a1", "campaign.reward_paid", at("2026-03-02", "11:00:00"), amount_fen=500)  # no channel: a1's first add's
    ev.add("b1", "coupon.redeemed", at("2026-03-05"), amount_fen=300, channel="ad")  # its own channel
    ev.add("x", "campaign.reward_paid", at("2026-03-05"), amount_fen=1000)  # nobody's channel
    ev.add("a1", INV, at("2026-03-06"), amount_fen=100_000)
    ev.spend(1001, "2026-03-01", "2026-03-10", channel="ad")
    ev.spend(700, "2026-03-01", "2026-03-31", channel="sms")


def test_cac_per_channel(engine_name, session, tmp_path, ev):
    _acquisition(ev)
    result = rep("cac", engine_name, session, tmp_path, by="channel")
    assert result["rows"] == [
        {"channel": "ad", "cost_fen": 500 + 300 + 1001, "customers": 2, "cac_fen": 901},  # 900.5 rounds up
        {"channel": "branch", "cost_fen": 0, "customers": 1, "cac_fen": 0},
        {"channel": "sms", "cost_fen": 700, "customers": 0, "cac_fen": None},
        {"channel": None, "cost_fen": 1000, "customers": 0, "cac_fen": None},
    ]
    # 5 of the ad spend's 10 days (1001 * 5 / 10 = 500.5: 500 fen) and 5 of the sms spend's 31 (112.9: 112)
    ranged = rep("cac", engine_name, session, tmp_path, Filters(date_from=dt.date(2026, 3, 1),
                                                                date_to=dt.date(2026, 3, 5)), by="channel")
    assert ranged["rows"][0] == {"channel": "ad", "cost_fen": 500 + 300 + 500, "customers": 2, "cac_fen": 650}
    assert ranged["rows"][2] == {"channel": "sms", "cost_fen": 112, "customers": 0, "cac_fen": None}
    # nothing of a period after the range
    later = rep("cac", engine_name, session, tmp_path, Filters(date_from=dt.date(2026, 4, 1)), by="channel")
    assert later["rows"] == []


def test_cac_per_campaign_and_roi(engine_name, session, tmp_path, ev):
    _acquisition(ev)
    result = rep("cac", engine_name, session, tmp_path, by="campaign")
    assert result["rows"] == [
        {"campaign": "spring", "cost_fen": 800, "customers": 2, "cac_fen": 400},
        {"campaign": None, "cost_fen": 1000 + 1001 + 700, "customers": 1, "cac_fen": 2701},
    ]
    roi = rep("roi", engine_name, session, tmp_path)
    assert roi["rows"][0] == {"campaign": "spring", "cost_fen": 800, "customers": 2, "investors": 1,
                              "invested_fen": 100_000, "invested_per_cost": 125.0}


def test_reports_with_no_customers(engine_name, session, tmp_path, ev):
    assert rep("cac", engine_name, session, tmp_path, by="channel") == {"by": "channel", "rows": []}
    assert rep("funnel", engine_name, session, tmp_path, steps=[ADD, VER], window_days=1)["steps"] == [
        {"name": ADD, "customers": 0}, {"name": VER, "customers": 0}]
    assert rep("retention", engine_name, session, tmp_path, by="channel")["rows"] == []
    empty = rep("reinvestment", engine_name, session, tmp_path, days=30)
    assert empty["customers"] == 0 and empty["rate"] is None and empty["median_days"] is None
    assert empty["by_month"] == []
    ev.spend(5000, "2026-03-01", "2026-03-01", channel="ad")
    assert rep("cac", engine_name, session, tmp_path, by="channel")["rows"] == [
        {"channel": "ad", "cost_fen": 5000, "customers": 0, "cac_fen": None}]


def test_a_corp_reads_its_own_events_only(engine_name, session, tmp_path, ev):
    from tenancy.factories import make_corp

    corp = make_corp(session)
    ev.add("imported", ADD, at("2026-03-02"), channel="ad")
    theirs = Events(session, corp.id)
    theirs.add("7", ADD, at("2026-03-02"), channel="ad")
    theirs.add("8", ADD, at("2026-03-02"), channel="ad")
    assert rep("cac", engine_name, session, tmp_path, by="channel")["rows"][0]["customers"] == 1
    corp_rows = rep("cac", engine_name, session, tmp_path, Filters(corp_id=corp.id), by="channel")["rows"]
    assert corp_rows == [{"channel": "ad", "cost_fen": 0, "customers": 2, "cac_fen": 0}]


def test_an_advisor_sees_the_customers_they_added(engine_name, session, tmp_path, ev):
    ev.add("mine", ADD, at("2026-03-02"), channel="ad", advisor="wang")
    ev.add("mine", ADD, at("2026-03-05"), channel="ad", advisor="li")  # added again by another: still wang's
    ev.add("mine", "coupon.redeemed", at("2026-03-06"), amount_fen=300)
    ev.add("theirs", ADD, at("2026-03-02"), channel="ad", advisor="li")
    ev.spend(10_000, "2026-03-01", "2026-03-31", channel="ad")
    wang = rep("cac", engine_name, session, tmp_path, Filters(advisors=("wang",)), by="channel")
    assert wang["rows"] == [{"channel": "ad", "cost_fen": 300, "customers": 1, "cac_fen": 300}]
    both = rep("funnel", engine_name, session, tmp_path, Filters(advisors=["wang", "li"]), steps=[ADD], window_days=1)
    assert both["steps"][0]["customers"] == 2
    nobody = rep("funnel", engine_name, session, tmp_path, Filters(advisors=()), steps=[ADD], window_days=1)
    assert nobody["steps"][0]["customers"] == 0
