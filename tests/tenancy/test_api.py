"""REST API /api/v1: the key's identity, staff and departments, always within the key's corp."""

from __future__ import annotations

import pytest

from siyu.tenancy import service
from tenancy.factories import api_client, make_client, make_corp, make_staff, principal_of


@pytest.fixture
def corp(session):
    return make_corp(session, name="甲银行")


@pytest.fixture
def api(session, corp):
    client, _prefix = api_client(session, corp)
    return client


def test_me_names_the_corp_and_scopes(session, corp):
    client, prefix = api_client(session, corp, scopes=["customers:read", "events:read"])
    body = client.get("/api/v1/me").json()
    assert body["corp"] == {"id": corp.id, "slug": corp.slug, "name": "甲银行"}
    assert body["scopes"] == ["customers:read", "events:read"] and body["api_key_prefix"] == prefix


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer sk_nope_nope", "Basic abc",
                                    "Bearer sk_\u00e9_x".encode("latin-1")])
def test_a_missing_or_wrong_key_is_401(session, header):
    client = make_client(session)
    headers = {"Authorization": header} if header else {}
    response = client.get("/api/v1/me", headers=headers)
    assert response.status_code == 401 and "API key" in response.json()["detail"]


def test_a_revoked_key_is_401(session, corp):
    token, key = service.create_api_key(session, corp_id=corp.id, name="k", scopes=["*"], actor="system")
    client = make_client(session)
    client.headers["Authorization"] = f"Bearer {token}"
    assert client.get("/api/v1/me").status_code == 200
    admin = make_staff(session, corp, roles=["administrator"], password=None)
    service.revoke_api_key(session, corp_id=corp.id, api_key_id=key.id, actor=principal_of(admin))
    assert client.get("/api/v1/me").status_code == 401


def test_staff_lists_only_the_corps_staff(session, corp, api):
    dept = service.create_department(session, corp_id=corp.id, name="零售")
    zhang = make_staff(session, corp, name="张伟", roles=["advisor", "operations"], department_id=dept.id,
                       wecom_userid="zw", password=None)
    other = make_corp(session)
    make_staff(session, other, name="外人", password=None)
    body = api.get("/api/v1/staff").json()
    assert [s["name"] for s in body["items"]] == ["张伟"] and body["next_after_id"] is None
    item = body["items"][0]
    assert item == {
        "id": zhang.id, "login": zhang.login, "name": "张伟", "department_id": dept.id, "wecom_userid": "zw",
        "roles": ["advisor", "operations"], "is_active": True, "sees_department": False,
        "created_at": item["created_at"], "last_login_at": None,
    }
    assert "password" not in str(body) and "hash" not in str(body)
    assert api.get(f"/api/v1/staff/{zhang.id}").json()["name"] == "张伟"


def test_staff_pages_and_filters(session, corp, api):
    staff = [make_staff(session, corp, password=None) for _ in range(5)]
    make_staff(session, corp, roles=["auditor"], password=None)
    first = api.get("/api/v1/staff", params={"limit": 2, "role": "advisor"}).json()
    assert [s["id"] for s in first["items"]] == [staff[0].id, staff[1].id]
    second = api.get("/api/v1/staff", params={"limit": 2, "role": "advisor",
                                              "after_id": first["next_after_id"]}).json()
    assert [s["id"] for s in second["items"]] == [staff[2].id, staff[3].id]
    last = api.get("/api/v1/staff", params={"limit": 2, "role": "advisor",
                                            "after_id": second["next_after_id"]}).json()
    assert [s["id"] for s in last["items"]] == [staff[4].id] and last["next_after_id"] is None
    assert api.get("/api/v1/staff", params={"is_active": "false"}).json()["items"] == []


def test_another_corps_staff_and_department_are_404(session, corp, api):
    other = make_corp(session)
    foreign = make_staff(session, other, name="外人", password=None)
    foreign_dept = service.create_department(session, corp_id=other.id, name="外部门")
    for url in (f"/api/v1/staff/{foreign.id}", f"/api/v1/departments/{foreign_dept.id}"):
        response = api.get(url)
        assert response.status_code == 404 and "外" not in response.text


def test_departments_in_tree_order(session, corp, api):
    retail = service.create_department(session, corp_id=corp.id, name="零售")
    branch = service.create_department(session, corp_id=corp.id, name="支行", parent_id=retail.id)
    body = api.get("/api/v1/departments").json()
    assert [(d["name"], d["depth"]) for d in body["items"]] == [("甲银行", 0), ("零售", 1), ("支行", 2)]
    assert body["items"][2]["path"] == "甲银行 / 零售 / 支行" and body["items"][2]["parent_id"] == retail.id
    assert api.get(f"/api/v1/departments/{branch.id}").json()["path"] == "甲银行 / 零售 / 支行"


@pytest.mark.parametrize("path", ["/api/v1/staff", "/api/v1/departments"])
def test_reading_the_org_needs_the_customers_read_scope(session, corp, path):
    narrow, _ = api_client(session, corp, scopes=["events:read"])
    response = narrow.get(path)
    assert response.status_code == 403 and "customers:read" in response.json()["detail"]
    reader, _ = api_client(session, corp, scopes=["customers:read"])
    assert reader.get(path).status_code == 200


@pytest.mark.parametrize(("params", "field"), [
    ({"limit": 0}, "limit"),
    ({"limit": "many"}, "limit"),
    ({"after_id": -1}, "after_id"),
    ({"after_id": 2**64}, "after_id"),
    ({"role": "root"}, "role"),
    ({"is_active": "perhaps"}, "is_active"),
])
def test_bad_parameters_are_422_naming_the_field(api, params, field):
    response = api.get("/api/v1/staff", params=params)
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == [field]


@pytest.mark.parametrize("bad", ["0", "-3", "abc", str(2**63), "1.5"])
def test_bad_ids_are_422(api, bad):
    response = api.get(f"/api/v1/staff/{bad}")
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "staff_id"


def test_the_api_is_in_the_openapi_document(session):
    doc = make_client(session).get("/api/openapi.json").json()
    assert {"/api/v1/me", "/api/v1/staff", "/api/v1/staff/{staff_id}", "/api/v1/departments",
            "/api/v1/departments/{department_id}"} <= set(doc["paths"])
    assert not any(p.startswith(("/staff", "/login", "/audit")) for p in doc["paths"])
