"""REST API /api/v1/compliance and the console page 产品与适当性: scoped to the caller's corp,
bad input answered with 422 naming the field."""

from __future__ import annotations

import pytest

from siyu.compliance import suitability
from tenancy.factories import api_client, console_user, fast_argon2, make_corp  # noqa: F401

BASE = "/api/v1/compliance"


@pytest.fixture
def api(session, corp):
    client, _ = api_client(session, corp)
    return client


def _product(client, code="F3", level="R3", kind="fund", name="混合基金"):
    return client.post(f"{BASE}/products", json={"code": code, "name": name, "product_type": kind, "risk_level": level})


def test_products_crud(api):
    created = _product(api)
    assert created.status_code == 201, created.text
    assert created.json()["code"] == "F3" and created.json()["is_active"] is True
    assert _product(api).status_code == 409
    assert api.get(f"{BASE}/products/F3").json()["risk_level"] == "R3"
    edited = api.patch(f"{BASE}/products/F3", json={"risk_level": "R4", "name": "混合基金B"})
    assert edited.status_code == 200 and edited.json()["risk_level"] == "R4"
    assert api.delete(f"{BASE}/products/F3").json()["is_active"] is False
    assert [p["code"] for p in api.get(f"{BASE}/products").json()["items"]] == ["F3"]
    assert api.get(f"{BASE}/products", params={"active_only": True}).json()["items"] == []
    missing = api.get(f"{BASE}/products/NOPE")
    assert missing.status_code == 404 and missing.json()["field"] == "product"


def test_kyc_push_and_eligibility(api):
    _product(api)
    pushed = api.post(f"{BASE}/risk-assessments", json={"customer_ref": "wm-1", "level": "C2",
                                                         "assessed_at": "2026-01-05T10:00:00+08:00"})
    assert pushed.status_code == 201, pushed.text
    body = pushed.json()
    assert body["source"] == "firm_kyc_api" and body["expires_at"].startswith("2027-01-05T02:00:00")
    decision = api.get(f"{BASE}/eligibility", params={"customer_ref": "wm-1", "product_code": "F3"}).json()
    assert decision["eligible"] is False and decision["reason_code"] in ("level_below", "assessment_expired")
    assert decision["customer_level"] == "C2" and decision["product_level"] == "R3" and "R3" in decision["reason"]
    api.post(f"{BASE}/risk-assessments", json={"customer_ref": "wm-1", "level": "C4", "source": "questionnaire"})
    decision = api.get(f"{BASE}/eligibility", params={"customer_ref": "wm-1", "product_code": "F3"}).json()
    assert decision["eligible"] is True and decision["customer_ref"] == "wm-1"
    history = api.get(f"{BASE}/risk-assessments", params={"customer_ref": "wm-1"}).json()["items"]
    assert [h["level"] for h in history] == ["C4", "C2"]


def test_another_corps_data_is_not_there(session, api):
    _product(api, code="MINE")
    api.post(f"{BASE}/risk-assessments", json={"customer_ref": "wm-9", "level": "C5"})
    other, _ = api_client(session, make_corp(session))
    assert other.get(f"{BASE}/products").json()["items"] == []
    assert other.get(f"{BASE}/products/MINE").status_code == 404
    assert other.patch(f"{BASE}/products/MINE", json={"risk_level": "R1"}).status_code == 404
    assert other.delete(f"{BASE}/products/MINE").status_code == 404
    assert other.get(f"{BASE}/risk-assessments", params={"customer_ref": "wm-9"}).json()["items"] == []
    assert other.get(f"{BASE}/eligibility", params={"customer_ref": "wm-9", "product_code": "MINE"}).status_code == 404
    _product(other, code="MINE", level="R5")  # the same code in another corp is another product
    assert api.get(f"{BASE}/products/MINE").json()["risk_level"] == "R3"
    other_decision = other.get(f"{BASE}/eligibility", params={"customer_ref": "wm-9", "product_code": "MINE"}).json()
    assert other_decision["reason_code"] == "level_unknown"  # the first corp's C5 is not the second's


@pytest.mark.parametrize(("method", "path", "kwargs", "field"), [
    ("post", "/products", {"json": {"code": "F1", "name": "n", "product_type": "fund", "risk_level": "R9"}},
     "risk_level"),
    ("post", "/products", {"json": {"code": "a b", "name": "n", "product_type": "fund", "risk_level": "R1"}}, "code"),
    ("post", "/products", {"json": {"code": "F1", "name": "n", "product_type": "stocks", "risk_level": "R1"}},
     "product_type"),
    ("post", "/risk-assessments", {"json": {"customer_ref": "wm", "level": "C7"}}, "level"),
    ("post", "/risk-assessments", {"json": {"customer_ref": "wm", "level": "C1", "assessed_at": "2026-01-01T00:00:00"}},
     "assessed_at"),
    ("post", "/risk-assessments", {"json": {"customer_ref": "wm", "level": "C1",
                                            "assessed_at": "2099-01-01T00:00:00Z"}}, "assessed_at"),
    ("get", "/eligibility", {"params": {"customer_ref": "wm", "product_code": "a b"}}, "product_code"),
    ("get", "/eligibility", {"params": {"product_code": "F1"}}, "customer_ref"),
    ("put", "/disclosures/fund", {"json": {"text": "保本保收益"}}, "text"),
])
def test_bad_input_is_422_naming_the_field(api, method, path, kwargs, field):
    response = getattr(api, method)(BASE + path, **kwargs)
    assert response.status_code == 422, response.text
    body = response.json()
    named = {body.get("field")} | {e["field"] for e in body.get("errors", [])}
    assert field in named, body


def test_scopes(session, corp):
    reader, _ = api_client(session, corp, scopes=["products:read"])
    assert reader.get(f"{BASE}/products").status_code == 200
    assert _product(reader).status_code == 403
    assert reader.post(f"{BASE}/risk-assessments", json={"customer_ref": "x", "level": "C1"}).status_code == 403
    assert reader.get(f"{BASE}/eligibility", params={"customer_ref": "x", "product_code": "F"}).status_code == 403
    kyc, _ = api_client(session, corp, scopes=["kyc:write"])
    assert kyc.post(f"{BASE}/risk-assessments", json={"customer_ref": "x", "level": "C1"}).status_code == 201


def test_disclosures_api(api):
    items = api.get(f"{BASE}/disclosures").json()["items"]
    assert [i["product_type"] for i in items] == list(suitability.PRODUCT_TYPES) and all(i["is_default"] for i in items)
    own = api.put(f"{BASE}/disclosures/credit", json={"text": "贷款额度、利率以审批为准，请理性借贷。"})
    assert own.status_code == 200
    attached = api.post(f"{BASE}/disclosures/attach", json={"text": "信用贷最高 30 万"}).json()
    assert attached["appended"] == ["credit"] and attached["text"].endswith("贷款额度、利率以审批为准，请理性借贷。")
    assert api.delete(f"{BASE}/disclosures/credit").status_code == 204


# --- console -------------------------------------------------------------------------------------------


def test_console_add_product_record_and_check(session, corp):
    officer = console_user(session, corp, roles=("compliance",))
    page = officer.get("/compliance/products")
    assert page.status_code == 200 and "产品与适当性" in page.text and "风险揭示" in page.text
    added = officer.post("/compliance/products", {"code": "WM-9", "name": "稳享", "product_type": "wealth_management",
                                                  "risk_level": "R3"})
    assert added.status_code == 303
    bad = officer.post("/compliance/products", {"code": "WM-8", "name": "稳享", "product_type": "wealth_management",
                                                "risk_level": "R7"})
    assert bad.status_code == 422 and 'data-field="risk_level"' in bad.text and "产品风险等级须为" in bad.text
    recorded = officer.post("/compliance/risk-assessments", {"customer_ref": "wm-c", "level": "C2", "source": "manual",
                                                             "valid_months": "12"})
    assert recorded.status_code == 200 and "风险测评已录入" in recorded.text
    check = officer.get("/compliance/suitability/check", params={"customer_ref": "wm-c", "product_code": "WM-9"},
                        headers={"hx-request": "true", "accept": "text/html"})
    assert check.status_code == 200 and 'data-eligible="false"' in check.text and "C2" in check.text
    en = officer.get("/compliance/suitability/check",
                     params={"customer_ref": "wm-c", "product_code": "WM-9", "lang": "en"})
    assert "below the product" in en.text


def test_console_roles(session, corp):
    ops = console_user(session, corp, roles=("operations",))
    page = ops.get("/compliance/products")
    assert page.status_code == 200 and 'data-testid="product-form"' not in page.text
    refused = ops.post("/compliance/products", {"code": "X1", "name": "n", "product_type": "fund", "risk_level": "R1"})
    assert refused.status_code == 403
    advisor = console_user(session, corp, roles=("advisor",))
    assert advisor.get("/compliance/products").status_code == 403
