"""The REST API of segments: scopes, CRUD, count and sample, bad rules answered 422 with the field path,
and another corp's key never sees or counts a segment."""

from __future__ import annotations

from audiences.factories import customer, link, tag
from tenancy.factories import api_client, make_corp


def test_segments_over_rest(session):
    corp = make_corp(session)
    t = tag(session, corp.id, "高净值")
    rich = [customer(session, corp.id, name="王小明", stage="invested") for _ in range(3)]
    for c in rich:
        link(session, c, t)
    customer(session, corp.id, stage="invested")
    reader, _ = api_client(session, corp, scopes=("audiences:read",))
    writer, _ = api_client(session, corp, scopes=("audiences:write", "audiences:read"))
    rule = {"all": [{"kind": "tags", "match": "any", "tag_ids": [t.id]}, {"kind": "stage", "stages": ["invested"]}]}

    assert reader.post("/api/v1/audiences/segments", json={"name": "高净值已投", "rule": rule}).status_code == 403
    made = writer.post("/api/v1/audiences/segments", json={"name": "高净值已投", "description": "test", "rule": rule})
    assert made.status_code == 201, made.text
    seg = made.json()
    assert seg["rule"]["all"][0]["tag_ids"] == [t.id]
    again = writer.post("/api/v1/audiences/segments", json={"name": "高净值已投", "rule": rule})
    assert again.status_code == 409 and again.json()["field"] == "name"

    counted = reader.post(f"/api/v1/audiences/segments/{seg['id']}/count")
    assert counted.status_code == 200 and counted.json()["count"] == 3
    sample = reader.get(f"/api/v1/audiences/segments/{seg['id']}/sample").json()
    assert sample["count"] == 3 and len(sample["members"]) == 3
    assert {m["name"] for m in sample["members"]} == {"王**"}
    assert "external_userid" not in sample["members"][0]
    assert reader.get("/api/v1/audiences/segments").json()[0]["last_count"] == 3

    changed = writer.patch(f"/api/v1/audiences/segments/{seg['id']}", json={"rule": {"kind": "stage",
                                                                                     "stages": ["invested"]}})
    assert changed.status_code == 200 and changed.json()["name"] == "高净值已投"
    assert reader.post(f"/api/v1/audiences/segments/{seg['id']}/count").json()["count"] == 4

    preview = reader.post("/api/v1/audiences/preview", json={"rule": rule})
    assert preview.status_code == 200 and preview.json()["count"] == 3

    assert writer.delete(f"/api/v1/audiences/segments/{seg['id']}").status_code == 204
    assert reader.get(f"/api/v1/audiences/segments/{seg['id']}").status_code == 404


def test_bad_rules_are_422_with_the_field_path(session):
    corp = make_corp(session)
    writer, _ = api_client(session, corp, scopes=("audiences:write", "audiences:read"))
    bad = writer.post("/api/v1/audiences/segments",
                      json={"name": "x", "rule": {"all": [{"kind": "stage", "stages": ["new"]},
                                                          {"kind": "tags", "match": "some", "tag_ids": [1]}]}})
    assert bad.status_code == 422 and bad.json()["field"] == "rule.all[1].match"
    nameless = writer.post("/api/v1/audiences/segments", json={"name": "  ", "rule": {"kind": "lost"}})
    assert nameless.status_code == 422 and nameless.json()["field"] == "name"
    preview = writer.post("/api/v1/audiences/preview", json={"rule": {"any": [{"kind": "risk_level", "levels": []}]}})
    assert preview.status_code == 422 and preview.json()["field"] == "rule.any[0].levels"
    assert writer.get("/api/v1/audiences/segments").json() == []  # nothing half-written


def test_another_corp_never_sees_a_segment_nor_uses_its_tags(session):
    corp, other = make_corp(session), make_corp(session)
    t = tag(session, corp.id)
    writer, _ = api_client(session, corp, scopes=("audiences:write", "audiences:read"))
    seg = writer.post("/api/v1/audiences/segments", json={"name": "a", "rule": {"kind": "lost"}}).json()
    stranger, _ = api_client(session, other, scopes=("audiences:write", "audiences:read"))
    assert stranger.get(f"/api/v1/audiences/segments/{seg['id']}").status_code == 404
    assert stranger.post(f"/api/v1/audiences/segments/{seg['id']}/count").status_code == 404
    assert stranger.get(f"/api/v1/audiences/segments/{seg['id']}/sample").status_code == 404
    assert stranger.patch(f"/api/v1/audiences/segments/{seg['id']}", json={"name": "b"}).status_code == 404
    assert stranger.delete(f"/api/v1/audiences/segments/{seg['id']}").status_code == 404
    assert stranger.get("/api/v1/audiences/segments").json() == []
    theft = stranger.post("/api/v1/audiences/preview", json={"rule": {"kind": "tags", "tag_ids": [t.id]}})
    assert theft.status_code == 422 and theft.json()["field"] == "rule.tag_ids"
