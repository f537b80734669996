"""Segments in a real browser: operations build a segment in the rule builder (stage, then a tag picked
by name), watch the live count follow each change, see a negated condition flip it, save it and find
it in the list with its count (screenshot in test-artifacts)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e


def test_build_count_and_save_a_segment(page, log_in, screenshot):
    log_in("demo.ops")
    page.locator("nav.sidebar a[href='/audiences']").click()
    expect(page.locator("main h1")).to_have_text("客群")
    page.get_by_test_id("new-segment").click()
    expect(page.get_by_test_id("segment-title")).to_have_text("新建客群")

    # The first condition is the lifecycle stage: invested or reinvested (the demo has one of each).
    page.locator("#c0_stages").select_option(["invested", "reinvested"])
    count = page.get_by_test_id("live-count")
    expect(count).to_have_text("2")

    # Add a tag condition and pick the tag by its name.
    page.locator("#add_kind").select_option("tags")
    page.get_by_test_id("add-condition").click()
    expect(page.get_by_test_id("cond-1")).to_be_visible()
    page.locator("#c1_tag_ids").select_option(label="意向 · 基金")
    expect(count).to_have_text("1")
    expect(page.get_by_test_id("sample")).to_contain_text("周**")
    expect(page.get_by_test_id("sample")).not_to_contain_text("周建国")

    # NOT: invested customers without that tag.
    page.locator("input[name=c1_negate]").check()
    expect(count).to_have_text("1")
    expect(page.get_by_test_id("sample")).to_contain_text("吴**")
    page.locator("input[name=c1_negate]").uncheck()
    expect(page.get_by_test_id("sample")).to_contain_text("周**")

    page.locator("#name").fill("复投基金意向客户")
    page.locator("#description").fill("已投资或已复投、有基金意向的客户")
    screenshot("audiences-builder")
    page.get_by_test_id("save-segment").click()
    expect(page.get_by_test_id("saved")).to_be_visible()
    expect(page.get_by_test_id("segment-title")).to_have_text("复投基金意向客户")
    expect(page.locator("#c1_tag_ids option:checked")).to_have_text("意向 · 基金")
    expect(page.get_by_test_id("live-count")).to_have_text("1")

    page.locator("nav.sidebar a[href='/audiences']").click()
    row = page.get_by_test_id("segments").locator("tr", has_text="复投基金意向客户")
    expect(row.get_by_test_id("segment-count")).to_have_text("1")
    screenshot("audiences-list")
