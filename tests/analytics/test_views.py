"""Console pages of analytics: the dashboard per role (an advisor sees the customers they added only),
names instead of keys, filters with bad input named, every chart as an Excel workbook (formulas
neutralised), and the spend entry (yuan typed, fen stored, exact; bad input named; roles)."""

from __future__ import annotations

import datetime as dt
import decimal
import io
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl import load_workbook
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.acquisition import service as acquisition
from siyu.analytics import service
from siyu.analytics.models import AnalyticsSpend
from siyu.errors import InvalidInput
from tenancy.factories import ConsoleClient, fast_argon2, log_in, make_staff  # noqa: F401

T0 = dt.datetime(2026, 3, 2, 2, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)


@pytest.fixture
def world(engine, tmp_path, monkeypatch):
    """A corp with two advisors, a channel code, and events, committed (the analytics engines read
    committed rows). 王顾问 (wang) added c1–c3 through the code; 李顾问 (li) added c4."""
    from siyu.tenancy import service as tenancy

    # A DuckDB copy of its own: rows taken out at the end leave their ids free for the next test's.
    monkeypatch.setenv("SIYU_ANALYTICS_DUCKDB", str(tmp_path / "analytics.duckdb"))
    s = Session(bind=engine, expire_on_commit=False)
    corp = tenancy.create_corp(s, slug=f"av-{uuid.uuid4().hex[:8]}", name="分析页面银行")
    make_staff(s, corp, roles=("advisor",), name="王顾问", wecom_userid="wang", login=f"wang{corp.id}")
    make_staff(s, corp, roles=("advisor",), name="李顾问", wecom_userid="li", login=f"li{corp.id}")
    code = acquisition.create_channel_code(s, corp_id=corp.id, actor="test", name="春季朋友圈广告", channel="ad",
                                           campaign="=HYPERLINK(\"http://x\")",
                                           advisors=[acquisition.AdvisorSpec("wang")])
    rows = []

    def ev(c, type, at, **dims):
        rows.append(service.event_row(corp_id=corp.id, customer_id=None, customer_key=f"c{c}", type=type, ts=at,
                                      source_key=f"t:{c}:{type}:{at.timestamp()}", **dims))

    for c in (1, 2, 3):
        ev(c, "customer.added", T0, channel=code.state, campaign=code.campaign, advisor="wang")
    ev(1, "customer.verified", T0 + DAY)
    ev(1, "group.joined", T0 + 2 * DAY, group_key="g1")
    ev(1, "order.invested", T0 + 3 * DAY, amount_fen=100_000)
    ev(4, "customer.added", T0, channel="other-state", advisor="li")
    ev(4, "customer.verified", T0 + DAY)
    service.record_many(s, rows)
    s.add(AnalyticsSpend(corp_id=corp.id, channel=code.state, day_from=T0.date(), day_to=T0.date(), amount_fen=30_000))
    s.commit()
    yield s, corp, code
    _forget(s, corp.id)


def _forget(s: Session, corp_id: int) -> None:
    """Takes the committed events and spend out again (other tests count what the engines copy)."""
    from sqlalchemy import delete

    from siyu.analytics.models import AnalyticsEvent

    s.rollback()
    s.execute(delete(AnalyticsEvent).where(AnalyticsEvent.corp_id == corp_id))
    s.execute(delete(AnalyticsSpend).where(AnalyticsSpend.corp_id == corp_id))
    s.commit()
    s.close()


def console_user(s: Session, corp, *, roles, **kwargs) -> ConsoleClient:
    """A logged-in user of a real app (each request in a transaction of its own, committed): the
    dashboard ends its request's transaction before the engine reads. `s` is left with no
    transaction open (on SQLite it would hold the write turn the requests need)."""
    from fastapi.testclient import TestClient

    from siyu.app import create_app
    from siyu.config import get_settings

    staff = make_staff(s, corp, roles=roles, **kwargs)
    s.commit()
    client = TestClient(create_app(get_settings()), follow_redirects=False)
    return ConsoleClient(client, staff, log_in(client, staff))


def test_operations_see_the_corp_with_names_not_keys(world):
    s, corp, code = world
    ops = console_user(s, corp, roles=("operations",))
    page = ops.get("/analytics", params={"from": "2026-03-01", "to": "2026-03-31"})
    assert page.status_code == 200, page.text
    assert "数据分析" in page.text
    for chart in ("funnel", "cohorts", "cac_channel", "cac_campaign", "reinvestment", "variants", "personas",
                  "lifecycle", "groups", "advisors"):
        assert f'data-testid="chart-{chart}"' in page.text and f'data-testid="export-{chart}"' in page.text
    assert "春季朋友圈广告" in page.text and "王顾问" in page.text and "李顾问" in page.text
    assert f">{code.state}<" not in page.text, "the channel's name, not its state"
    assert "100.00" in page.text, "CAC of the code: 300 yuan over 3 customers"
    assert 'data-testid="scoped-note"' not in page.text
    english = ops.get("/analytics", params={"lang": "en"})
    assert "Analytics" in english.text and "Cost per acquired customer by channel" in english.text


def test_bad_filters_are_named(world):
    s, corp, _ = world
    ops = console_user(s, corp, roles=("operations",))
    for params, field in (({"from": "2026-13-01"}, "from"), ({"from": "2026-03-05", "to": "2026-03-01"}, "from"),
                          ({"steps": ["customer.added", "nope"]}, "steps"), ({"window": "0"}, "window"),
                          ({"department": "x"}, "department"),
                          ({"steps": ["reinvested", "customer.added"]}, "steps")):
        page = ops.get("/analytics", params=params)
        assert page.status_code == 422 and f'data-field="{field}"' in page.text, (params, page.text[:300])


def test_an_advisor_sees_only_the_customers_they_added(world):
    s, corp, _ = world
    wang = console_user(s, corp, roles=("advisor",), wecom_userid="wang2")
    # An advisor with no customers: nothing of the corp.
    page = wang.get("/analytics")
    assert page.status_code == 200 and 'data-testid="scoped-note"' in page.text
    assert "李顾问" not in page.text and "王顾问" not in page.text
    from fastapi.testclient import TestClient

    from siyu.app import create_app
    from siyu.config import get_settings
    from siyu.tenancy.models import Staff

    staff = s.scalar(select(Staff).where(Staff.corp_id == corp.id, Staff.wecom_userid == "wang"))
    s.commit()
    client = TestClient(create_app(get_settings()), follow_redirects=False)
    own = ConsoleClient(client, staff, log_in(client, staff))
    page = own.get("/analytics", params={"steps": ["customer.added", "customer.verified"]})
    assert "王顾问" in page.text and "李顾问" not in page.text
    book = load_workbook(io.BytesIO(own.get("/analytics/export/funnel.xlsx",
                                            params={"steps": "customer.added,customer.verified"}).content))
    rows = list(book.active.iter_rows(values_only=True))
    assert [r[1] for r in rows[1:]] == [3, 1], "wang's 3 customers, one verified (li's customer is not counted)"
    cac = load_workbook(io.BytesIO(own.get("/analytics/export/cac_channel.xlsx").content)).active
    assert [r[1] for r in cac.iter_rows(values_only=True)][1:] == ["0.00"], "no spend for an advisor"
    assert own.get("/analytics/spend").status_code == 403


def test_every_chart_exports_to_excel_with_formulas_neutralised(world):
    s, corp, _ = world
    ops = console_user(s, corp, roles=("operations",))
    r = ops.get("/analytics/export/cac_campaign.xlsx", params={"lang": "en"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/vnd.openxmlformats")
    rows = list(load_workbook(io.BytesIO(r.content)).active.iter_rows(values_only=True))
    assert rows[0] == ("Campaign", "Cost (yuan)", "Customers", "Cost per customer (yuan)")
    assert ("'=HYPERLINK(\"http://x\")", "0.00", 3, "0.00") in rows, rows
    funnel = list(load_workbook(io.BytesIO(ops.get("/analytics/export/funnel.xlsx").content)).active
                  .iter_rows(values_only=True))
    assert [r[:2] for r in funnel[1:]] == [("添加为好友", 4), ("已验证身份", 2), ("加入社群", 1), ("已投资", 1),
                                           ("已复投", 0)]
    assert ops.get("/analytics/export/nope.xlsx").status_code == 404


def test_spend_is_typed_in_yuan_and_stored_in_fen(world):
    s, corp, code = world
    ops = console_user(s, corp, roles=("operations",))
    r = ops.post("/analytics/spend", {"amount": "1,500.50", "day_from": "2026-03-01", "day_to": "2026-03-31",
                                      "channel": code.state, "note": "朋友圈广告"})
    assert r.status_code == 303, r.text
    spend = s.scalar(select(AnalyticsSpend).where(AnalyticsSpend.corp_id == corp.id, AnalyticsSpend.note != ""))
    assert (spend.amount_fen, spend.channel, spend.day_from) == (150_050, code.state, dt.date(2026, 3, 1))
    s.commit()
    page = ops.get("/analytics/spend")
    assert "1500.50" in page.text and "春季朋友圈广告" in page.text
    for form, field in (({"amount": "1.234"}, "amount"), ({"amount": "abc"}, "amount"), ({"amount": "0"}, "amount"),
                        ({"day_from": "2026-04-01"}, "day_to"), ({"channel": ""}, "channel"),
                        ({"day_to": "31/03/2026"}, "day_to")):
        body = {"amount": "100", "day_from": "2026-03-01", "day_to": "2026-03-31", "channel": code.state, **form}
        bad = ops.post("/analytics/spend", body)
        assert bad.status_code == 422 and f'data-field="{field}"' in bad.text, (form, bad.text[:200])
    assert s.scalar(select(AnalyticsSpend.id).where(AnalyticsSpend.corp_id == corp.id,
                                                    AnalyticsSpend.amount_fen == 10_000)) is None
    spend_id = spend.id
    s.commit()
    r = ops.post(f"/analytics/spend/{spend_id}/delete", {})
    s.expire_all()
    assert r.status_code == 303
    assert s.scalar(select(AnalyticsSpend.id).where(AnalyticsSpend.id == spend_id)) is None
    s.commit()


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(min_value=1, max_value=10**12), st.booleans(), st.sampled_from(["", "¥", " ", "元"]))
def test_yuan_to_fen_is_exact(fen, commas, dress):
    amount = decimal.Decimal(fen) / 100
    text = f"{amount:,.2f}" if commas else f"{amount:.2f}"
    text = f"{dress}{text}" if dress in ("¥", " ") else f"{text}{dress}"
    assert service.parse_yuan(text) == fen


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet="0123456789.,¥元 -e+x", max_size=14) | st.text(max_size=8))
def test_anything_else_is_refused_or_exact(text):
    try:
        fen = service.parse_yuan(text)
    except InvalidInput as exc:
        assert exc.field == "amount"
        return
    clean = text
    for mark in (",", "，", "¥", "￥", " "):
        clean = clean.replace(mark, "")
    clean = clean.removesuffix("元")
    assert decimal.Decimal(clean) * 100 == fen and fen > 0


def test_administrators_queue_the_backfill_and_advisors_cannot(world):
    from siyu.jobs.models import Job

    s, corp, _ = world
    admin = console_user(s, corp, roles=("administrator",))
    r = admin.post("/analytics/backfill", {})
    assert r.status_code == 303 and r.headers["location"] == "/analytics/spend?backfill=1"
    assert 'data-testid="backfill-notice"' in admin.get("/analytics/spend?backfill=1").text
    assert s.scalar(select(Job.name).where(Job.corp_id == corp.id, Job.name == "analytics.backfill")) is not None
    s.commit()
    advisor = console_user(s, corp, roles=("advisor",))
    assert advisor.post("/analytics/backfill", {}).status_code == 403
