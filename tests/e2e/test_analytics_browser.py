"""数据分析 in a real browser on the seeded demo: the operations manager reads the funnel (add →
verified → joined → invested → reinvested), the cohort heat map, CAC per channel and campaign with
the channels' names, reinvestment by month and the welcome-variant experiment with its p-values;
changes the funnel's steps; downloads a chart as Excel; enters ad spend in yuan (a bad amount is
named). An advisor on a 390 px phone sees only the customers she added, without sideways scrolling.
Screenshots in test-artifacts (copied to docs/screenshots)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from openpyxl import load_workbook
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e

DOCS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
PHONE = {"width": 390, "height": 844}


def _keep(path: Path, name: str) -> None:
    DOCS.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, DOCS / name)


def test_operations_manager_reads_the_dashboards(page, log_in, screenshot, tmp_path):
    log_in("demo.ops")
    page.locator("nav.sidebar a[href='/analytics']").click()
    expect(page.locator("main h1")).to_have_text("数据分析")
    for chart in ("funnel", "cohorts", "cac_channel", "cac_campaign", "reinvestment", "variants", "personas",
                  "lifecycle", "groups", "advisors"):
        expect(page.get_by_test_id(f"chart-{chart}").locator("svg").first).to_be_visible()
    funnel = page.get_by_test_id("table-funnel")
    expect(funnel.locator("tbody tr")).to_have_count(5)
    expect(funnel).to_contain_text("添加为好友")
    expect(funnel).to_contain_text("已复投")
    cac = page.get_by_test_id("table-cac_channel")
    expect(cac).to_contain_text("信息流广告·新客礼")
    expect(cac).not_to_contain_text("demo-ad-newcomer")
    expect(page.get_by_test_id("significance-variants")).to_contain_text("p =")
    _keep(screenshot("analytics-dashboard"), "analytics-dashboard.png")

    # Fewer steps: without the group join.
    page.locator("input[name=steps][value='group.joined']").uncheck()
    page.get_by_test_id("filters").locator("button[type=submit]").click()
    expect(page.get_by_test_id("table-funnel").locator("tbody tr")).to_have_count(4)

    # A chart as Excel, with the channels' names.
    with page.expect_download() as info:
        page.get_by_test_id("export-cac_channel").click()
    path = tmp_path / "cac.xlsx"
    info.value.save_as(path)
    rows = list(load_workbook(path).active.iter_rows(values_only=True))
    assert rows[0][0] == "渠道" and any(r[0] == "信息流广告·新客礼" for r in rows[1:]), rows

    # Spend in yuan; a bad amount is named.
    page.get_by_test_id("spend-link").click()
    page.locator("#s-amount").fill("1.234")
    page.locator("#s-from").fill("2026-11-01")
    page.locator("#s-to").fill("2026-11-30")
    page.locator("#s-channel").select_option(label="公众号推文·定投课堂")
    page.get_by_test_id("spend-form").locator("button[type=submit]").click()
    expect(page.locator(".field-error[data-field=amount]")).to_be_visible()
    page.locator("#s-amount").fill("1,500.50")
    page.get_by_test_id("spend-form").locator("button[type=submit]").click()
    expect(page.get_by_test_id("notice")).to_be_visible()
    expect(page.get_by_test_id("spend-table")).to_contain_text("1500.50")
    screenshot("analytics-spend")


def test_an_advisor_on_a_phone_sees_her_own_customers(browser, live_server):
    context = browser.new_context(base_url=live_server.url, viewport=PHONE, locale="zh-CN",
                                  timezone_id="Asia/Shanghai", device_scale_factor=1, is_mobile=True, has_touch=True)
    context.set_default_timeout(15_000)
    page = context.new_page()
    try:
        page.goto("/login/" + live_server.demo["corp_slug"])
        page.fill("#login", "demo.advisor1")
        page.fill("#password", live_server.password)
        page.click("form[action='/login'] button[type=submit]")
        expect(page.get_by_test_id("who")).to_be_visible()
        assert page.goto("/analytics").status == 200
        page.wait_for_load_state("networkidle")
        expect(page.get_by_test_id("scoped-note")).to_be_visible()
        expect(page.get_by_test_id("chart-funnel").locator("svg").first).to_be_visible()
        advisors = page.get_by_test_id("table-advisors")
        expect(advisors).not_to_contain_text("刘洋")
        from e2e.conftest import SCREENSHOTS

        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / "analytics-advisor-phone.png"
        page.screenshot(path=str(path), full_page=True)
        _keep(path, "analytics-advisor-phone.png")
        top = SCREENSHOTS / "analytics-advisor-phone-top.png"
        page.screenshot(path=str(top))  # the first screen, as the advisor sees it
        _keep(top, "analytics-advisor-phone-top.png")
        assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0, \
            "/analytics scrolls sideways at 390 px"
    finally:
        context.close()
