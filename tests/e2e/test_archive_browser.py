"""会话存档告警 in a real browser: an export with an advisor promising 保本保息 is imported into the live
server's database with `siyu compliance archive-import`; the compliance officer opens the alert, sees
the phrase highlighted, assigns it to herself and resolves it (screenshots in test-artifacts)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e

PII_KEY = "ZTJlLXBpaS1rZXktMzItYnl0ZXMtbG9uZy1vayEhIQ"  # the live server's (tests/e2e/conftest.py)


def _import(tmp_path_factory, live_server, lines: list[str]) -> dict:
    """Run the import against the live server's database (found under the session's e2e temp folder)."""
    dbs = sorted(tmp_path_factory.getbasetemp().glob("e2e*/var/siyu.db"))
    assert dbs, "the live server's database was not found"
    var = dbs[-1].parent
    export = var.parent / f"export-{uuid.uuid4().hex[:6]}.jsonl"
    export.write_text("\n".join(lines) + "\n", encoding="utf-8")
    env = dict(os.environ, SIYU_DATA_DIR=str(var), SIYU_DATABASE_URL=f"sqlite:///{dbs[-1]}",
               SIYU_SECRET_KEY="e2e-secret-key-not-for-production", SIYU_PII_KEY=PII_KEY, SIYU_LOG_LEVEL="WARNING")
    proc = subprocess.run([sys.executable, "-m", "siyu.cli", "compliance", "archive-import", str(export),
                           "--corp", live_server.demo["corp_slug"]], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _record(sender: str, to: str, text: str) -> str:
    return json.dumps({"msgid": uuid.uuid4().hex, "action": "send", "from": sender, "tolist": [to], "roomid": "",
                       "msgtime": int(time.time() * 1000), "msgtype": "text", "text": {"content": text}},
                      ensure_ascii=False)


def test_compliance_officer_resolves_an_alert(page, log_in, screenshot, live_server, tmp_path_factory):
    customer = "wm" + uuid.uuid4().hex[:16]
    got = _import(tmp_path_factory, live_server, [
        _record("zhangwei", customer, "王先生您好，这款理财保本保息，年化6%，稳赚不赔，名额有限欲购从速"),
        _record(customer, "zhangwei", "真的保本吗？"),
        _record("liuyang", customer, "加我私人微信 liuyang_1988 细聊"),
    ])
    assert got["stored"] == 3 and got["alerts"] == 2

    log_in("demo.compliance")
    page.locator("nav.sidebar a[href='/compliance/alerts']").click()
    expect(page.locator("main h1")).to_have_text("会话存档告警")
    expect(page.get_by_test_id("chart-categories").locator("svg")).to_be_visible()
    page.locator("#f-advisor").select_option("zhangwei")
    page.get_by_test_id("alert-filters").locator("button[type=submit]").click()
    rows = page.get_by_test_id("alert-row")
    expect(rows.first).to_contain_text("保本保息")
    expect(rows.first).to_contain_text("拦截")
    screenshot("compliance-archive-alerts")

    rows.first.get_by_test_id("alert-link").click()
    evidence = page.get_by_test_id("evidence")
    expect(evidence.locator("mark.block").first).to_have_text("保本保息")
    expect(page.get_by_test_id("alert-advisor")).to_have_text("zhangwei")
    page.locator("#assignee").select_option(label="赵磊")
    page.get_by_test_id("assign-form").locator("button[type=submit]").click()
    expect(page.get_by_test_id("alert-assignee")).to_have_text("赵磊")

    resolve = page.get_by_test_id("resolve-form")
    resolve.locator("button[type=submit]").click()
    expect(page.locator("[data-field=note]")).to_be_visible()  # a note is required
    page.get_by_test_id("resolve-form").locator("#note").fill("已约谈客户经理，向客户更正说明产品不保本")
    page.get_by_test_id("resolve-form").locator("button[type=submit]").click()
    expect(page.get_by_test_id("alert-status")).to_have_text("已处理")
    expect(page.get_by_test_id("alert-note")).to_contain_text("不保本")
    screenshot("compliance-archive-alert-resolved")


def test_auditor_reads_without_the_text(page, log_in):
    log_in("demo.auditor")
    page.goto("/compliance/alerts")
    expect(page.locator("main h1")).to_have_text("会话存档告警")
    expect(page.get_by_test_id("alerts-table").locator("th", has_text="摘录")).to_have_count(0)
