"""SOP in a real browser: operations build a week for the demo's group set in the console (Mon/Wed/
Fri product content, Tue/Thu games, a dated Friday activity on working days), see each slot time in
the week and month views — held by compliance until approved, then planned — and the owners' tasks
(screenshots in test-artifacts)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e


def _add(page, *, title, content_type, time, text, weekdays=(), date=None, working_days=False):
    form = page.get_by_test_id("slot-form")
    form.locator("#title").fill(title)
    form.locator("#content_type").select_option(content_type)
    for d in weekdays:
        form.locator(f"input[name=weekday][value='{d}']").check()
    if date:
        form.locator("#date").fill(date)
    form.locator("#time").fill(time)
    if working_days:
        form.locator("input[name=working_days_only]").check()
    form.locator("#text").fill(text)
    form.locator("button[type=submit]").click()
    expect(page.get_by_test_id("saved")).to_be_visible()


def test_build_an_sop_week_in_the_console(page, log_in, screenshot):
    log_in("demo.ops")
    page.locator("nav.sidebar a[href='/sop']").click()
    expect(page.locator("main h1")).to_have_text("SOP日历")
    page.get_by_test_id("sop-sets").get_by_role("link", name="周").first.click()
    expect(page.get_by_test_id("set-name")).to_have_text("新手课堂")

    _add(page, title="一三五产品解读", content_type="product", time="09:30", weekdays=(0, 2, 4),
         text="本周稳健理财产品解读：R2中低风险，市场有风险，投资需谨慎。", working_days=True)
    _add(page, title="二四互动游戏", content_type="interaction", time="20:00", weekdays=(1, 3),
         text="互动时间：猜猜本周五沪深300收盘点位，答对有小礼品。")
    # A mistake is named on its field, nothing is saved.
    form = page.get_by_test_id("slot-form")
    form.locator("#title").fill("周五活动")
    form.locator("#time").fill("25:00")
    form.locator("#text").fill("周五活动：今晚8点理财知识直播。")
    form.locator("input[name=weekday][value='4']").check()
    form.locator("button[type=submit]").click()
    expect(page.locator("[data-field='time']")).to_be_visible()
    form = page.get_by_test_id("slot-form")
    form.locator("#time").fill("19:00")
    form.locator("#content_type").select_option("culture")
    form.locator("button[type=submit]").click()
    expect(page.get_by_test_id("saved")).to_be_visible()

    page.get_by_test_id("next").click()  # next week: every slot time still ahead
    calendar = page.get_by_test_id("calendar")
    entries = calendar.get_by_test_id("entry")
    expect(calendar).to_contain_text("一三五产品解读")
    expect(calendar).to_contain_text("二四互动游戏")
    expect(calendar).to_contain_text("周五活动")
    mine = entries.filter(has_text="一三五产品解读")
    expect(mine.first.get_by_test_id("state")).to_have_text("被合规拦截")  # not approved yet
    expect(mine.first).to_contain_text("待审批")
    screenshot("sop-week")

    page.get_by_test_id("month-view").click()
    expect(page.get_by_test_id("calendar")).to_have_attribute("data-view", "month")
    expect(page.get_by_test_id("calendar").get_by_test_id("entry").filter(has_text="二四互动游戏")).not_to_have_count(0)
    screenshot("sop-month")

    expect(page.get_by_test_id("slots").get_by_test_id("slot-row")).not_to_have_count(0)
    page.goto("/sop/tasks")
    expect(page.locator("main h1")).to_have_text("群主待办")
    # The demo's week is planned: each owner of 新手课堂 has their sends to confirm, the next one first.
    expect(page.get_by_test_id("task-row")).not_to_have_count(0)
    expect(page.get_by_test_id("tasks")).to_contain_text("入群须知")
    expect(page.get_by_test_id("tasks")).to_contain_text("张伟")
    screenshot("sop-tasks")
