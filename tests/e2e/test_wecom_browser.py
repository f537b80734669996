"""企业微信接入 in a real browser: an administrator connects the corp (secret, token, key), sees the
callback URL to give WeCom, and sets the default welcome, which compliance review checks."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e


def test_connect_wecom_and_set_the_default_welcome(page, log_in, screenshot):
    log_in("demo.admin")
    page.locator("nav.sidebar a[href='/wecom']").click()
    expect(page.locator("main h1")).to_have_text("企业微信接入")
    expect(page.get_by_test_id("callback-url")).to_have_value(page.url.split("/wecom")[0] + "/wecom/callback/demo")

    form = page.get_by_test_id("wecom-connection-form")
    # A key of the wrong length is refused next to its field; nothing is saved.
    form.locator("#secret").fill("customer-contact-secret-e2e")
    form.locator("#token").fill("siyuE2eToken")
    form.locator("#aes_key").fill("too-short")
    form.locator("button[type=submit]").click()
    expect(page.locator("p.field-error[data-field='aes_key']")).to_contain_text("43")
    expect(page.get_by_test_id("wecom-status")).to_have_text("未接入")

    suggested = page.locator("p.help .mono").first.inner_text()
    form = page.get_by_test_id("wecom-connection-form")
    form.locator("#secret").fill("customer-contact-secret-e2e")
    form.locator("#token").fill("siyuE2eToken")
    form.locator("#aes_key").fill(suggested)
    form.locator("button[type=submit]").click()
    expect(page.get_by_test_id("saved")).to_be_visible()
    expect(page.get_by_test_id("wecom-status")).to_have_text("已接入")
    expect(page.locator("#secret")).to_have_value("")  # never shown again

    welcome = page.get_by_test_id("wecom-welcome-form")
    welcome.locator("#welcome_text").fill("欢迎！本理财产品保本保息，稳赚不赔。")
    welcome.locator("input[name=welcome_enabled]").check()
    welcome.locator("button[type=submit]").click()
    expect(page.locator("p.field-error[data-field='welcome_text']")).to_contain_text("合规审查不通过")

    welcome = page.get_by_test_id("wecom-welcome-form")
    welcome.locator("#welcome_text").fill("您好，我是您的专属顾问，市场有风险，投资需谨慎。有问题随时找我。")
    welcome.locator("input[name=welcome_enabled]").check()
    welcome.locator("button[type=submit]").click()
    expect(page.get_by_test_id("saved")).to_be_visible()
    expect(page.locator("#welcome_text")).to_have_value("您好，我是您的专属顾问，市场有风险，投资需谨慎。有问题随时找我。")
    screenshot("wecom-connection")


def test_only_administrators_see_the_connection(page, log_in):
    log_in("demo.advisor1")
    expect(page.locator("nav.sidebar a[href='/wecom']")).to_have_count(0)
    response = page.goto("/wecom")
    assert response is not None and response.status == 403
