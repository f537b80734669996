"""线索 in a real browser: an operator uploads a lead file with 2 bad rows, watches it being read,
sees each bad row reported by row and column, skips them and sees the other leads imported; the
advisor then records a call outcome (screenshots in test-artifacts).

The e2e server runs no worker: this module starts one on its database for the import queue only."""

from __future__ import annotations

import random
import re
import subprocess
import sys

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def import_worker(live_server):
    proc = subprocess.Popen([sys.executable, "-m", "siyu.cli", "worker", "--queues", "imports"], env=live_server.env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _file() -> bytes:
    base = 13_600_000_000 + random.randrange(10_000_000)
    rows = [("郑小芳", str(base), "代发工资", "zhangwei"), ("钱多多", str(base + 1), "信用卡", "zhangwei"),
            ("孙二娘", "1234567", "房贷", "zhangwei"),  # row 4: not a mobile number
            ("周三", str(base + 2), "存量理财", "somebody"),  # row 5: no such advisor
            ("吴四", f"+86 {base + 3}", "", "张伟")]
    lines = ["姓名,手机号,客群,顾问"] + [",".join(r) for r in rows]
    return ("\n".join(lines) + "\n").encode("gb18030")


def test_importing_a_lead_list_with_errors(page, log_in, screenshot, import_worker):
    log_in("demo.ops")
    page.locator("nav.sidebar a[href='/acquisition/leads']").click()
    expect(page.locator("main h1")).to_have_text("线索")
    form = page.get_by_test_id("upload-form")
    form.locator("#name").fill("存量代发客户 第一批")
    form.locator("#script").fill("您好，我是您的专属理财顾问，想邀请您添加企业微信，方便为您服务。")
    form.locator("#file").set_input_files({"name": "代发客户.csv", "mimeType": "text/csv", "buffer": _file()})
    form.locator("button[type=submit]").click()

    # The worker reads the file; the page polls, then shows the preview.
    expect(page.get_by_test_id("list-status")).to_have_text("待确认导入", timeout=30_000)
    expect(page.get_by_test_id("bad-rows")).to_have_text("2")
    expect(page.get_by_test_id("good-rows")).to_have_text("3")
    bad = page.get_by_test_id("bad-rows-table")
    expect(bad.locator("tr[data-row='4'][data-column='phone']")).to_contain_text("不是中国大陆手机号")
    expect(bad.locator("tr[data-row='5'][data-column='advisor']")).to_contain_text("没有使用该企业微信账号")
    expect(page.get_by_test_id("preview-rows")).to_contain_text("郑**")
    expect(page.get_by_test_id("preview-rows")).not_to_contain_text("郑小芳")
    expect(page.get_by_test_id("import-all")).to_have_count(0)  # "import all" is not offered with bad rows
    screenshot("leads-preview-with-errors")

    page.get_by_test_id("skip-bad").click()
    expect(page.get_by_test_id("list-status")).to_have_text("已导入", timeout=30_000)
    expect(page.get_by_test_id("imported-rows")).to_have_text("3")
    expect(page.get_by_test_id("list-lead")).to_have_count(3)
    screenshot("leads-imported")

    page.context.clear_cookies()
    log_in("demo.advisor1")
    page.locator("nav.sidebar a[href='/acquisition/leads']").click()
    expect(page.locator("main h1")).to_have_text("我的外呼")
    expect(page.get_by_test_id("queue-lead")).to_have_count(3)
    page.get_by_test_id("queue-lead").first.locator("a").click()
    expect(page.locator("#script")).to_contain_text("专属理财顾问")
    page.get_by_test_id("reveal").click()
    expect(page.get_by_test_id("phone")).to_have_text(re.compile(r"^1\d{10}$"))
    page.locator("#outcome").select_option("no_answer")
    page.locator("#note").fill("无人接听")
    page.get_by_test_id("record-call").click()
    expect(page.get_by_test_id("saved")).to_be_visible()
    expect(page.get_by_test_id("lead-status")).to_have_text("未接通，待重呼")
    expect(page.get_by_test_id("calls")).to_contain_text("无人接听")
    screenshot("leads-call-recorded")
