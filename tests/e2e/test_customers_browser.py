"""客户 in a real browser: the list in Chinese with its lifecycle chart and filters, a customer's 360
page, a note added over HTMX, the name shown in clear on request; an advisor sees only their own
customers (screenshots in test-artifacts)."""

from __future__ import annotations

import re
import uuid

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e


def test_the_customer_list_and_a_360_page(page, log_in, screenshot):
    log_in("demo.ops")
    page.locator("nav.sidebar a[href='/customers']").click()
    expect(page.locator("main h1")).to_have_text("客户")
    rows = page.get_by_test_id("customer-row")
    expect(rows.first).to_be_visible()
    assert rows.count() >= 10
    expect(page.get_by_test_id("customer-total")).to_contain_text("位客户")
    expect(page.get_by_test_id("chart-stages").locator("svg")).to_be_visible()  # ECharts drew the chart
    expect(page.get_by_test_id("customers-table")).to_contain_text("周*")
    expect(page.get_by_test_id("customers-table")).not_to_contain_text("周建国")
    screenshot("customers-list")

    filters = page.get_by_test_id("customer-filters")
    filters.locator("#stage").select_option("reinvested")
    filters.locator("button[type=submit]").click()
    expect(page.get_by_test_id("customer-total")).to_contain_text("符合条件的客户 1 位")
    page.get_by_test_id("customer-row").first.locator("a.strong").click()

    expect(page.locator("main h1")).to_have_text("客户 360 视图")
    expect(page.get_by_test_id("customer-name")).to_have_text("周**")
    expect(page.get_by_test_id("customer-stage")).to_have_text("已复投")
    expect(page.get_by_test_id("follows")).to_contain_text("branch-xuhui-lobby")
    expect(page.get_by_test_id("follows")).to_contain_text("张伟")
    expect(page.get_by_test_id("risk-level")).to_have_text("C4")
    expect(page.get_by_test_id("tags")).to_contain_text("基金")
    expect(page.get_by_test_id("timeline")).to_contain_text("添加了顾问")

    text = f"电话沟通复投计划 {uuid.uuid4().hex[:6]}"
    page.locator("#note-text").fill(text)
    page.get_by_test_id("note-form").locator("button[type=submit]").click()
    expect(page.get_by_test_id("note-notice")).to_be_visible()
    expect(page.get_by_test_id("notes")).to_contain_text(text)
    expect(page.get_by_test_id("timeline")).to_contain_text("添加了跟进记录")

    page.get_by_test_id("unmask").click()
    expect(page.get_by_test_id("customer-name")).to_have_text("周建国")
    expect(page.get_by_test_id("unmasked-note")).to_be_visible()
    expect(page.get_by_test_id("follows").get_by_test_id("remark").first).to_have_text("周先生")
    screenshot("customers-360")


def test_an_advisor_sees_only_their_customers(page, log_in):
    log_in("demo.advisor2")  # 刘洋 follows 郑、冯、蒋 in the demo
    page.goto("/customers")
    expect(page.locator("main h1")).to_have_text("客户")
    names = page.get_by_test_id("customer-row").locator("a.strong").all_inner_texts()
    assert names and all(re.fullmatch(r"[郑冯蒋]\*+", n) for n in names), names


def test_a_tag_added_on_the_360_page(page, log_in, screenshot):
    log_in("demo.ops")
    page.goto("/customers?stage=reinvested")
    page.get_by_test_id("customer-row").first.locator("a.strong").click()
    expect(page.locator("main h1")).to_have_text("客户 360 视图")
    tags = page.get_by_test_id("tags")
    options = tags.locator("#tag-add option")
    assert options.count() > 1, "the tag library offers tags the customer does not carry"
    label = options.nth(1).inner_text().replace("（仅私域）", "").replace("(仅私域)", "").strip()
    tags.locator("#tag-add").select_option(index=1)
    tags.get_by_test_id("tag-add").click()
    expect(page.locator("main h1")).to_have_text("客户 360 视图")
    expect(page.get_by_test_id("tags").get_by_test_id("tag").filter(has_text=label.split(" · ")[-1])).to_be_visible()
    expect(page.get_by_test_id("timeline")).to_contain_text("标签变化")
    screenshot("customers-360-tag-added")
    page.goto("/customer-tags")
    expect(page.locator("main h1")).to_have_text("标签库")
    expect(page.get_by_test_id("tag-library")).to_be_visible()
    assert page.get_by_test_id("library-tag").count() >= 2
    screenshot("customers-tag-library")


def test_part_of_a_name_finds_the_customer(page, log_in, screenshot):
    log_in("demo.ops")
    page.goto("/customers")
    filters = page.get_by_test_id("customer-filters")
    expect(filters.locator("#q")).to_have_attribute("placeholder", "姓名或备注的一部分，或编号的开头")
    filters.locator("#q").fill("建国")  # 周建国's given name: the list shows only the masked name
    filters.locator("button[type=submit]").click()
    expect(page.get_by_test_id("customer-total")).to_contain_text("符合条件的客户 1 位")
    row = page.get_by_test_id("customer-row")
    expect(row).to_have_count(1)
    expect(row.locator("a.strong")).to_have_text("周**")
    expect(page.get_by_test_id("customers-table")).not_to_contain_text("wmdemo")  # no WeCom ids where people read
    screenshot("customers-search-part-of-name")
