"""社群 in a real browser: the group list in Chinese with search and filters, a group's page with
its members (customers masked), joins and leaves chart, positioning, tags and set edited; the group
set page; an advisor sees only the groups they own (screenshots in test-artifacts)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e


def test_the_group_list_and_a_group_page(page, log_in, screenshot):
    log_in("demo.ops")
    page.locator("nav.sidebar a[href='/groups']").click()
    expect(page.locator("main h1")).to_have_text("客户群")
    rows = page.get_by_test_id("group-row")
    expect(rows).to_have_count(6)
    expect(page.get_by_test_id("groups")).to_contain_text("新手课堂")
    screenshot("communities-list")

    filters = page.get_by_test_id("group-filters")
    filters.locator("#positioning").select_option("novice_class")
    filters.locator("button[type=submit]").click()
    expect(page.get_by_test_id("group-total")).to_contain_text("符合条件的群 2 个")
    filters = page.get_by_test_id("group-filters")
    filters.locator("#q").fill("第1期")
    filters.locator("button[type=submit]").click()
    expect(rows).to_have_count(1)
    page.get_by_test_id("group-link").first.click()

    expect(page.get_by_test_id("group-name")).to_have_text("新手课堂第1期")
    expect(page.get_by_test_id("owner")).to_have_text("张伟")
    expect(page.get_by_test_id("positioning")).to_have_text("新手课堂")
    members = page.get_by_test_id("members")
    expect(members).to_contain_text("周**")
    expect(members).not_to_contain_text("周建国")
    expect(members).not_to_contain_text("wmdemo")
    expect(page.get_by_test_id("recently-left")).to_contain_text("卫*")
    expect(page.get_by_test_id("chart-joins").locator("svg")).to_be_visible()  # ECharts drew the chart
    screenshot("communities-group")

    edit = page.get_by_test_id("group-edit")
    edit.locator("#positioning").select_option("benefit")
    edit.locator("#tags").fill("2026春, 上海")
    edit.locator("button[type=submit]").click()
    expect(page.get_by_test_id("saved")).to_be_visible()
    expect(page.get_by_test_id("positioning")).to_have_text("福利群")
    expect(page.get_by_test_id("tags")).to_contain_text("上海")

    page.get_by_test_id("group-set").locator("a").click()
    expect(page.get_by_test_id("set-name")).to_have_text("新手课堂")
    expect(page.get_by_test_id("set-group-row")).to_have_count(2)
    screenshot("communities-set")


def test_an_advisor_sees_only_their_groups(page, log_in):
    log_in("demo.advisor2")  # 刘洋 owns 新手课堂第2期 in the demo
    page.goto("/groups")
    expect(page.get_by_test_id("group-row")).to_have_count(1)
    expect(page.get_by_test_id("groups")).to_contain_text("新手课堂第2期")
    page.get_by_test_id("group-link").click()
    expect(page.get_by_test_id("members")).to_contain_text("郑*")
    expect(page.get_by_test_id("group-edit")).to_have_count(0)


def test_an_advisors_groups_fit_a_phone(browser, live_server):
    from e2e.conftest import SCREENSHOTS

    context = browser.new_context(base_url=live_server.url, viewport={"width": 390, "height": 844}, locale="zh-CN",
                                  timezone_id="Asia/Shanghai", is_mobile=True, has_touch=True)
    try:
        page = context.new_page()
        page.goto("/login/" + live_server.demo["corp_slug"])  # the corp's login address
        page.fill("#login", "demo.advisor1")
        page.fill("#password", live_server.password)
        page.click("form[action='/login'] button[type=submit]")
        expect(page.get_by_test_id("who")).to_be_visible()
        for name, path in (("groups", "/groups"), ("group", None)):
            if path is None:
                page.goto("/groups")
                page.get_by_test_id("group-link").first.click()
            else:
                page.goto(path)
            page.wait_for_load_state("networkidle")
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / f"phone-communities-{name}.png"), full_page=True)
            assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0, name
    finally:
        context.close()
