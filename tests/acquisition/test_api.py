"""REST API of acquisition: channel codes with live counters and cost, personas, keyword rules with
their counts; scope `acquisition:read`; another corp's code is not found."""

from __future__ import annotations

from siyu.acquisition import keywords, service
from siyu.db import utcnow
from siyu.tenancy.models import Role
from tenancy.factories import api_client, fast_argon2, make_corp, make_staff  # noqa: F401


def _setup(session):
    corp = make_corp(session, name="接口获客银行")
    make_staff(session, corp, roles=(Role.ADVISOR,), name="张三", wecom_userid="zhangsan")
    code = service.create_channel_code(session, corp_id=corp.id, actor="test", name="春季投放", channel="ad",
                                       advisors=[service.AdvisorSpec("zhangsan", daily_cap=5)], cost_fen=30_000)
    for i in range(3):
        service.attribute_add(session, corp_id=corp.id, state=code.state, userid="zhangsan",
                              external_userid=f"wmApi{i:04d}", inbox_event_id=10_000 + i, at=utcnow())
    rule = keywords.save_rule(session, corp_id=corp.id, actor="test", data=keywords.RuleInput(
        name="加群", keyword="加群", reply_text="欢迎加入理财学习群", enabled=True))
    return corp, code, rule


def test_channel_codes_with_counters_and_cost(session):
    corp, code, _ = _setup(session)
    client, _ = api_client(session, corp, scopes=("acquisition:read",))
    (item,) = client.get("/api/v1/acquisition/channel-codes").json()["items"]
    assert item["id"] == code.id and item["state"] == code.state
    assert item["counters"] == {"adds_today": 3, "adds_total": 3, "lost": 0, "active": 3, "cost_fen": 30_000,
                                "cost_per_add_fen": 10_000}
    one = client.get(f"/api/v1/acquisition/channel-codes/{code.id}").json()
    assert one["advisors"] == [{"userid": "zhangsan", "daily_cap": 5, "adds_today": 3}]
    personas = client.get("/api/v1/acquisition/personas").json()["items"]
    assert {p["kind"] for p in personas} >= {"knowledge_expert"}
    (rule,) = client.get("/api/v1/acquisition/keyword-rules").json()["items"]
    assert (rule["keyword"], rule["match_mode"], rule["counts"]["matched"]) == ("加群", "contains", 0)


def test_scope_and_other_corps_and_bad_ids(session):
    corp, code, _ = _setup(session)
    other = make_corp(session, name="别家银行")
    make_staff(session, other, roles=(Role.ADVISOR,), name="李四", wecom_userid="lisi")
    theirs = service.create_channel_code(session, corp_id=other.id, actor="test", name="别家", channel="sms",
                                         advisors=[service.AdvisorSpec("lisi")])
    client, _ = api_client(session, corp, scopes=("customers:read",))
    assert client.get("/api/v1/acquisition/channel-codes").status_code == 403
    assert client.get("/api/v1/acquisition/keyword-rules").status_code == 403
    client, _ = api_client(session, corp, scopes=("acquisition:read",))
    assert client.get(f"/api/v1/acquisition/channel-codes/{theirs.id}").status_code == 404
    assert [c["id"] for c in client.get("/api/v1/acquisition/channel-codes").json()["items"]] == [code.id]
    bad = client.get("/api/v1/acquisition/channel-codes/abc")
    assert bad.status_code == 422
    assert client.get(f"/api/v1/acquisition/channel-codes/{2**63}").status_code == 422
