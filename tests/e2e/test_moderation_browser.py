"""社群红线 and 社群健康度 in a real browser, on the demo: the benefit group's owner finds the outsider's ad
on the home page, sees the evidence (member masked) and records the removal; operations edit the
red-line list; the health overview lists the groups that went quiet and group lifetimes, and a group's
page shows its health with charts (screenshots in test-artifacts)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e


def test_the_owner_handles_the_red_line_alert(page, log_in, screenshot):
    log_in("demo.advisor3")  # 陈静 owns 稳健理财福利群, where the demo's outsider posted an ad
    tile = page.locator("a[href='/groups/moderation?status=open']")
    expect(tile).to_contain_text("社群红线告警")
    tile.click()
    expect(page.locator("main h1")).to_have_text("社群红线告警")
    row = page.get_by_test_id("hit-row").filter(has_text="13800138000")
    expect(row).to_have_count(1)
    expect(row.get_by_test_id("hit-member")).to_contain_text("推**")
    expect(row).not_to_contain_text("推广小刘")
    expect(row).not_to_contain_text("wmdemo")
    expect(row).to_contain_text("外部广告与引流")
    expect(row).to_contain_text("手机号")
    expect(row.get_by_test_id("hit-action")).to_have_text("将该成员移出群聊")
    screenshot("moderation-alerts")

    form = row.get_by_test_id("handle-form")
    form.locator("select[name=status]").select_option("removed")
    form.locator("input[name=note]").fill("已在企业微信中移出，并在群内提醒")
    form.locator("button[type=submit]").click()
    expect(page.get_by_test_id("handled")).to_be_visible()
    page.goto("/groups/moderation?status=removed")
    done = page.get_by_test_id("hit-row").filter(has_text="13800138000")
    expect(done.get_by_test_id("hit-status")).to_have_text("已移出")
    expect(done).to_contain_text("已在企业微信中移出")


def test_operations_edit_the_red_line_list(page, log_in, screenshot):
    log_in("demo.ops")
    page.goto("/groups/moderation/terms")
    expect(page.locator("main h1")).to_have_text("社群红线词库")
    expect(page.locator("[data-testid=term-row][data-phrase='加我微信']")).to_have_count(1)
    form = page.get_by_test_id("term-form")
    form.locator("#category").select_option("competitor")
    form.locator("#phrase").fill("鑫盛财富")
    form.locator("#note").fill("本地同业")
    form.locator("button[type=submit]").click()
    expect(page.get_by_test_id("saved")).to_be_visible()
    added = page.locator("[data-testid=term-row][data-phrase='鑫盛财富']")
    expect(added).to_contain_text("本地同业")
    form = page.get_by_test_id("term-form")
    form.locator("#phrase").fill("鑫 盛 财 富")
    form.locator("button[type=submit]").click()
    expect(page.locator("p.field-error[data-field=phrase]")).to_contain_text("词库中已有这个词语")
    test = page.get_by_test_id("term-test")
    test.locator("textarea").fill("兼职日结，加我微信 vx_abc12345，鑫盛财富的收益更高")
    test.locator("button[type=submit]").click()
    expect(page.get_by_test_id("test-severity")).to_have_attribute("data-severity", "block")
    expect(page.get_by_test_id("test-findings")).to_contain_text("微信号或 QQ 号")
    expect(page.get_by_test_id("test-findings")).to_contain_text("鑫盛财富")
    screenshot("moderation-terms")
    page.goto("/groups/moderation/terms")
    page.locator("[data-testid=term-row][data-phrase='鑫盛财富'] [data-testid=term-toggle]").click()
    expect(page.locator("[data-testid=term-row][data-phrase='鑫盛财富']")).to_have_attribute("data-active", "no")


def test_group_health_overview_and_a_group_page(page, log_in, screenshot):
    log_in("demo.ops")
    page.goto("/groups")
    expect(page.get_by_test_id("group-health").first).to_be_visible()
    page.get_by_test_id("health-link").click()
    expect(page.locator("main h1")).to_have_text("社群健康度")
    dying = page.get_by_test_id("dying-groups")
    expect(dying).to_contain_text("新手课堂第2期")
    expect(dying).to_contain_text("7 天内没有客户发言")
    expect(dying).not_to_contain_text("新手课堂第1期")
    expect(page.locator("[data-testid=lifetime-row][data-positioning=product]")).to_contain_text("4.5")
    screenshot("group-health-overview")

    dying.get_by_role("link", name="新手课堂第2期").click()
    expect(page.get_by_test_id("group-name")).to_have_text("新手课堂第2期")
    section = page.get_by_test_id("group-health")
    expect(section.get_by_test_id("health-dying")).to_have_text("濒临沉寂")
    expect(section).to_contain_text("7 天内没有客户发言")
    for chart in ("chart-group_members", "chart-group_messages", "chart-group_scores"):
        expect(page.get_by_test_id(chart).locator("svg")).to_be_visible()  # ECharts drew it
    screenshot("group-health-dying")

    page.goto("/groups")
    page.get_by_test_id("group-link").filter(has_text="稳健理财福利群").click()
    expect(page.get_by_test_id("group-hits")).to_contain_text("13800138000")
    expect(page.get_by_test_id("health-reply")).to_contain_text("分钟")
    screenshot("group-health-benefit")
