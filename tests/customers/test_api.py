"""REST API /api/v1/customers: search and filters, one customer with the risk level, the firm's
identity link; masked by default, unmasking audited; scopes; another corp sees nothing."""

from __future__ import annotations

import pytest

from customers.factories import make_customer
from siyu.compliance import suitability
from siyu.tenancy import audit
from tenancy.factories import api_client, make_corp, make_staff


@pytest.fixture
def corp_with_customers(session):
    corp = make_corp(session)
    zhang = make_staff(session, corp, name="张顾问", wecom_userid="zhang")
    make_staff(session, corp, name="李顾问", wecom_userid="li")
    customers = [
        make_customer(session, corp.id, userid="zhang", name="周杰", state="qr-branch-1", remark="周总",
                      tags=[("t1", "意向", "基金")]),
        make_customer(session, corp.id, userid="li", name="吴敏", state="ad-1", stage="invested"),
    ]
    return corp, zhang, customers


def test_list_is_masked_and_filtered(session, corp_with_customers):
    corp, zhang, (zhou, wu) = corp_with_customers
    client, _prefix = api_client(session, corp, scopes=["customers:read"])
    body = client.get("/api/v1/customers").json()
    assert {c["name"] for c in body["items"]} == {"周*", "吴*"} and body["next_after"] is None
    assert client.get("/api/v1/customers", params={"stage": "invested"}).json()["items"][0]["external_userid"] \
        == wu.external_userid
    by_staff = client.get("/api/v1/customers", params={"staff_id": zhang.id}).json()["items"]
    assert [c["external_userid"] for c in by_staff] == [zhou.external_userid]
    (item,) = client.get("/api/v1/customers", params={"q": "周杰"}).json()["items"]
    assert item["tags"] == ["基金"] and item["follows"][0]["state"] == "qr-branch-1"
    assert item["follows"][0]["staff_name"] == "张顾问"
    assert client.get("/api/v1/customers", params={"state": "qr-"}).json()["items"][0]["name"] == "周*"
    assert audit.list_entries(session, corp_id=corp.id, action="customer.unmasked") == []


def test_pages_follow_next_after(session, corp_with_customers):
    corp, _zhang, _customers = corp_with_customers
    client, _prefix = api_client(session, corp, scopes=["customers:read"])
    first = client.get("/api/v1/customers", params={"limit": 1}).json()
    second = client.get("/api/v1/customers", params={"limit": 1, "after": first["next_after"]}).json()
    assert second["next_after"] is None
    assert {first["items"][0]["external_userid"], second["items"][0]["external_userid"]} == {
        c.external_userid for c in _customers}
    bad = client.get("/api/v1/customers", params={"after": "nonsense"})
    assert bad.status_code == 422 and bad.json()["field"] == "after"


def test_unmask_is_audited(session, corp_with_customers):
    corp, _zhang, (zhou, _wu) = corp_with_customers
    client, prefix = api_client(session, corp, scopes=["customers:read", "pii:unmask"])
    items = client.get("/api/v1/customers", params={"unmask": "true"}).json()["items"]
    assert {c["name"] for c in items} == {"周杰", "吴敏"}
    one = client.get(f"/api/v1/customers/{zhou.external_userid}", params={"unmask": "true"}).json()
    assert one["name"] == "周杰" and one["follows"][0]["remark"] == "周总"
    entries = audit.list_entries(session, corp_id=corp.id, action="customer.unmasked")
    assert len(entries) == 2 and all(e.actor == f"api_key:{prefix}" for e in entries)
    assert all("周杰" not in str(e.detail) for e in entries)


def test_one_customer_with_risk_level(session, corp_with_customers):
    corp, _zhang, (zhou, _wu) = corp_with_customers
    client, _prefix = api_client(session, corp, scopes=["customers:read"])
    suitability.record_assessment(session, corp_id=corp.id, actor="test", customer_ref=zhou.external_userid,
                                  level="C2", source="firm_kyc_api")
    body = client.get(f"/api/v1/customers/{zhou.external_userid}").json()
    assert body["name"] == "周*" and body["risk"]["level"] == "C2" and body["risk"]["expired"] is False
    assert body["follows"][0]["remark"] == "周*" and body["stage"] == "new"
    assert client.get("/api/v1/customers/wmnobody").status_code == 404
    assert client.get("/api/v1/customers/not%20valid").status_code == 422


def test_link_needs_customers_write(session, corp_with_customers):
    corp, _zhang, (zhou, wu) = corp_with_customers
    reader, _p = api_client(session, corp, scopes=["customers:read"])
    refused = reader.post(f"/api/v1/customers/{zhou.external_userid}/link", json={"firm_customer_id": "A1"})
    assert refused.status_code == 403
    writer, _p = api_client(session, corp, scopes=["customers:read", "customers:write"])
    linked = writer.post(f"/api/v1/customers/{zhou.external_userid}/link", json={"firm_customer_id": "A1"})
    assert linked.status_code == 200 and linked.json()["firm_customer_id"] == "A1"
    clash = writer.post(f"/api/v1/customers/{wu.external_userid}/link", json={"firm_customer_id": "A1"})
    assert clash.status_code == 409 and clash.json()["field"] == "firm_customer_id"
    bad = writer.post(f"/api/v1/customers/{wu.external_userid}/link", json={"firm_customer_id": "a b"})
    assert bad.status_code == 422
    assert reader.get("/api/v1/customers", params={"q": "A1"}).json()["items"][0]["external_userid"] \
        == zhou.external_userid


def test_reading_needs_customers_read(session, corp_with_customers):
    corp, _zhang, _customers = corp_with_customers
    client, _p = api_client(session, corp, scopes=["jobs:read"])
    assert client.get("/api/v1/customers").status_code == 403


def test_another_corps_key_sees_nothing(session, corp_with_customers):
    _corp, _zhang, (zhou, _wu) = corp_with_customers
    other = make_corp(session)
    client, _p = api_client(session, other)
    assert client.get("/api/v1/customers").json()["items"] == []
    assert client.get("/api/v1/customers", params={"q": "周杰"}).json()["items"] == []
    assert client.get(f"/api/v1/customers/{zhou.external_userid}").status_code == 404
    linked = client.post(f"/api/v1/customers/{zhou.external_userid}/link", json={"firm_customer_id": "X1"})
    assert linked.status_code == 404
    session.refresh(zhou)
    assert zhou.firm_customer_id is None
