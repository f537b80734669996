"""The content gate in a real browser. An operations manager edits a channel code's welcome: the edit
is pending and the approved text is still the one in force (what goes out); the compliance officer
approves it as a different person and the new text is in force; an administrator who wrote a version
cannot approve it. And the compliance officer's wording dictionary: add an entry, test a text, import
a file with a bad row (refused naming row and column). Screenshots in test-artifacts/screenshots."""

from __future__ import annotations

import uuid

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e

OLD = "您好，我是您的专属顾问，欢迎关注新客理财课堂。"
NEW = "您好，新客理财课堂本周开讲，我是您的专属顾问。"


def _as(page, log_in, login: str) -> None:
    page.context.clear_cookies()
    log_in(login)


def _approve(page, owner_name: str, screenshot=None, shot: str = "") -> None:
    page.goto("/compliance/approvals")
    row = page.get_by_test_id("approval-row").filter(has_text=owner_name)
    expect(row.get_by_test_id("owner")).to_contain_text(owner_name)
    row.locator("a").first.click()
    if screenshot:
        screenshot(shot)
    page.get_by_test_id("approve").click()
    expect(page.get_by_test_id("item-status").locator("[data-status]")).to_have_attribute("data-status", "approved")


def test_an_edited_welcome_goes_out_only_once_another_person_approves_it(page, log_in, screenshot):
    name = f"门店海报 {uuid.uuid4().hex[:4]}"
    _as(page, log_in, "demo.ops")
    page.goto("/acquisition")
    form = page.get_by_test_id("code-form")
    form.locator("#name").fill(name)
    form.locator("#channel").select_option("branch_poster")
    page.get_by_test_id("advisor-choice").locator("input[name=advisor][value=zhangwei]").check()
    form.locator("button[type=submit]").click()
    expect(page.locator("main h1")).to_have_text(name)
    code_url = page.url.split("?")[0]
    variant = page.get_by_test_id("variant-form")
    variant.locator("#text").fill(OLD)
    variant.locator("button[type=submit]").click()
    row = page.get_by_test_id("variant-row")
    expect(row.get_by_test_id("variant-approval").locator("[data-state=none]")).to_be_visible()
    expect(row.get_by_test_id("variant-pending")).to_be_visible()

    _as(page, log_in, "demo.compliance")
    _approve(page, f"{name} · A")

    _as(page, log_in, "demo.ops")
    page.goto(code_url)
    row = page.get_by_test_id("variant-row")
    expect(row.get_by_test_id("variant-in-force")).to_have_text(OLD)
    row.locator("summary", has_text="编辑").click()
    row.get_by_test_id("variant-edit-form").locator("textarea").fill("您好，本产品保本保息。")
    row.get_by_test_id("variant-edit-form").locator("button[type=submit]").click()
    expect(page.locator("p.field-error[data-field='text']")).to_contain_text("保本")  # the rule hit, explained
    screenshot("gate-edit-refused")
    row = page.get_by_test_id("variant-row")
    row.get_by_test_id("variant-edit-form").locator("textarea").fill(NEW)
    row.get_by_test_id("variant-edit-form").locator("button[type=submit]").click()
    row = page.get_by_test_id("variant-row")
    expect(row.get_by_test_id("variant-in-force")).to_have_text(OLD)  # the old text still goes out
    expect(row.get_by_test_id("variant-pending")).to_be_visible()
    expect(row.get_by_test_id("variant-pending-text")).to_have_text(NEW)
    screenshot("gate-edit-pending")

    # An administrator edits it again: they wrote a version, so they may not approve it.
    _as(page, log_in, "demo.admin")
    page.goto(code_url)
    row = page.get_by_test_id("variant-row")
    row.locator("summary", has_text="编辑").click()
    row.get_by_test_id("variant-edit-form").locator("textarea").fill(NEW + "欢迎提问。")
    row.get_by_test_id("variant-edit-form").locator("button[type=submit]").click()
    page.get_by_test_id("variant-row").get_by_test_id("variant-pending").click()
    expect(page.get_by_test_id("own-version")).to_be_visible()
    expect(page.get_by_test_id("decide-form")).to_have_count(0)
    screenshot("gate-maker-cannot-approve")

    _as(page, log_in, "demo.compliance")
    _approve(page, f"{name} · A", screenshot, "gate-checker-approves")
    _as(page, log_in, "demo.ops")
    page.goto(code_url)
    row = page.get_by_test_id("variant-row")
    expect(row.get_by_test_id("variant-in-force")).to_have_text(NEW + "欢迎提问。")
    expect(row.get_by_test_id("variant-pending")).to_have_count(0)
    screenshot("gate-new-text-in-force")


def test_the_wording_dictionary_page(page, log_in, screenshot, tmp_path):
    phrase = f"稳稳赚{uuid.uuid4().hex[:3]}"
    _as(page, log_in, "demo.compliance")
    page.goto("/compliance/approvals")
    page.get_by_test_id("dictionary-link").click()
    expect(page.locator("main h1")).to_have_text("措辞词库")

    form = page.get_by_test_id("entry-form")
    form.locator("#e-category").select_option("firm")
    form.locator("#e-phrase").fill(phrase)
    form.locator("#e-severity").select_option("block")
    form.locator("#e-rule").fill("本行禁用：承诺收益")
    form.locator("button[type=submit]").click()
    expect(page.locator(f"tr[data-phrase='{phrase}']")).to_be_visible()

    test = page.get_by_test_id("test-form")
    test.locator("#test-text").fill(f"这款产品{phrase}，欢迎咨询")
    test.locator("button[type=submit]").click()
    expect(page.get_by_test_id("test-verdict")).to_have_attribute("data-verdict", "block")
    expect(page.get_by_test_id("test-text-marked").locator("mark.finding.sev-block")).to_have_text(phrase)
    expect(page.get_by_test_id("test-finding").filter(has_text=phrase)).to_contain_text("本行禁用：承诺收益")
    screenshot("dictionary-test-a-text")

    bad = tmp_path / "词库.csv"
    bad.write_text("类别,词语,严重程度,规则\nfirm,翻倍赚,block,本行禁用\nfirm,躺赚,sometimes,本行禁用\n",
                   encoding="utf-8")
    page.get_by_test_id("import-form").locator("#i-file").set_input_files(str(bad))
    page.get_by_test_id("import-form").locator("button[type=submit]").click()
    error = page.locator("p.field-error[data-field='file']")
    expect(error).to_contain_text("row 3")
    expect(error).to_contain_text("严重程度")
    expect(page.locator("tr[data-phrase='翻倍赚']")).to_have_count(0)  # nothing half-imported
    screenshot("dictionary-import-refused")
