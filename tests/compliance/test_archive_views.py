"""Console page 会话存档告警: compliance officers work alerts and see the evidence, administrators work
them without the text, auditors read, other roles are refused; another corp's alert is not found."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from siyu.compliance import archive
from siyu.compliance.models import ArchiveAlert
from tenancy.factories import console_user, fast_argon2, make_corp  # noqa: F401

MS = 1_767_225_600_000


def _alert(session, corp, text="这款理财保本保息，稳赚不赔", sender="zhangsan"):
    record = {"msgid": uuid.uuid4().hex, "from": sender, "tolist": ["wmCustomer0001"], "msgtime": MS,
              "msgtype": "text", "text": {"content": text}}
    archive.ingest_records(session, corp_id=corp.id, records=[archive.parse_record(record)], source="file")
    return session.scalars(select(ArchiveAlert).where(ArchiveAlert.corp_id == corp.id)
                           .order_by(ArchiveAlert.id.desc())).first()


def test_compliance_officer_resolves_an_alert(session, corp):
    alert = _alert(session, corp)
    archive.record_consent(session, corp_id=corp.id, external_userid="wmCustomer0001", staff_userid="zhangsan")
    officer = console_user(session, corp, roles=("compliance",), name="合规王")
    page = officer.get("/compliance/alerts")
    assert page.status_code == 200
    assert "会话存档告警" in page.text and f'id="alert-{alert.id}"' in page.text
    assert "保本保息" in page.text  # the excerpt
    assert 'data-testid="chart-categories"' in page.text
    detail = officer.get(f"/compliance/alerts/{alert.id}")
    assert '<mark class="block"' in detail.text and ">保本保息</mark>" in detail.text
    assert "wmCustomer0001" in detail.text and 'data-testid="alert-consent"' in detail.text
    assert officer.post(f"/compliance/alerts/{alert.id}/assign",
                        {"assignee": str(officer.staff.id)}).status_code == 303
    bad = officer.post(f"/compliance/alerts/{alert.id}/resolve", {"note": ""})
    assert bad.status_code == 422 and 'data-field="note"' in bad.text
    done = officer.post(f"/compliance/alerts/{alert.id}/resolve", {"note": "已约谈并纠正"})
    assert done.status_code == 303
    session.refresh(alert)
    assert alert.status == "resolved" and alert.assignee_staff_id == officer.staff.id
    again = officer.post(f"/compliance/alerts/{alert.id}/false-positive", {})
    assert again.status_code == 409
    filtered = officer.get("/compliance/alerts", params={"status": "open"})
    assert f'id="alert-{alert.id}"' not in filtered.text
    assert officer.get("/compliance/alerts", params={"since": "yesterday"}).status_code == 422


def test_false_positive_and_retiring_the_phrase(session, corp):
    alert = _alert(session, corp, text="这是第一次给您打电话，稳赚不赔")
    officer = console_user(session, corp, roles=("compliance",))
    assert officer.post(f"/compliance/alerts/{alert.id}/false-positive", {"note": "误报"}).status_code == 303
    page = officer.get("/compliance/alerts")
    assert 'data-testid="fp-row"' in page.text and "稳赚不赔" in page.text
    assert officer.post("/compliance/alerts/phrases/retire", {"phrase": "稳赚不赔"}).status_code == 303
    assert officer.post("/compliance/alerts/phrases/retire", {"phrase": "稳赚不赔"}).status_code == 409
    assert officer.post("/compliance/alerts/phrases/retire", {"phrase": "没有"}).status_code == 404


def test_roles(session, corp):
    alert = _alert(session, corp)
    admin = console_user(session, corp, roles=("administrator",))
    detail = admin.get(f"/compliance/alerts/{alert.id}")
    assert detail.status_code == 200 and 'data-testid="evidence-hidden"' in detail.text
    assert "保本保息" not in admin.get("/compliance/alerts").text.split('data-testid="alerts-table"')[1] \
        .split("</table>")[0]
    auditor = console_user(session, corp, roles=("auditor",))
    assert auditor.get("/compliance/alerts").status_code == 200
    assert 'data-testid="resolve-form"' not in auditor.get(f"/compliance/alerts/{alert.id}").text
    assert auditor.post(f"/compliance/alerts/{alert.id}/resolve", {"note": "x"}).status_code == 403
    advisor = console_user(session, corp, roles=("advisor",))
    assert advisor.get("/compliance/alerts").status_code == 403
    other = console_user(session, make_corp(session), roles=("compliance",))
    assert other.get(f"/compliance/alerts/{alert.id}").status_code == 404
    assert other.post(f"/compliance/alerts/{alert.id}/resolve", {"note": "x"}).status_code == 404
