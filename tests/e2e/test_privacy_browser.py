"""个人信息请求 in a real browser: a compliance officer registers an export request for a demo
customer, builds it and downloads the JSON once; the retention page shows the policies
(screenshots in test-artifacts)."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e

CUSTOMER = "wmdemo0001zhou"  # 周建国 in the demo


def test_compliance_registers_an_export_and_downloads_it_once(page, log_in, screenshot, tmp_path):
    log_in("demo.compliance")
    page.locator("nav.sidebar a[href='/compliance/privacy']").click()
    expect(page.locator("main h1")).to_have_text("个人信息请求")

    form = page.get_by_test_id("dsr-form")
    # The customer is chosen by part of the name, never by typing the WeCom id.
    form.locator("#picker-external_userid").fill("建国")
    option = form.locator(f"[data-testid=pick-option][data-value={CUSTOMER}]")
    expect(option).to_contain_text("周**")
    option.locator("input").check()
    expect(form.get_by_test_id("picker-chosen")).to_contain_text("周**")
    form.locator("#kind").select_option("export")
    form.locator("button[type=submit]").click()
    expect(page.locator("[data-field=verification_note]")).to_be_visible()  # the note is required

    form.locator("#verification_note").fill("客户本人到徐汇支行柜台，核验身份证原件")
    form.locator("button[type=submit]").click()
    expect(page.get_by_test_id("dsr-status")).to_have_text("已登记")
    page.get_by_test_id("carry-out-form").locator("button[type=submit]").click()
    expect(page.get_by_test_id("dsr-status")).to_have_text("已完成")
    expect(page.get_by_test_id("dsr-exported")).to_contain_text("customers")
    screenshot("privacy-export-ready")

    with page.expect_download() as info:
        page.get_by_test_id("download-form").locator("button[type=submit]").click()
    path = tmp_path / "export.json"
    info.value.save_as(path)
    bundle = json.loads(path.read_text(encoding="utf-8"))
    assert bundle["customer"] == CUSTOMER
    assert bundle["data"]["customers"]["profile"][0]["name"] == "周建国"
    assert "wmdemo0002wu" not in path.read_text(encoding="utf-8")

    page.reload()
    expect(page.get_by_test_id("dsr-downloaded")).to_be_visible()
    expect(page.get_by_test_id("download-form")).to_have_count(0)  # once only
    page.goto("/compliance/privacy")
    customer = page.get_by_test_id("dsr-row").first.get_by_test_id("dsr-customer")
    expect(customer).to_have_text("周**")
    expect(customer).to_have_attribute("title", CUSTOMER)
    expect(page.get_by_test_id("dsr-row").first).to_contain_text("赵磊")  # who registered it, by name
    expect(page.get_by_test_id("dsr-row").first).not_to_contain_text("demo.compliance")
    screenshot("privacy-requests")

    page.locator("nav.sidebar a[href='/compliance/retention']").click()
    expect(page.locator("main h1")).to_have_text("保存期限")
    expect(page.locator("[data-testid=policy-row][data-class=audit_log]")).to_contain_text("永久")
    screenshot("privacy-retention")
