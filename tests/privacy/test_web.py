"""Console pages 个人信息请求 and 保存期限, and the consent REST API: roles, tenancy and bad input."""

from __future__ import annotations

import json

from sqlalchemy import func, select

from siyu.customers import contacts
from siyu.db import utcnow
from siyu.privacy import service as privacy
from siyu.privacy.models import ConsentRecord, DataSubjectRequest
from tenancy.factories import api_client, console_user, fast_argon2, make_corp  # noqa: F401

WM = "wmCustomer0001"


def test_compliance_registers_carries_out_and_downloads_an_export_once(session, corp):
    c = contacts.ensure_customer(session, corp_id=corp.id, external_userid=WM, added_at=utcnow())
    c.name = "张三"
    officer = console_user(session, corp, roles=("compliance",))
    page = officer.get("/compliance/privacy")
    assert page.status_code == 200 and 'data-testid="dsr-form"' in page.text
    bad = officer.post("/compliance/privacy/requests", {"external_userid": WM, "kind": "export",
                                                         "verification_note": ""})
    assert bad.status_code == 422 and 'data-field="verification_note"' in bad.text
    bad = officer.post("/compliance/privacy/requests", {"external_userid": "no spaces please", "kind": "export",
                                                         "verification_note": "ok"})
    assert bad.status_code == 422 and 'data-field="external_userid"' in bad.text
    assert session.scalar(select(func.count()).select_from(DataSubjectRequest).where(
        DataSubjectRequest.corp_id == corp.id)) == 0
    made = officer.post("/compliance/privacy/requests", {"external_userid": WM, "kind": "export",
                                                          "verification_note": "柜台核验身份证"})
    assert made.status_code == 303
    url = made.headers["location"]
    assert officer.post(url + "/carry-out").status_code == 303
    detail = officer.get(url)
    assert 'data-testid="download-form"' in detail.text and 'data-testid="dsr-exported"' in detail.text
    got = officer.post(url + "/download", {"format": "json"})
    assert got.status_code == 200 and got.headers["content-disposition"].startswith("attachment")
    assert json.loads(got.content)["data"]["customers"]["profile"][0]["name"] == "张三"
    again = officer.post(url + "/download", {"format": "json"})
    assert again.status_code == 409 and 'data-field="request"' in again.text
    assert 'data-testid="dsr-downloaded"' in officer.get(url).text


def test_roles_and_other_corps(session, corp):
    req = privacy.create_request(session, corp_id=corp.id, actor="x", external_userid=WM, kind="delete",
                                 verification_note="秘密核验信息")
    url = f"/compliance/privacy/requests/{req.id}"
    admin = console_user(session, corp, roles=("administrator",))
    assert admin.get("/compliance/privacy").status_code == 200
    shown = admin.get(url)
    assert shown.status_code == 200 and "秘密核验信息" not in shown.text
    assert 'data-testid="carry-out-form"' not in shown.text
    assert admin.post(url + "/carry-out").status_code == 403
    assert admin.post("/compliance/retention/job", {"keep_days": "10", "legal_basis": "x"}).status_code == 403
    auditor = console_user(session, corp, roles=("auditor",))
    assert auditor.get("/compliance/retention").status_code == 200
    assert auditor.post("/compliance/privacy/requests", {"external_userid": WM, "kind": "export",
                                                          "verification_note": "x"}).status_code == 403
    advisor = console_user(session, corp, roles=("advisor",))
    assert advisor.get("/compliance/privacy").status_code == 403
    other = console_user(session, make_corp(session), roles=("compliance",))
    assert other.get(url).status_code == 404
    assert other.post(url + "/carry-out").status_code == 404
    assert other.post(url + "/download", {"format": "json"}).status_code == 404
    session.refresh(req)
    assert req.status == "requested"


def test_refuse_with_reason(session, corp):
    req = privacy.create_request(session, corp_id=corp.id, actor="x", external_userid=WM, kind="delete",
                                 verification_note="电话")
    officer = console_user(session, corp, roles=("compliance",))
    url = f"/compliance/privacy/requests/{req.id}"
    bad = officer.post(url + "/refuse", {"reason": ""})
    assert bad.status_code == 422 and 'data-field="reason"' in bad.text
    assert officer.post(url + "/refuse", {"reason": "无法核实身份"}).status_code == 303
    assert 'data-testid="dsr-reason"' in officer.get(url).text
    assert officer.post(url + "/carry-out").status_code == 409


def test_retention_page_edit_and_consent_lookup(session, corp):
    officer = console_user(session, corp, roles=("compliance",))
    page = officer.get("/compliance/retention")
    assert page.status_code == 200 and page.text.count('data-testid="policy-row"') == len(privacy.RECORD_CLASSES)
    assert 'data-testid="purge-runs"' in page.text
    bad = officer.post("/compliance/retention/archive_message", {"keep_days": "-3", "legal_basis": "x"})
    assert bad.status_code == 422 and 'data-field="keep_days"' in bad.text
    assert officer.post("/compliance/retention/audit_log", {"keep_days": "3", "legal_basis": "x"}).status_code == 422
    assert officer.post("/compliance/retention/unknown", {"keep_days": "3", "legal_basis": "x"}).status_code == 422
    ok = officer.post("/compliance/retention/archive_message", {"keep_days": "900", "legal_basis": "制度"})
    assert ok.status_code == 303
    assert {p.record_class: p.keep_days for p in privacy.policies(session, corp_id=corp.id)}["archive_message"] == 900
    privacy.record_consent(session, corp_id=corp.id, actor="x", external_userid=WM, purpose="marketing",
                           granted=False, source="h5")
    lookup = officer.get("/compliance/privacy", params={"customer": WM})
    assert 'data-testid="consent-state"' in lookup.text and 'class="withdrawn"' in lookup.text
    bad = officer.get("/compliance/privacy", params={"customer": "a b"})
    assert bad.status_code == 422 and 'data-field="customer"' in bad.text
    bad = officer.post("/compliance/retention/unknown", {"keep_days": "3", "legal_basis": "x"})
    assert 'data-field="record_class"' in bad.text


def test_consent_api(session, corp):
    client, _ = api_client(session, corp, scopes=("consent:write", "consent:read"))
    made = client.post("/api/v1/compliance/consents", json={"external_userid": WM, "purpose": "marketing",
                                                            "granted": False, "source": "h5"})
    assert made.status_code == 201 and made.json()["granted"] is False
    state = client.get(f"/api/v1/compliance/consents/{WM}")
    assert state.status_code == 200
    body = state.json()
    assert body["purposes"]["marketing"]["granted"] is False and body["purposes"]["profiling"] is None
    assert len(body["history"]) == 1
    for payload, field in (({"purpose": "spam"}, "purpose"), ({"granted": "maybe"}, "granted"),
                           ({"source": "advisor", "note": ""}, "note"),
                           ({"external_userid": "a b"}, "external_userid")):
        bad = client.post("/api/v1/compliance/consents",
                          json={"external_userid": WM, "purpose": "marketing", "granted": True, **payload})
        assert bad.status_code == 422, payload
        fields = {bad.json().get("field")} | {e.get("field") for e in bad.json().get("errors", [])}
        assert any(f and field in f for f in fields), (payload, bad.json())
    assert session.scalar(select(func.count()).select_from(ConsentRecord).where(ConsentRecord.corp_id == corp.id)) == 1
    reader, _ = api_client(session, corp, scopes=("consent:read",))
    assert reader.post("/api/v1/compliance/consents", json={"external_userid": WM, "purpose": "marketing",
                                                            "granted": True}).status_code == 403
    other, _ = api_client(session, make_corp(session), scopes=("consent:read",))
    assert other.get(f"/api/v1/compliance/consents/{WM}").json()["purposes"]["marketing"] is None
    none, _ = api_client(session, corp, scopes=("customers:read",))
    assert none.get(f"/api/v1/compliance/consents/{WM}").status_code == 403
