"""获客 in a real browser: an operations manager creates a multi-advisor channel code with a persona,
cost and caps (a bad amount is refused next to its field), opens it, and writes its welcome flow:
a text that compliance blocks is refused, a variant with a link is added and the flow switched on."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e


def test_create_a_channel_code_and_its_welcome_flow(page, log_in, screenshot):
    log_in("demo.ops")
    page.locator("nav.sidebar a[href='/acquisition']").click()
    expect(page.locator("main h1")).to_have_text("渠道活码")

    form = page.get_by_test_id("code-form")
    form.locator("#name").fill("手机银行首页入口")
    form.locator("#channel").select_option("mobile_banking")
    form.locator("#campaign").fill("新客理财节")
    form.locator("#persona_id").select_option(label="李老师 · 理财知识讲师")
    form.locator("#cost").fill("1500.555")
    choice = page.get_by_test_id("advisor-choice")
    choice.locator("input[name=advisor][value=zhangwei]").check()
    choice.locator("input[name=advisor][value=liuyang]").check()
    choice.locator("tr", has_text="张伟").locator("input[name=cap]").fill("30")
    form.locator("button[type=submit]").click()
    expect(page.locator("p.field-error[data-field='cost']")).to_be_visible()
    expect(page.locator("#name")).to_have_value("手机银行首页入口")  # nothing typed is lost

    page.get_by_test_id("code-form").locator("#cost").fill("1500.50")
    page.get_by_test_id("code-form").locator("button[type=submit]").click()
    expect(page.locator("main h1")).to_have_text("手机银行首页入口")
    expect(page.get_by_test_id("code-status")).to_have_text("企业微信创建中")  # no worker in this server
    expect(page.get_by_test_id("code-state")).to_have_text(re.compile(r"^ch[0-9a-z]{10}$"))
    expect(page.get_by_test_id("code-advisors")).to_contain_text("张伟")  # names; the WeCom id on hover
    expect(page.get_by_test_id("poster-waiting")).to_be_visible()  # the QR comes by itself once registered

    variant = page.get_by_test_id("variant-form")
    variant.locator("#text").fill("您好，本理财产品保本保息，稳赚不赔。")
    variant.locator("button[type=submit]").click()
    expect(page.locator("p.field-error[data-field='text']")).to_contain_text("保本")

    variant = page.get_by_test_id("variant-form")
    variant.locator("#text").fill("{客户称呼}您好，我是{顾问头衔}{顾问名}。新客礼包已为您准备好，点开下方链接领取。")
    variant.locator("#weight").fill("3")
    variant.locator("#link_url").fill("https://h5.example.com/gift")
    variant.locator("#link_title").fill("新客礼包")
    variant.locator("button[type=submit]").click()
    expect(page.get_by_test_id("saved")).to_be_visible()
    expect(page.get_by_test_id("variant-row")).to_have_count(1)
    expect(page.get_by_test_id("variant-row")).to_contain_text("链接")
    expect(page.get_by_test_id("welcome-off")).to_be_visible()  # saved, not switched on: said at the top

    flow = page.get_by_test_id("flow-form")
    flow.locator("#group_keyword").fill("1")
    flow.locator("#group_invitation").fill("回复 1 加入理财学习群")
    flow.get_by_test_id("flow-enabled").check()
    flow.locator("button[type=submit]").click()
    expect(page.get_by_test_id("saved")).to_be_visible()
    expect(page.get_by_test_id("flow-enabled")).to_be_checked()
    expect(page.get_by_test_id("welcome-off")).to_have_count(0)
    expect(page.locator("#group_invitation")).to_have_value("回复 1 加入理财学习群")
    screenshot("acquisition-code")

    page.locator("a", has_text="全部渠道活码").first.click()
    row = page.get_by_test_id("code-row").filter(has_text="手机银行首页入口")
    expect(row).to_contain_text("手机银行")
    expect(row).to_contain_text("李老师")
    expect(page.get_by_test_id("chart-channel-adds").locator("svg")).to_be_visible()
    screenshot("acquisition-codes")

    page.locator("a[href='/acquisition/personas']").first.click()
    expect(page.get_by_test_id("persona-row")).to_have_count(4)
    screenshot("acquisition-personas")
