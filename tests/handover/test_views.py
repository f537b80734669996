"""Console page 客户继承: operations staff create a handover and follow it per customer; compliance
and auditors read; other roles and other corps are refused; bad forms name the field and store
nothing; failed customers can be retried or escalated. Chinese by default, English available."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from siyu.customers import contacts
from siyu.handover import service
from siyu.tenancy import service as tenancy
from tenancy.factories import console_user, fast_argon2, make_corp  # noqa: F401

T0 = dt.datetime(2026, 3, 1, 2, 0, tzinfo=dt.UTC)


@pytest.fixture
def advisors(session, corp):
    for userid, name in (("zhangsan", "张三"), ("lisi", "李四"), ("wangwu", "王五")):
        tenancy.create_staff(session, corp_id=corp.id, login=f"{userid}.{corp.slug}", name=name, roles=["advisor"],
                             password=None, wecom_userid=userid)
    exts = [f"wmview{i:04d}" for i in range(3)]
    for ext in exts:
        contacts.record_add(session, corp_id=corp.id, external_userid=ext, wecom_userid="zhangsan", at=T0)
    return exts


def test_operations_creates_a_handover_and_sees_every_customer(session, corp, advisors):
    ops = console_user(session, corp, roles=("operations",))
    page = ops.get("/compliance/handovers")
    assert page.status_code == 200 and "客户继承" in page.text and 'data-testid="handover-form"' in page.text
    created = ops.post("/compliance/handovers", {"kind": "in_service", "handover_userid": "zhangsan",
                                                 "takeover_userids": ["lisi", "wangwu"], "customers": "all",
                                                 "groups": "selected", "chat_ids": "wrgroup0001",
                                                 "message": "您好，我的同事将继续为您服务。"},
                       follow_redirects=False)
    assert created.status_code == 303, created.text
    detail = ops.get(created.headers["location"])
    assert detail.status_code == 200
    assert detail.text.count('data-testid="customer-row"') == 3 and 'data-target="wrgroup0001"' in detail.text
    assert "待发起" in detail.text and "您好，我的同事将继续为您服务。" in detail.text
    listing = ops.get("/compliance/handovers")
    assert 'data-testid="handover-row"' in listing.text and 'role="progressbar"' in listing.text
    english = ops.get(created.headers["location"] + "?lang=en")
    assert "In-service transfer" in english.text and "Pending" in english.text


@pytest.mark.parametrize(("form", "field"), [
    ({"takeover_userids": ["zhangsan"]}, "takeover_userids"),
    ({"takeover_userids": []}, "takeover_userids"),
    ({"message": "保本保收益，稳赚不赔"}, "message"),
    ({"kind": "sideways"}, "kind"),
    ({"customers": "selected", "external_userids": ""}, "external_userids"),
    ({"customers": "selected", "external_userids": "wm ok\n<script>"}, "external_userids"),
    ({"groups": "maybe"}, "groups"),
])
def test_bad_forms_name_the_field_and_store_nothing(session, corp, advisors, form, field):
    ops = console_user(session, corp, roles=("administrator",))
    data = {"kind": "in_service", "handover_userid": "zhangsan", "takeover_userids": ["lisi"], "customers": "all",
            "groups": "none", **form}
    response = ops.post("/compliance/handovers", data)
    assert response.status_code == 422 and f'data-field="{field}"' in response.text
    assert service.list_handovers(session, corp_id=corp.id) == []


def test_roles_and_other_corps(session, corp, advisors):
    plan = service.create_handover(session, corp_id=corp.id, actor="test", kind="resigned",
                                   handover_userid="zhangsan", takeover_userids=["lisi"])
    for role in ("compliance", "auditor"):
        reader = console_user(session, corp, roles=(role,))
        assert reader.get(f"/compliance/handovers/{plan.id}").status_code == 200
        page = reader.get("/compliance/handovers")
        assert 'data-testid="handover-form"' not in page.text
        assert reader.post("/compliance/handovers", {"kind": "resigned"}).status_code == 403
    advisor = console_user(session, corp, roles=("advisor",))
    assert advisor.get("/compliance/handovers").status_code == 403
    other = console_user(session, make_corp(session), roles=("administrator",))
    assert other.get(f"/compliance/handovers/{plan.id}").status_code == 404
    item = service.list_items(session, handover=plan)[0]
    assert other.post(f"/compliance/handovers/{plan.id}/items/{item.id}/retry").status_code == 404


def test_retry_and_escalate_a_failed_customer(session, corp, advisors):
    plan = service.create_handover(session, corp_id=corp.id, actor="test", kind="resigned",
                                   handover_userid="zhangsan", takeover_userids=["lisi", "wangwu"])
    (first, second) = service.plan_batches(session, handover=plan)
    service.record_batch(session, handover=plan, batch=first, outcome_state="sent",
                         customer_errcodes={t: 0 for t in first.targets})
    service.record_batch(session, handover=plan, batch=second, outcome_state="sent",
                         customer_errcodes={t: 0 for t in second.targets})
    stuck = first.targets[0]
    service.transfer_failed(session, corp_id=corp.id, external_userid=stuck, takeover_userid=first.takeover_userid,
                            fail_reason="customer_limit_exceed")
    item = next(i for i in service.list_items(session, handover=plan) if i.target_id == stuck)
    ops = console_user(session, corp, roles=("operations",))
    waiting = next(i for i in service.list_items(session, handover=plan) if i.state == "waiting")
    pending = ops.post(f"/compliance/handovers/{plan.id}/items/{waiting.id}/retry")
    assert pending.status_code == 422 and 'data-field="item"' in pending.text
    assert ops.post(f"/compliance/handovers/{plan.id}/items/{item.id}/escalate",
                    follow_redirects=False).status_code == 303
    detail = ops.get(f"/compliance/handovers/{plan.id}")
    assert 'data-testid="escalation-alert"' in detail.text and 'data-escalated="yes"' in detail.text
    assert ops.post(f"/compliance/handovers/{plan.id}/items/{item.id}/retry",
                    follow_redirects=False).status_code == 303
    session.refresh(item)
    assert (item.state, item.escalated, item.takeover_userid) == ("pending", False, "wangwu")


def test_the_home_page_counts_escalations(session, corp, advisors):
    plan = service.create_handover(session, corp_id=corp.id, actor="test", kind="resigned",
                                   handover_userid="zhangsan", takeover_userids=["lisi"])
    (batch,) = service.plan_batches(session, handover=plan)
    service.record_batch(session, handover=plan, batch=batch, outcome_state="failed", errcode=40097)
    officer = console_user(session, corp, roles=("compliance",))
    page = officer.get("/")
    assert page.status_code == 200 and "已升级的继承事项" in page.text
    assert re.search(r'data-testid="tile-handovers_escalated">.*?data-testid="value">3<', page.text, re.S)
    assert service.escalation_count(session, corp_id=corp.id) == 3
    ops = console_user(session, corp, roles=("operations",))
    detail = ops.get(f"/compliance/handovers/{plan.id}")
    assert "移交顾问在企业微信中尚未离职" in detail.text  # the reason, translated
