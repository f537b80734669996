"""服务质量 in a real browser on the seeded demo: the operations manager opens the page for the last
seeded working day, sees the median first-reply chart, the 14-day trend and the advisors' table,
sorts it and sees the customer left waiting past the timeout; an advisor sees only her own row
(screenshots in test-artifacts)."""

from __future__ import annotations

import datetime as dt

import pytest
from playwright.sync_api import expect

from siyu.quality import service as quality

pytestmark = pytest.mark.e2e


def _last_working_day() -> str:
    day = quality.china_today() - dt.timedelta(days=1)
    while not quality.WorkingHours().is_working_day(day):
        day -= dt.timedelta(days=1)
    return day.isoformat()


def test_operations_manager_reads_the_day(page, log_in, screenshot):
    log_in("demo.ops")
    page.locator("nav.sidebar a[href='/compliance/quality']").click()
    expect(page.locator("main h1")).to_have_text("服务质量")
    page.locator("#q-date").fill(_last_working_day())
    page.get_by_test_id("day-form").locator("button[type=submit]").click()
    expect(page.get_by_test_id("report-state")).to_contain_text("日报生成于")
    expect(page.get_by_test_id("chart-advisors").locator("svg")).to_be_visible()
    expect(page.get_by_test_id("chart-trend").locator("svg")).to_be_visible()
    rows = page.get_by_test_id("advisor-row")
    expect(rows).to_have_count(3)
    expect(page.get_by_test_id("quality-table")).to_contain_text("刘洋")
    expect(page.get_by_test_id("timeout-row").first).to_contain_text("liuyang")
    screenshot("compliance-quality")
    page.get_by_test_id("sort-customer_messages").click()
    expect(page.get_by_test_id("sort-customer_messages")).to_contain_text("↓")
    counts = [int(t) for t in rows.locator("td:nth-child(2)").all_inner_texts()]
    assert counts == sorted(counts, reverse=True)


def test_advisor_sees_her_own_row(page, log_in, screenshot):
    log_in("demo.advisor1")
    page.goto(f"/compliance/quality?date={_last_working_day()}&lang=en")
    expect(page.locator("main h1")).to_have_text("Service quality")
    rows = page.get_by_test_id("advisor-row")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-advisor", "zhangwei")
    expect(page.get_by_test_id("chart-trend").locator("svg")).to_be_visible()
    screenshot("compliance-quality-advisor-en")
