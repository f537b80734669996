"""Content approval over REST (`/api/v1/compliance/content`, read only) and in the console
(`/compliance/approvals`): makers, checkers, auditors; findings highlighted; errors name the field."""

from __future__ import annotations

import re

from siyu.compliance import approval
from tenancy.factories import api_client, console_user, fast_argon2, make_corp, principal_of  # noqa: F401

BASE = "/api/v1/compliance/content"


def _approved_item(session, corp, text="欢迎添加顾问，祝您生活愉快。"):
    maker = console_user(session, corp, roles=("operations",))
    checker = console_user(session, corp, roles=("compliance",))
    item = approval.create_item(session, corp_id=corp.id, actor=principal_of(maker.staff), kind="welcome",
                                owner=("corp", corp.id), title="欢迎语", text=text)
    approval.submit(session, corp_id=corp.id, actor=principal_of(maker.staff), item_id=item.id)
    approval.approve(session, corp_id=corp.id, actor=principal_of(checker.staff), item_id=item.id)
    return item


def test_api_lists_items_with_state_and_text_in_force(session, corp):
    item = _approved_item(session, corp)
    client, _ = api_client(session, corp, scopes=["content:read"])
    listed = client.get(BASE, params={"kind": "welcome", "ref": f"corp:{corp.id}"})
    assert listed.status_code == 200, listed.text
    [row] = listed.json()["items"]
    assert row["status"] == "approved" and row["approved_version"] == 1
    assert row["approved_text"] == "欢迎添加顾问，祝您生活愉快。"
    detail = client.get(f"{BASE}/{item.id}").json()
    assert [v["status"] for v in detail["versions"]] == ["approved"] and detail["versions"][0]["verdict"] == "pass"
    assert client.get(BASE, params={"status": "submitted"}).json()["items"] == []
    assert client.get(BASE, params={"status": "nope"}).status_code == 422
    assert client.get(f"{BASE}/0").status_code == 422

    products_only, _ = api_client(session, corp, scopes=["products:read"])
    assert products_only.get(BASE).status_code == 403
    other, _ = api_client(session, make_corp(session))
    assert other.get(BASE).json()["items"] == []
    missing = other.get(f"{BASE}/{item.id}")
    assert missing.status_code == 404 and missing.json()["field"] == "item_id"


def test_console_maker_submits_and_checker_approves(session, corp):
    ops = console_user(session, corp, roles=("operations",))
    page = ops.get("/compliance/approvals")
    assert page.status_code == 200 and "内容审核" in page.text and 'data-testid="content-form"' in page.text
    assert f'value="corp:{corp.id}"' in page.text  # the owner is picked, never typed
    created = ops.post("/compliance/approvals", {"kind": "welcome", "owner": f"corp:{corp.id}", "title": "周末活动",
                                                 "text": "本周精选高收益机会，欢迎咨询。"})
    assert created.status_code == 303, created.text
    item_url = created.headers["location"]
    item_id = int(item_url.rsplit("/", 1)[1])
    item_page = ops.get(item_url)
    assert item_page.status_code == 200 and 'data-testid="submit-form"' in item_page.text
    assert re.search(r'<mark class="finding sev-review" data-category="promise"[^>]*>高收益</mark>', item_page.text)
    assert ops.post(f"{item_url}/submit", {"version": "1"}).status_code == 303
    assert ops.post(f"{item_url}/approve", {"version": "1"}).status_code == 403  # a maker is not a checker

    officer = console_user(session, corp, roles=("compliance",))
    queue = officer.get("/compliance/approvals")
    assert f'data-item="{item_id}"' in queue.text and "待审批" in queue.text
    decision_page = officer.get(item_url)
    assert 'data-testid="decide-form"' in decision_page.text and "<mark" in decision_page.text
    refused = officer.post(f"{item_url}/reject", {"version": "1", "comment": ""})
    assert refused.status_code == 422 and 'data-field="comment"' in refused.text
    assert officer.post(f"{item_url}/approve", {"version": "1", "comment": "同意"}).status_code == 303
    assert approval.approved_text(session, corp.id, "welcome", f"corp:{corp.id}").startswith("本周精选高收益机会")
    assert 'data-testid="item-owner"' in ops.get(item_url).text and corp.name in ops.get(item_url).text

    # content of an object is edited on the object's page (here the corp's WeCom page), not here
    assert ops.post(f"{item_url}/edit", {"title": "周末活动", "text": "本周活动，欢迎咨询。"}).status_code == 409
    # an edit from there writes version 2; version 1 stays in force
    approval.edit(session, corp_id=corp.id, actor=principal_of(ops.staff), item_id=item_id, text="本周活动，欢迎咨询。")
    after = ops.get(item_url)
    assert 'data-testid="in-force"' in after.text and 'data-testid="diff-2"' in after.text and "<del>" in after.text
    assert approval.approved_text(session, corp.id, "welcome", f"corp:{corp.id}").startswith("本周精选高收益机会")
    auditor = console_user(session, corp, roles=("auditor",))
    read = auditor.get(item_url)
    assert read.status_code == 200 and 'data-testid="edit-form"' not in read.text
    assert auditor.post(f"{item_url}/comment", {"comment": "x"}).status_code == 403
    assert console_user(session, corp, roles=("advisor",)).get("/compliance/approvals").status_code == 403


def test_console_blocked_text_refused_naming_text(session, corp):
    ops = console_user(session, corp, roles=("operations",))
    created = ops.post("/compliance/approvals", {"kind": "welcome", "owner": f"corp:{corp.id}", "title": "t",
                                                 "text": "保本保收益，稳赚不赔"})
    item_url = created.headers["location"]
    assert 'sev-block' in ops.get(item_url).text
    refused = ops.post(f"{item_url}/submit", {"version": "1"})
    assert refused.status_code == 422 and 'data-field="text"' in refused.text and "保本保收益" in refused.text
    assert "[promise, block" in refused.text  # the refusal names the rule, category, severity and span
    bad = ops.post("/compliance/approvals", {"kind": "welcome", "owner": "channel_code:9", "title": "t", "text": "x"})
    assert bad.status_code == 422 and 'data-field="owner"' in bad.text


def test_console_admin_cannot_approve_own(session, corp):
    admin = console_user(session, corp, roles=("administrator",))
    created = admin.post("/compliance/approvals", {"kind": "welcome", "owner": f"corp:{corp.id}", "title": "t",
                                                   "text": "欢迎参加"})
    item_url = created.headers["location"]
    admin.post(f"{item_url}/submit", {"version": "1"})
    page = admin.get(item_url)
    assert 'data-testid="own-version"' in page.text and 'data-testid="decide-form"' not in page.text
    refused = admin.post(f"{item_url}/approve", {"version": "1"})
    assert refused.status_code == 403


def test_api_names_owners_and_explains_what_the_review_finds(session, corp):
    from siyu.compliance import content
    from siyu.compliance.schemas import ContentKind

    assert set(ContentKind.__args__) == set(content.KINDS)  # the API's kinds are the gate's
    item = _approved_item(session, corp)
    client, _ = api_client(session, corp, scopes=["content:read"])
    [row] = client.get(BASE).json()["items"]
    assert (row["owner_type"], row["owner_id"], row["owner_name"]) == ("corp", corp.id, corp.name)
    assert client.get(f"{BASE}/{item.id}").json()["owner_name"] == corp.name
    checked = client.post(f"{BASE}/check", json={"text": "本产品保本保息"})
    assert checked.status_code == 200 and checked.json()["verdict"] == "block"
    finding = next(f for f in checked.json()["findings"] if f["match"] == "保本保息")
    assert finding["category"] == "promise" and finding["severity"] == "block" and finding["rule"]
    assert "本产品保本保息"[finding["start"]:finding["end"]] == "保本保息"
    assert client.post(f"{BASE}/check", json={"text": ""}).status_code == 422


def test_a_refusal_over_http_carries_its_findings(session, corp):
    """A ContentRefused answered as JSON names the field and lists each blocking finding."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from siyu.compliance.content import ContentRefused
    from siyu.errors import install_error_handlers

    app = FastAPI()
    install_error_handlers(app)

    @app.post("/api/v1/refuse")
    def refuse():
        raise ContentRefused([{"match": "保本", "category": "promise", "severity": "block", "start": 2, "end": 4,
                               "rule": "不得承诺保本"}], field="reply_text")

    answer = TestClient(app).post("/api/v1/refuse").json()
    assert answer["field"] == "reply_text" and "「保本」[promise, block, 3–4]: 不得承诺保本" in answer["detail"]
    assert answer["findings"] == [{"match": "保本", "category": "promise", "severity": "block", "start": 2, "end": 4,
                                   "rule": "不得承诺保本"}]
