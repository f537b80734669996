"""关键词回复 in a real browser: an operations manager writes a keyword rule; a reply that compliance
blocks is refused next to its field with the findings, nothing typed is lost; the rule then shows in
the list with its counts, in Chinese and in English."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e


def test_create_a_keyword_rule(page, log_in, screenshot):
    log_in("demo.ops")
    page.locator("nav.sidebar a[href='/acquisition/keywords']").click()
    expect(page.locator("main h1")).to_have_text("关键词回复")

    form = page.get_by_test_id("keyword-form")
    form.locator("#kw-name").fill("加群引导")
    form.locator("#kw-keyword").fill("加群")
    form.locator("#kw-text").fill("加入理财群，保本保息，稳赚不赔。")
    form.locator("input[name=advisors][value=zhangwei]").check()
    form.locator("input[name=enabled]").check()
    form.locator("button[type=submit]").click()
    expect(page.locator("p.field-error[data-field='reply_text']")).to_contain_text("保本")
    expect(page.locator("#kw-keyword")).to_have_value("加群")
    screenshot("keywords-refused")

    form = page.get_by_test_id("keyword-form")
    form.locator("#kw-text").fill("欢迎加入理财学习群，每天分享理财小知识。")
    form.locator("#kw-link-url").fill("https://h5.example.com/group")
    form.locator("#kw-link-title").fill("理财学习群")
    form.locator("#kw-priority").fill("5")
    form.locator("button[type=submit]").click()
    expect(page.get_by_test_id("saved")).to_be_visible()
    row = page.get_by_test_id("keyword-rule-row").filter(has_text="加群引导")
    expect(row).to_contain_text("包含")
    expect(row).to_contain_text("已开启")
    expect(row.get_by_test_id("rule-matched")).to_have_text("0")
    screenshot("keywords-list")

    page.goto("/acquisition/keywords?lang=en")
    expect(page.locator("main h1")).to_have_text("Keyword replies")
    screenshot("keywords-list-en")
    page.goto("/acquisition/keywords?lang=zh_CN")
