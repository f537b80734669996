"""REST API of communities: scopes, the corp's groups only, customers by masked name (never their
WeCom id), PATCH with field errors, group sets, the sync request."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from communities.factories import make_group
from customers.factories import make_customer
from siyu.jobs.models import Job
from tenancy.factories import api_client, make_corp, make_staff


@pytest.fixture
def corp(session):
    corp = make_corp(session)
    make_staff(session, corp, name="张顾问", wecom_userid="zhang")
    he = make_customer(session, corp.id, userid="zhang", name="何静")
    group = make_group(session, corp.id, name="新手课堂1期", owner="zhang", customers=[he.external_userid])
    return corp, group, he


def test_read_needs_the_scope_and_sees_only_its_corp(session, corp):
    corp, group, he = corp
    client, _ = api_client(session, corp, scopes=["customers:read"])
    assert client.get("/api/v1/communities/groups").status_code == 403
    client, _ = api_client(session, corp, scopes=["communities:read"])
    listed = client.get("/api/v1/communities/groups").json()
    assert listed["total"] == 1 and listed["items"][0]["name"] == "新手课堂1期"
    detail = client.get(f"/api/v1/communities/groups/{group.id}")
    assert detail.status_code == 200
    body = detail.json()
    customers = [m for m in body["members"] if m["member_type"] == "customer"]
    assert customers[0]["display_name"] == "何*" and customers[0]["customer_id"] == he.id
    assert he.external_userid not in detail.text and "何静" not in detail.text
    assert len(body["joins_and_leaves"]["x"]) == 30
    other, _ = api_client(session, make_corp(session), scopes=["*"])
    assert other.get(f"/api/v1/communities/groups/{group.id}").status_code == 404
    assert client.patch(f"/api/v1/communities/groups/{group.id}", json={"positioning": "product"}).status_code == 403


def test_patch_sets_and_sync(session, corp):
    corp, group, _ = corp
    client, _ = api_client(session, corp, scopes=["communities:read", "communities:write"])
    created = client.post("/api/v1/communities/group-sets", json={"name": "新手课堂", "positioning": "novice_class"})
    assert created.status_code == 201, created.text
    set_id = created.json()["id"]
    assert client.post("/api/v1/communities/group-sets", json={"name": "新手课堂"}).status_code == 409
    added = client.patch(f"/api/v1/communities/group-sets/{set_id}", json={"add_group_ids": [group.id]})
    assert added.json()["group_count"] == 1
    patched = client.patch(f"/api/v1/communities/groups/{group.id}", json={"tags": ["深圳"]}).json()
    assert (patched["positioning"], patched["group_set_id"], patched["tags"]) == ("novice_class", set_id, ["深圳"])
    bad = client.patch(f"/api/v1/communities/groups/{group.id}", json={"positioning": "vip"})
    assert bad.status_code == 422 and "positioning" in bad.text
    bad = client.patch(f"/api/v1/communities/groups/{group.id}", json={"tags": ["x" * 40]})
    assert bad.status_code == 422 and "tags" in bad.text
    cleared = client.patch(f"/api/v1/communities/groups/{group.id}", json={"clear_group_set": True}).json()
    assert cleared["group_set_id"] is None
    assert client.get("/api/v1/communities/groups", params={"positioning": "vip"}).status_code == 422
    sync = client.post("/api/v1/communities/sync")
    assert sync.status_code == 202
    assert session.scalar(select(Job.name).where(Job.corp_id == corp.id, Job.name == "communities.sync_corp"))
