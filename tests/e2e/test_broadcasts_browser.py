"""Broadcasts in a real browser: operations write a 1-on-1 broadcast to the demo's customers, the
plan preview counts recipients and every exclusion by reason (a bar chart), compliance approves the
text, and operations send it; the delivery policy's settings name a wrong value on its field
(screenshots in test-artifacts)."""

from __future__ import annotations

import re
import uuid

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e


def test_preview_a_broadcast_plan_and_send_it(page, log_in, screenshot):
    name = f"年末资产配置直播 {uuid.uuid4().hex[:6]}"
    log_in("demo.ops")
    page.locator("nav.sidebar a[href='/broadcasts']").click()
    expect(page.locator("main h1")).to_have_text("群发")

    form = page.get_by_test_id("broadcast-form")
    form.locator("#name").fill(name)
    form.locator("#holdout_percent").fill("60")  # too much: named on its field, nothing saved
    form.locator("#text").fill("本周四晚8点年末资产配置直播，欢迎预约。")
    form.locator("button[type=submit]").click()
    expect(page.locator("[data-field='holdout_percent']")).to_be_visible()
    form = page.get_by_test_id("broadcast-form")
    form.locator("#holdout_percent").fill("10")
    form.locator("button[type=submit]").click()

    expect(page.get_by_test_id("broadcast-name")).to_have_text(name)
    expect(page.get_by_test_id("content-state")).to_contain_text("尚未审批")
    plan = page.get_by_test_id("plan")
    expect(plan).to_contain_text("预计触达")
    recipients = int(page.get_by_test_id("recipients").inner_text())
    excluded = sum(int(x) for x in page.get_by_test_id("plan-bars").locator("[data-testid^='excluded-']")
                   .all_inner_texts())
    audience = int(re.search(r"受众 (\d+)", plan.inner_text()).group(1))
    assert recipients > 0 and recipients + excluded == audience, "the reasons add up to the audience"
    screenshot("broadcast-plan")
    url = page.url

    page.context.clear_cookies()
    log_in("demo.compliance")
    page.goto("/compliance/approvals")
    page.get_by_test_id("approval-row").filter(has_text=name).get_by_role("link", name=name).first.click()
    page.get_by_test_id("decide-form").locator("#decide_comment").fill("直播预告，无产品承诺，同意。")
    page.get_by_test_id("approve").click()

    page.context.clear_cookies()
    log_in("demo.ops")
    page.goto(url)
    expect(page.get_by_test_id("content-state")).to_contain_text("已审批")
    page.get_by_test_id("send").click()
    expect(page.get_by_test_id("broadcast-status")).to_have_text("已排期")
    screenshot("broadcast-scheduled")
    page.goto("/broadcasts")
    expect(page.get_by_test_id("broadcasts")).to_contain_text(name)


def test_delivery_policy_settings(page, log_in, screenshot):
    log_in("demo.ops")
    page.goto("/delivery")
    expect(page.locator("main h1")).to_have_text("触达策略")
    form = page.get_by_test_id("policy-form")
    form.locator("#quiet_start").fill("25:00")
    form.locator("button[type=submit]").click()
    expect(page.locator("[data-field='quiet_start']")).to_be_visible()
    form = page.get_by_test_id("policy-form")
    form.locator("#quiet_start").fill("21:30")
    form.locator("button[type=submit]").click()
    expect(page.get_by_test_id("policy-form").locator("#quiet_start")).to_have_value("21:30")
    screenshot("delivery-policy")
