"""Console page 服务质量: managers see every advisor, an advisor only their own row (page, chart and
CSV); the CSV download is audited; working hours are edited by administrators and operations, bad
input is refused naming the field and stores nothing; another corp sees none of it."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from siyu.quality import service as quality
from siyu.quality.models import QualitySettings
from siyu.tenancy.models import AuditEntry
from tenancy.factories import console_user, fast_argon2, make_corp  # noqa: F401

from .test_service import _day

DAY = "2026-11-27"


def test_managers_see_every_advisor(session, corp):
    _day(session, corp)
    ops = console_user(session, corp, roles=("operations",))
    page = ops.get("/compliance/quality", params={"date": DAY})
    assert page.status_code == 200 and "服务质量" in page.text
    assert 'data-advisor="a1"' in page.text and 'data-advisor="a2"' in page.text
    assert 'data-testid="chart-advisors"' in page.text and 'data-testid="chart-trend"' in page.text
    assert 'data-testid="totals-row"' in page.text and 'data-testid="settings-link"' in page.text
    english = ops.get("/compliance/quality", params={"date": DAY, "lang": "en"})
    assert "Service quality" in english.text and "Median first reply (min)" in english.text
    bad = ops.get("/compliance/quality", params={"date": "27/11/2026"})
    assert bad.status_code == 422 and 'data-field="date"' in bad.text


def test_sorting(session, corp):
    _day(session, corp)
    ops = console_user(session, corp, roles=("operations",))
    up = ops.get("/compliance/quality", params={"date": DAY, "sort": "customer_messages", "dir": "asc"}).text
    down = ops.get("/compliance/quality", params={"date": DAY, "sort": "customer_messages", "dir": "desc"}).text
    assert up.index('data-advisor="a2"') < up.index('data-advisor="a1"')  # 1 message before 4
    assert down.index('data-advisor="a1"') < down.index('data-advisor="a2"')


def test_an_advisor_sees_only_their_own_row(session, corp):
    _day(session, corp)
    advisor = console_user(session, corp, roles=("advisor",), wecom_userid="a2")
    page = advisor.get("/compliance/quality", params={"date": DAY})
    assert page.status_code == 200
    assert 'data-advisor="a2"' in page.text and 'data-advisor="a1"' not in page.text
    assert 'data-testid="restricted-note"' in page.text and 'data-testid="settings-link"' not in page.text
    csv = advisor.get("/compliance/quality/report.csv", params={"date": DAY})
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    lines = csv.text.lstrip("\ufeff").splitlines()
    assert len(lines) == 3 and lines[1].startswith("a2,") and not any(line.startswith("a1,") for line in lines)
    entry = session.scalar(select(AuditEntry).where(AuditEntry.chain_id == corp.id,
                                                    AuditEntry.action == "quality_report.exported"))
    assert entry is not None and entry.detail["rows"] == 1
    assert advisor.get("/compliance/quality/settings").status_code == 403
    assert advisor.post("/compliance/quality/settings", {"weekdays": ["0"], "day_start": "09:00", "day_end": "18:00",
                                                         "timeout_minutes": "30"}).status_code == 403


def test_open_timeout_alerts_are_listed_per_advisor(session, corp):
    _day(session, corp)
    quality.raise_timeouts(session, now=dt.datetime(2026, 11, 30, 2, 0, tzinfo=dt.UTC), corp_id=corp.id)
    admin = console_user(session, corp, roles=("administrator",))
    text = admin.get("/compliance/quality", params={"date": DAY}).text
    assert 'data-testid="timeout-row" data-advisor="a2"' in text
    other = console_user(session, corp, roles=("advisor",), wecom_userid="a1")
    assert 'data-testid="timeout-row"' not in other.get("/compliance/quality", params={"date": DAY}).text


def test_working_hours_settings(session, corp):
    ops = console_user(session, corp, roles=("operations",))
    assert ops.get("/compliance/quality/settings").status_code == 200
    bad = ops.post("/compliance/quality/settings", {"weekdays": ["0", "1"], "day_start": "18:00", "day_end": "09:00",
                                                    "timeout_minutes": "30"})
    assert bad.status_code == 422 and 'data-field="day_end"' in bad.text
    bad = ops.post("/compliance/quality/settings", {"weekdays": ["0"], "day_start": "09:00", "day_end": "18:00",
                                                    "timeout_minutes": "lots"})
    assert bad.status_code == 422 and 'data-field="timeout_minutes"' in bad.text
    bad = ops.post("/compliance/quality/settings", {"weekdays": ["9"], "day_start": "09:00", "day_end": "18:00",
                                                    "timeout_minutes": "30"})
    assert bad.status_code == 422 and 'data-field="weekdays"' in bad.text
    assert session.get(QualitySettings, corp.id) is None  # nothing stored
    ok = ops.post("/compliance/quality/settings", {"weekdays": ["0", "1", "2", "3", "4", "5"], "day_start": "08:30",
                                                   "day_end": "17:30", "public_holidays": "1", "timeout_minutes": "15"})
    assert ok.status_code == 303
    row = session.get(QualitySettings, corp.id)
    assert (row.weekdays, row.day_start, row.day_end, row.timeout_minutes, row.count_off_days) == (
        [0, 1, 2, 3, 4, 5], 510, 1050, 15, False)
    assert session.scalar(select(AuditEntry).where(AuditEntry.chain_id == corp.id,
                                                   AuditEntry.action == "quality_settings.updated")) is not None


def test_another_corp_sees_nothing(session, corp):
    _day(session, corp)
    other = console_user(session, make_corp(session), roles=("administrator",))
    text = other.get("/compliance/quality", params={"date": DAY}).text
    assert 'data-advisor="a1"' not in text
    assert "a1," not in other.get("/compliance/quality/report.csv", params={"date": DAY}).text


def test_csv_with_a_bad_date_names_the_field(session, corp):
    ops = console_user(session, corp, roles=("operations",))
    bad = ops.get("/compliance/quality/report.csv", params={"date": "soon"})
    assert bad.status_code == 422 and 'data-field="date"' in bad.text
