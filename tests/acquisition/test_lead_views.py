"""The lead pages: upload, progress and preview with every bad row, commit choices, the advisor's
queue and lead page, conversion, masked audited exports (leads and customers)."""

from __future__ import annotations

import contextlib

import pytest
from sqlalchemy import select

from siyu.acquisition import leads
from siyu.acquisition.models import Lead, LeadList
from siyu.jobs.models import Job
from siyu.tenancy.models import AuditEntry, Role
from tenancy.factories import console_user, fast_argon2, make_corp, make_staff  # noqa: F401

FILE = ("姓名,手机号,客群,顾问\n王芳,13812345678,代发,zhangsan\n李强,12345,代发,zhangsan\n"
        "赵敏,15000002222,信用卡,nobody\n孙丽,18612340000,房贷,zhangsan\n").encode("utf-8-sig")


@pytest.fixture
def corp(session):
    return make_corp(session, name="线索页面银行")


@pytest.fixture
def ops(session, corp):
    return console_user(session, corp, roles=(Role.OPERATIONS,))


@pytest.fixture
def advisor(session, corp):
    return console_user(session, corp, roles=(Role.ADVISOR,), name="张顾问", wecom_userid="zhangsan")


def _parse(session, corp, list_id):
    @contextlib.contextmanager
    def opener():
        with session.begin_nested():
            yield session
    leads.parse_list(opener, corp_id=corp.id, list_id=list_id)


def _upload(ops, data=FILE, name="存量客户", file_name="名单.csv"):
    return ops.client.post("/acquisition/leads/upload", data={"csrf_token": ops.csrf, "name": name, "script": "您好"},
                           files={"file": (file_name, data, "text/csv")}, headers={"accept": "text/html"},
                           follow_redirects=False)


def test_upload_preview_skip_and_import(session, corp, ops, advisor):
    r = _upload(ops)
    assert r.status_code == 303, r.text
    lead_list = session.scalar(select(LeadList).where(LeadList.corp_id == corp.id))
    assert session.scalar(select(Job).where(Job.name == "acquisition.parse_lead_list")) is not None
    waiting = ops.get(r.headers["location"])
    assert 'data-testid="progress"' in waiting.text and "hx-trigger" in waiting.text
    _parse(session, corp, lead_list.id)
    page = ops.get(r.headers["location"])
    assert page.status_code == 200
    assert 'data-row="3" data-column="phone"' in page.text and 'data-row="4" data-column="advisor"' in page.text
    assert "不是中国大陆手机号" in page.text and "13812345678" not in page.text and "138****5678" in page.text
    refused = ops.post(f"/acquisition/leads/lists/{lead_list.id}/commit", {"mode": "all"})
    assert refused.status_code == 422 and 'data-field="mode"' in refused.text
    assert session.scalars(select(Lead).where(Lead.corp_id == corp.id)).all() == []
    ok = ops.post(f"/acquisition/leads/lists/{lead_list.id}/commit", {"mode": "skip_bad"}, follow_redirects=False)
    assert ok.status_code == 303
    assert ops.client.get(f"/acquisition/leads/lists/{lead_list.id}/progress").status_code == 200
    leads.commit_list(session, corp_id=corp.id, list_id=lead_list.id)
    session.flush()
    done = ops.get(f"/acquisition/leads/lists/{lead_list.id}")
    assert done.text.count('data-testid="list-lead"') == 2 and "王*" in done.text
    errors = ops.get(f"/acquisition/leads/lists/{lead_list.id}/errors.csv")
    assert errors.status_code == 200

    # The advisor's queue, the lead page, a call and the phone shown on demand (audited).
    queue = advisor.get("/acquisition/leads/queue")
    assert queue.text.count('data-testid="queue-lead"') == 2 and "您好" not in queue.text
    assert advisor.get("/acquisition/leads", follow_redirects=False).status_code == 303
    lead = session.scalar(select(Lead).where(Lead.corp_id == corp.id, Lead.row_number == 2))
    page = advisor.get(f"/acquisition/leads/lead/{lead.id}")
    assert "您好" in page.text and lead.state in page.text and "138****5678" in page.text
    shown = advisor.post(f"/acquisition/leads/lead/{lead.id}/reveal")
    assert "13812345678" in shown.text
    assert session.scalar(select(AuditEntry).where(AuditEntry.action == "acquisition.lead_phone_unmasked")) is not None
    bad = advisor.post(f"/acquisition/leads/lead/{lead.id}/calls", {"outcome": "perhaps"})
    assert bad.status_code == 422 and 'data-field="outcome"' in bad.text
    r = advisor.post(f"/acquisition/leads/lead/{lead.id}/calls", {"outcome": "no_answer", "note": "关机"},
                     follow_redirects=False)
    assert r.status_code == 303 and lead.attempts == 1 and lead.status == "retry"
    assert "关机" in advisor.get(f"/acquisition/leads/lead/{lead.id}").text
    # Operators only: conversion and export; the advisor is refused.
    assert advisor.get("/acquisition/leads/conversion").status_code == 403
    conversion = ops.get("/acquisition/leads/conversion")
    assert conversion.status_code == 200 and "张顾问" in conversion.text and "data-chart" in conversion.text
    export = ops.get(f"/acquisition/leads/export/csv?list_id={lead_list.id}")
    text = export.content.decode("utf-8-sig")
    assert export.status_code == 200 and "138****5678" in text and "13812345678" not in text
    assert ops.get("/acquisition/leads/export/csv?status=bogus").status_code == 422


def test_another_corps_list_and_lead_are_not_found(session, corp, ops):
    other = make_corp(session, name="别家")
    theirs = console_user(session, other, roles=(Role.OPERATIONS,))
    _upload(ops)
    lead_list = session.scalar(select(LeadList).where(LeadList.corp_id == corp.id))
    assert theirs.get(f"/acquisition/leads/lists/{lead_list.id}").status_code == 404
    assert theirs.post(f"/acquisition/leads/lists/{lead_list.id}/commit", {"mode": "skip_bad"}).status_code == 404
    assert theirs.get(f"/acquisition/leads/export/csv?list_id={lead_list.id}").status_code == 404


def test_an_upload_without_a_file_or_name_is_refused(session, corp, ops):
    r = ops.post("/acquisition/leads/upload", {"name": "x"})
    assert r.status_code == 422 and 'data-field="file"' in r.text
    r = _upload(ops, name="")
    assert r.status_code == 422 and 'data-field="name"' in r.text
    assert session.scalars(select(LeadList).where(LeadList.corp_id == corp.id)).all() == []
