"""Console pages of red-line moderation and group health: the owner sees the alert of their group
(masked member, evidence, suggested action) and records what was done; another advisor sees nothing;
the red-line list is edited and imported by operations and refused to advisors; the group page shows
its health; the health overview lists dying groups and lifetimes."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from communities.factories import chat_id, wecom_chat
from customers.factories import external_id, make_customer
from siyu.communities import health, moderation, sync
from siyu.communities.models import ModerationHit
from siyu.compliance import archive
from siyu.db import utcnow
from tenancy.factories import console_user, make_corp, make_staff


@pytest.fixture
def setup(session):
    corp = make_corp(session)
    zhang = make_staff(session, corp, name="张顾问", wecom_userid="zhang", login="zhang.m" + str(corp.id))
    make_staff(session, corp, name="李顾问", wecom_userid="li", login="li.m" + str(corp.id))
    he = make_customer(session, corp.id, userid="zhang", name="何静")
    outsider = external_id()
    now = utcnow()
    members = [{"userid": "zhang", "type": 1, "join_scene": 1},
               {"userid": he.external_userid, "join_scene": 2, "invitor": "zhang"},
               {"userid": outsider, "name": "推广小王", "join_scene": 3}]
    group, _ = sync.apply_group_chat(session, corp_id=corp.id, at=now - dt.timedelta(days=5), detail=wecom_chat(
        chat_id(), name="稳健理财福利群", owner="zhang", members=members, created=now - dt.timedelta(days=5)))
    messages = [archive.ArchiveRecord(msgid=f"v{i}-{group.id}", sender=s, tolist=(), roomid=group.chat_id,
                                      msgtype="text", sent_at=now - dt.timedelta(hours=h), text=t)
                for i, (s, h, t) in enumerate([(he.external_userid, 30, "今天的课讲得好"),
                                               ("zhang", 29, "谢谢大家支持"),
                                               (outsider, 3, "高收益理财私聊我，电话13800138000")])]
    archive.ingest_records(session, corp_id=corp.id, records=messages, source="file")
    moderation.moderate_messages(session, corp_id=corp.id, messages=archive.group_messages(
        session, corp_id=corp.id, first_id=1, last_id=2**62))
    return corp, zhang, group


def test_the_owner_sees_and_handles_the_alert(session, setup):
    corp, zhang, group = setup
    other = console_user(session, corp, roles=["advisor"], wecom_userid="wang")  # not the owner
    page = other.get("/groups/moderation")
    assert page.status_code == 200 and 'data-testid="hit-row"' not in page.text

    ops = console_user(session, corp, roles=["operations"])
    page = ops.get("/groups/moderation")
    assert page.status_code == 200 and 'data-testid="hit-row"' in page.text
    assert "推***" in page.text and "推广小王" not in page.text
    assert "13800138000" in page.text, "the evidence is shown to whoever handles it"
    assert 'data-severity="block"' in page.text
    hit_id = session.scalar(select(ModerationHit.id).where(ModerationHit.corp_id == corp.id))
    bad = ops.post(f"/groups/moderation/hits/{hit_id}", {"status": "dismissed", "note": ""})
    assert bad.status_code == 422 and 'data-field="note"' in bad.text
    done = ops.post(f"/groups/moderation/hits/{hit_id}", {"status": "removed", "note": "已移出"},
                    follow_redirects=False)
    assert done.status_code == 303
    assert "已移出" in ops.get("/groups/moderation", params={"status": "removed"}).text
    bad_status = ops.get("/groups/moderation", params={"status": "nope"})
    assert bad_status.status_code == 422


def test_the_list_is_edited_by_operations_not_by_advisors(session, setup, tmp_path):
    corp, _, _ = setup
    adviser = console_user(session, corp, roles=["advisor"])
    assert adviser.get("/groups/moderation/terms").status_code == 403
    ops = console_user(session, corp, roles=["operations"])
    page = ops.get("/groups/moderation/terms")
    assert page.status_code == 200 and "加我微信" in page.text
    added = ops.post("/groups/moderation/terms", {"category": "competitor", "phrase": "鑫盛财富", "severity": "review"},
                     follow_redirects=False)
    assert added.status_code == 303, added.text[-3000:]
    assert 'data-phrase="鑫盛财富"' in ops.get("/groups/moderation/terms").text
    dup = ops.post("/groups/moderation/terms", {"category": "scam", "phrase": "鑫盛财富", "severity": "block"})
    assert dup.status_code == 409 and 'data-field="phrase"' in dup.text
    bad = ops.client.post("/groups/moderation/terms/import", data={"csrf_token": ops.csrf},
                          files={"file": ("x.csv", b"category,phrase\npolitics,x\n", "text/csv")})
    assert bad.status_code == 422 and "row 2" in bad.text
    export = ops.get("/groups/moderation/terms/export/csv")
    assert export.status_code == 200 and "鑫盛财富" in export.content.decode("utf-8-sig")


def test_the_group_page_shows_health_and_alerts_and_the_overview_lists_dying_groups(session, setup):
    corp, _, group = setup
    ops = console_user(session, corp, roles=["operations"])
    page = ops.get(f"/groups/{group.id}")
    assert page.status_code == 200, page.text[-2000:]
    for testid in ("group-health", "health-score", "chart-group_members", "chart-group_messages", "group-hits"):
        assert f'data-testid="{testid}"' in page.text
    health.store_corp(session, corp_id=corp.id, day=health.china_today() - dt.timedelta(days=1))
    listing = ops.get("/groups")
    assert 'data-testid="group-health"' in listing.text
    overview = ops.get("/groups/health")
    assert overview.status_code == 200 and 'data-testid="lifetimes"' in overview.text


def test_the_api_gives_health_and_red_line_alerts_without_the_text(session, setup):
    from tenancy.factories import api_client

    corp, _, group = setup
    client, _ = api_client(session, corp, scopes=["communities:read"])
    got = client.get(f"/api/v1/communities/groups/{group.id}/health")
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["group_id"] == group.id and 0 <= body["score"] <= 100 and body["speakers"] == 2
    alerts = client.get("/api/v1/communities/red-line-alerts", params={"status": "open"}).json()["items"]
    assert [(a["severity"], a["suggested_action"], a["member_name"]) for a in alerts] == [("block", "remove", "推***")]
    assert "13800138000" not in client.get("/api/v1/communities/red-line-alerts").text
    assert client.get("/api/v1/communities/red-line-alerts", params={"status": "nope"}).status_code == 422
    other = make_corp(session)
    other_client, _ = api_client(session, other, scopes=["communities:read"])
    assert other_client.get(f"/api/v1/communities/groups/{group.id}/health").status_code == 404
