"""词库回归测试 in a real browser: a chat-archive alert marked false positive joins the corp's labelled set
in one click; the compliance officer imports more labelled messages, drafts a dictionary edit, sees
which messages it would newly hold (one agreeing with its label, one not), drops the bad edit and
publishes; then the dictionary in force holds the new phrase (screenshots in test-artifacts)."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from playwright.sync_api import expect

from e2e.test_archive_browser import _import

pytestmark = pytest.mark.e2e

LABELLED = [
    {"id": "e2e-v1", "text": "这款理财是懒人神器，闭着眼睛买就行", "label": "violation", "expected": "review",
     "category": "superlative"},
    {"id": "e2e-o1", "text": "理财非存款，产品有风险，投资须谨慎", "label": "ok", "expected": "pass"},
    {"id": "e2e-o2", "text": "请问稳健理财和大额存单有什么区别？", "label": "ok", "expected": "pass",
     "speaker": "customer"},
    {"id": "e2e-o3", "text": "稳健理财也有风险，请先看风险等级", "label": "ok", "expected": "pass"},
]
ADVISOR = "e2e_wording"


def _record(sender: str, to: str, text: str) -> str:
    return json.dumps({"msgid": uuid.uuid4().hex, "action": "send", "from": sender, "tolist": [to], "roomid": "",
                       "msgtime": int(time.time() * 1000), "msgtype": "text", "text": {"content": text}},
                      ensure_ascii=False)


def test_draft_comparison_and_one_click_label(page, log_in, screenshot, live_server, tmp_path_factory):
    customer = "wm" + uuid.uuid4().hex[:16]
    got = _import(tmp_path_factory, live_server, [
        _record(ADVISOR, customer, "王先生，这款理财是最安全的选择，名额有限"),
    ])
    assert got["alerts"] >= 1

    log_in("demo.compliance")
    # One click from a closed alert: mark it a false positive, then add it to the labelled set.
    page.goto(live_server.url + f"/compliance/alerts?advisor={ADVISOR}")
    page.get_by_test_id("alert-row").first.get_by_test_id("alert-link").click()
    page.get_by_test_id("false-positive-form").locator("button[type=submit]").click()
    page.get_by_test_id("label-form").locator("button[type=submit]").click()
    expect(page.get_by_test_id("labelled-done")).to_be_visible()
    screenshot("wording-alert-labelled")

    page.locator("nav.sidebar a[href='/compliance/wording-tests']").click()
    expect(page.locator("main h1")).to_have_text("词库回归测试")
    rows = page.get_by_test_id("labelled-row")
    expect(rows.filter(has_text="可接受的消息").first).to_be_visible()

    # Import more labelled messages.
    path = tmp_path_factory.mktemp("labelled") / "set.jsonl"
    path.write_text("\n".join(json.dumps(x, ensure_ascii=False) for x in LABELLED), encoding="utf-8")
    page.get_by_test_id("import-form").locator("input[type=file]").set_input_files(str(path))
    page.get_by_test_id("import-form").locator("button[type=submit]").click()
    expect(page.get_by_test_id("notice")).to_contain_text("标注语料已导入")
    expect(page.get_by_test_id("no-changes")).to_be_visible()

    # A draft with two added phrases: one catches a labelled violation, the other holds an acceptable message.
    form = page.get_by_test_id("draft-form")
    for phrase in ("懒人神器", "稳健理财"):
        form.locator("#d-action").select_option("add")
        form.locator("#d-phrase").fill(phrase)
        form.locator("#d-category").select_option("superlative")
        form.locator("#d-severity").select_option("review")
        form.locator("#d-rule").fill("《广告法》第九条")
        form.locator("button[type=submit]").click()
        form = page.get_by_test_id("draft-form")
    changes = page.get_by_test_id("change")
    good = page.locator('[data-testid=change][data-ref="e2e-v1"]')
    expect(good).to_have_attribute("data-kind", "new_hit")
    expect(good).to_contain_text("是")
    bad = page.locator('[data-testid=change][data-kind=new_hit]').filter(has=page.locator(".disagree"))
    expect(bad.first).to_be_visible()
    # e2e-v1 (agrees) and e2e-o3 (does not); e2e-o2 is a customer's question, not the firm's claim.
    expect(changes).to_have_count(2)
    screenshot("wording-draft-comparison")

    # Drop the edit that would hold acceptable messages, publish the rest.
    page.get_by_test_id("draft-edits").locator("tr", has_text="稳健理财").locator("button").click()
    expect(page.locator('[data-testid=change][data-ref="e2e-v1"]')).to_be_visible()
    expect(page.locator(".disagree")).to_have_count(0)
    page.get_by_test_id("publish-form").locator("button").click()
    expect(page.get_by_test_id("notice")).to_contain_text("草稿已发布")
    expect(page.get_by_test_id("draft-empty")).to_be_visible()
    expect(page.get_by_test_id("no-changes")).to_be_visible()
    screenshot("wording-draft-published")
