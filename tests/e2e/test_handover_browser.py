"""客户继承 in a real browser: an operations manager plans an in-service handover of an advisor's
customers to two colleagues; a message that compliance blocks is refused next to its field; the
handover's page then shows every customer with its state, and the list its counts and progress."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e


def test_create_a_handover_and_see_its_states(page, log_in, screenshot):
    log_in("demo.ops")
    page.locator("nav.sidebar a[href='/compliance/handovers']").click()
    expect(page.locator("main h1")).to_have_text("客户继承")

    form = page.get_by_test_id("handover-form")
    form.locator("input[name=kind][value=in_service]").check()
    form.locator("#handover_userid").select_option("zhangwei")
    form.locator("input[name=takeover_userids][value=liuyang]").check()
    form.locator("input[name=takeover_userids][value=chenjing]").check()
    form.locator("#message").fill("您好，本理财产品保本保息，新顾问继续为您服务。")
    page.get_by_test_id("handover-submit").click()
    expect(page.locator("p.field-error[data-field='message']")).to_contain_text("保本")
    expect(page.locator("#message")).to_have_value("您好，本理财产品保本保息，新顾问继续为您服务。")
    screenshot("handover-refused-message")

    # Two of the advisor's customers, chosen in the picker (it lists only the handing advisor's).
    form.locator("input[name=customers][value=selected]").check()
    form.locator("#picker-external_userids").focus()
    options = form.get_by_test_id("picker-results").get_by_test_id("pick-option")
    expect(options.first).to_be_visible()
    chosen = [options.nth(0).get_attribute("data-value"), options.nth(1).get_attribute("data-value")]
    options.nth(0).locator("input").check()
    form.get_by_test_id("picker-results").get_by_test_id("pick-option").nth(0).locator("input").check()
    expect(form.get_by_test_id("picker-chosen").locator("input:checked")).to_have_count(2)
    page.locator("#message").fill("您好，我的同事将继续为您服务，有任何问题欢迎随时联系。")
    page.get_by_test_id("handover-submit").click()
    expect(page.get_by_test_id("handover-status")).to_have_text("处理中")
    rows = page.get_by_test_id("customer-row")
    expect(rows).to_have_count(2)
    assert {rows.nth(i).get_attribute("data-target") for i in range(2)} == set(chosen)
    states = {rows.nth(i).get_attribute("data-state") for i in range(rows.count())}
    assert states <= {"pending", "skipped"} and "pending" in states  # no worker runs in this server
    for i in range(2):  # names, with the WeCom ids on hover only
        assert "*" in rows.nth(i).locator("td").nth(0).inner_text()
        assert rows.nth(i).locator("td").nth(1).get_attribute("title") in {"liuyang", "chenjing"}
    screenshot("handover-detail")

    page.locator("a", has_text="← 客户继承").click()
    row = page.get_by_test_id("handover-row").first
    expect(row).to_contain_text("在职继承")
    expect(row.locator("[role=progressbar]")).to_be_visible()
    screenshot("handover-list")

    page.goto(page.url + "?lang=en")
    expect(page.locator("main h1")).to_have_text("Handover")
    expect(page.get_by_test_id("handover-row").first).to_contain_text("In-service transfer")
    screenshot("handover-list-en")
