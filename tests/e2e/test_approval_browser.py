"""内容审核 in a real browser: demo.ops (operations, the maker) writes the corp's default welcome — its owner
picked from a list of the corp's objects by name, never typed — in a text that needs review and talks
about a fund, submits it; demo.compliance (the checker) sees the findings highlighted and the fund
disclosure appended, and approves it (screenshots in test-artifacts)."""

from __future__ import annotations

import uuid

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e


def test_maker_submits_and_checker_approves(page, log_in, screenshot):
    title = f"周末基金定投沙龙 {uuid.uuid4().hex[:6]}"
    log_in("demo.ops")
    page.locator("nav.sidebar a[href='/compliance/approvals']").click()
    expect(page.locator("main h1")).to_have_text("内容审核")

    form = page.get_by_test_id("content-form")
    form.locator("#kind").select_option("welcome")
    form.locator("#owner").select_option(label="Siyu 示范银行（演示）")  # the corp (its default welcome)
    form.locator("#title").fill(title)
    form.locator("#text").fill("本周六基金定投沙龙，带您了解高收益背后的风险，欢迎报名。")
    form.locator("button[type=submit]").click()

    expect(page.locator("main h1")).to_have_text(title)
    final = page.get_by_test_id("final-text")
    expect(final.locator("mark.finding")).to_have_text("高收益")
    expect(final).to_contain_text("基金有风险，投资须谨慎")
    expect(page.get_by_test_id("disclosure-types")).to_contain_text("基金")
    page.get_by_test_id("submit-form").locator("button[type=submit]").click()
    expect(page.get_by_test_id("item-status").locator("[data-status]")).to_have_attribute("data-status", "submitted")
    expect(page.get_by_test_id("decide-form")).to_have_count(0)
    item_url = page.url

    page.context.clear_cookies()
    log_in("demo.compliance")
    page.goto("/compliance/approvals")
    row = page.get_by_test_id("approval-row").filter(has_text=title)
    expect(row).to_contain_text("待审批")
    row.get_by_role("link", name=title).click()
    expect(page.get_by_test_id("final-text").locator("mark.finding.sev-review")).to_have_attribute(
        "data-category", "promise")
    page.get_by_test_id("decide-form").locator("#decide_comment").fill("已核对风险揭示，同意发送。")
    screenshot("compliance-approval-checker")
    page.get_by_test_id("approve").click()

    expect(page.get_by_test_id("item-status").locator("[data-status]")).to_have_attribute("data-status", "approved")
    history = page.get_by_test_id("history")
    expect(history.locator("li[data-action=approved]")).to_contain_text("已核对风险揭示，同意发送。")
    expect(history.locator("li[data-action=submitted]")).to_have_count(1)
    screenshot("compliance-approval-approved")
    assert page.url == item_url
