"""Join ways of a group set and welcome into its groups, without WeCom: the settings and their bad
input, which groups a join way lists (rollover, reserve, exhausted, auto-create), each join attributed
once, the welcome texts through compliance's gate, the owner's announcement task, the console page
and the REST API with scopes."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from communities.factories import T0, make_group, wecom_chat
from compliance.gate import approve_all
from customers.factories import make_customer
from siyu.communities import group_welcome, joinways, service, sync
from siyu.communities.joinway_models import GroupJoin, GroupOwnerTask
from siyu.errors import Conflict, Forbidden, InvalidInput, NotFound
from siyu.jobs.models import Job
from siyu.tenancy.models import Role
from tenancy.factories import api_client, console_user, make_corp, make_staff, principal_of


@pytest.fixture
def org(session):
    corp = make_corp(session)
    make_staff(session, corp, name="张顾问", wecom_userid="zhang")
    ops = principal_of(make_staff(session, corp, roles=(Role.OPERATIONS,), name="运营小王"))
    advisor = principal_of(make_staff(session, corp, roles=(Role.ADVISOR,), name="李顾问", wecom_userid="li"))
    group_set = service.create_set(session, principal=ops, name="稳健理财福利群组", positioning="benefit")
    groups = [make_group(session, corp.id, name=f"福利{i}群", owner="zhang", at=T0 + dt.timedelta(minutes=i))
              for i in range(7)]
    service.assign_groups(session, principal=ops, set_id=group_set.id, group_ids=[g.id for g in groups])
    return corp, ops, advisor, group_set, groups


def _fill(session, corp_id, group, n):
    """Give the group n members in WeCom's answer (the owner and n-1 customers)."""
    members = [{"userid": "zhang", "type": 1, "join_scene": 1}] + [
        {"userid": f"wmfill{group.id}x{i}", "type": 2} for i in range(n - 1)]
    sync.apply_group_chat(session, corp_id=corp_id, detail=wecom_chat(group.chat_id, name=group.name, owner="zhang",
                                                                     members=members))


def test_settings_refuse_bad_input_naming_the_field(session, org):
    corp, ops, advisor, group_set, _ = org
    with pytest.raises(InvalidInput) as exc:
        joinways.configure(session, principal=ops, set_id=group_set.id, capacity=200, rotate_at=200)
    assert exc.value.field == "rotate_at", "a group must leave the join way before it is full"
    with pytest.raises(InvalidInput) as exc:
        joinways.configure(session, principal=ops, set_id=group_set.id, capacity="lots")
    assert exc.value.field == "capacity"
    with pytest.raises(InvalidInput) as exc:
        joinways.configure(session, principal=ops, set_id=group_set.id, when_full="auto_create", room_base_name="")
    assert exc.value.field == "room_base_name"
    with pytest.raises(Forbidden):
        joinways.configure(session, principal=advisor, set_id=group_set.id, capacity=200)
    row = joinways.configure(session, principal=ops, set_id=group_set.id, capacity=500, rotate_at=480)
    assert (row.capacity, row.rotate_at, row.when_full) == (500, 480, "alert")


def test_one_join_way_per_set_and_channel(session, org):
    corp, ops, advisor, group_set, _ = org
    way = joinways.create_way(session, principal=ops, set_id=group_set.id)
    assert way.state == f"jw{way.id}" and len(way.state) <= 30 and way.qr_code is None
    with pytest.raises(Conflict) as exc:
        joinways.create_way(session, principal=ops, set_id=group_set.id)
    assert exc.value.field == "channel_code_id"
    with pytest.raises(NotFound):
        joinways.create_way(session, principal=ops, set_id=group_set.id, channel_code_id=999_999)
    with pytest.raises(Forbidden):
        joinways.create_way(session, principal=advisor, set_id=group_set.id)
    keeps = session.scalar(select(func.count()).select_from(Job).where(Job.name == joinways.KEEP_JOB,
                                                                       Job.corp_id == corp.id))
    assert keeps >= 1, "WeCom makes the join way in a job"


def test_the_plan_lists_five_groups_with_room_and_rolls_over(session, org):
    corp, ops, _, group_set, groups = org
    joining = joinways.configure(session, principal=ops, set_id=group_set.id, capacity=10, rotate_at=8)
    way = joinways.create_way(session, principal=ops, set_id=group_set.id)
    first = joinways.plan(session, way=way, joining=joining)
    assert first.chat_ids == [g.chat_id for g in groups[:5]] and not first.exhausted
    way.chat_ids = first.chat_ids
    _fill(session, corp.id, groups[0], 8)  # the first group reaches the threshold
    second = joinways.plan(session, way=way, joining=joining)
    assert second.chat_ids == [g.chat_id for g in groups[1:6]], "it leaves the way and the sixth comes in"
    for g in groups:
        _fill(session, corp.id, g, 9)
    third = joinways.plan(session, way=way, joining=joining)
    assert third.exhausted and len(third.chat_ids) == 5, "past the threshold everywhere: alert, groups with room kept"
    for g in groups:
        _fill(session, corp.id, g, 10)
    full = joinways.plan(session, way=way, joining=joining)
    assert full.exhausted and len(full.chat_ids) == 1
    joining = joinways.configure(session, principal=ops, set_id=group_set.id, when_full="auto_create",
                                 room_base_name="稳健理财福利", room_base_id=8)
    auto = joinways.plan(session, way=way, joining=joining)
    assert auto.auto_create and not auto.exhausted and len(auto.chat_ids) == 1, "WeCom creates the next group"


def test_each_join_is_attributed_once_and_a_full_group_queues_the_rollover(session, org):
    corp, ops, _, group_set, groups = org
    joinways.configure(session, principal=ops, set_id=group_set.id, capacity=10, rotate_at=3)
    way = joinways.create_way(session, principal=ops, set_id=group_set.id)
    way.chat_ids = [g.chat_id for g in groups[:5]]
    he = make_customer(session, corp.id, userid="zhang", name="何静")
    luo = make_customer(session, corp.id, userid="li", name="罗先生")
    members = [{"userid": "zhang", "type": 1, "join_scene": 1},
               {"userid": he.external_userid, "type": 2, "join_scene": 3, "state": way.state},
               {"userid": luo.external_userid, "type": 2, "join_scene": 2, "invitor": "li"}]
    group, _ = sync.apply_group_chat(session, corp_id=corp.id, detail=wecom_chat(
        groups[0].chat_id, name=groups[0].name, owner="zhang", members=members))
    stays = {s.member_id: s.id for s in sync.open_members(session, group.id).values()}
    keeps_before = session.scalar(select(func.count()).select_from(Job).where(Job.name == joinways.KEEP_JOB))
    a = joinways.record_join(session, corp_id=corp.id, stay_id=stays[he.external_userid])
    b = joinways.record_join(session, corp_id=corp.id, stay_id=stays[luo.external_userid])
    again = joinways.record_join(session, corp_id=corp.id, stay_id=stays[he.external_userid])
    assert again.id == a.id and session.scalar(select(func.count()).select_from(GroupJoin)) == 2
    assert (a.join_way_id, a.group_set_id, a.advisor_userid, a.join_scene) == (way.id, group_set.id, "zhang", 3), \
        "a QR join: the advisor whose customer it is"
    assert (b.join_way_id, b.advisor_userid, b.join_scene) == (None, "li", 2), "an invited join: the inviter"
    keeps_after = session.scalar(select(func.count()).select_from(Job).where(Job.name == joinways.KEEP_JOB))
    assert keeps_after > keeps_before, "the group reached the threshold (3 members): its rollover is queued"
    view = joinways.overview(session, principal=ops, set_id=group_set.id, today=T0.date())
    assert view.ways[0].joins == 1 and dict(view.by_advisor) == {"张顾问": 1, "李顾问": 1}


def test_welcome_texts_go_through_the_gate_and_the_announcement_becomes_a_task(session, org):
    corp, ops, advisor, group_set, groups = org
    texts = group_welcome.save_texts(session, principal=ops, set_id=group_set.id,
                                     welcome_text="欢迎加入稳健理财福利群！", rules_text="群规：禁止广告，文明交流。",
                                     announcement_text="每周五晚8点直播答疑")
    assert texts[group_welcome.WELCOME].pending and texts[group_welcome.WELCOME].in_force is None
    assert group_welcome.welcome_to_push(session, corp_id=corp.id, set_id=group_set.id) is None, \
        "nothing goes to WeCom before compliance approves"
    with pytest.raises(Forbidden):
        group_welcome.save_texts(session, principal=advisor, set_id=group_set.id, welcome_text="x")
    with pytest.raises(InvalidInput) as exc:
        group_welcome.save_texts(session, principal=ops, set_id=group_set.id, rules_text="群规" * 1001)
    assert exc.value.field == "rules_text"
    approve_all(session, corp.id)
    assert group_welcome.welcome_to_push(session, corp_id=corp.id, set_id=group_set.id)[0] == "欢迎加入稳健理财福利群！"
    assert (corp.id, group_set.id) in group_welcome.sets_to_push(session)
    group_welcome.record_push(session, corp_id=corp.id, set_id=group_set.id, template_id="msgT1", version=1)
    assert group_welcome.welcome_to_push(session, corp_id=corp.id, set_id=group_set.id) is None
    task = group_welcome.open_announcement_task(session, corp_id=corp.id, group=groups[0], set_id=group_set.id)
    assert (task.text, task.owner_userid, task.done_at) == ("每周五晚8点直播答疑", "zhang", None)
    again = group_welcome.open_announcement_task(session, corp_id=corp.id, group=groups[0], set_id=group_set.id)
    assert again.id == task.id and session.scalar(select(func.count()).select_from(GroupOwnerTask)) == 1
    group_welcome.complete_task(session, principal=ops, task_id=task.id)
    assert task.done_at is not None


def test_the_blocked_text_is_refused_and_nothing_is_saved(session, org):
    corp, ops, _, group_set, _ = org
    with pytest.raises(InvalidInput) as exc:
        group_welcome.save_texts(session, principal=ops, set_id=group_set.id, welcome_text="保本保息，稳赚不赔！")
    assert exc.value.field == "welcome_text"
    assert group_welcome.texts(session, corp_id=corp.id, set_id=group_set.id)[group_welcome.WELCOME].latest == ""


def test_the_joining_page_in_chinese_and_its_bad_input(session, org):
    corp, ops, _, group_set, _ = org
    user = console_user(session, corp, roles=["operations"])
    page = user.get(f"/groups/sets/{group_set.id}/joining")
    assert page.status_code == 200, page.text[-2000:]
    assert "稳健理财福利群组" in page.text and 'data-testid="no-join-way"' in page.text and "福利0群" in page.text
    bad = user.post(f"/groups/sets/{group_set.id}/joining", data={"capacity": "200", "rotate_at": "250",
                                                                  "when_full": "alert"})
    assert bad.status_code == 422 and 'data-field="rotate_at"' in bad.text
    made = user.post(f"/groups/sets/{group_set.id}/join-ways", data={"channel_code_id": ""})
    assert made.status_code == 303
    page = user.get(f"/groups/sets/{group_set.id}/joining")
    assert 'data-testid="join-way"' in page.text
    assert user.get(f"/groups/sets/{group_set.id}").text.count(f"/groups/sets/{group_set.id}/joining") == 1
    advisor = console_user(session, corp, roles=["advisor"])
    assert advisor.post(f"/groups/sets/{group_set.id}/join-ways", data={}).status_code == 403
    seen = advisor.get(f"/groups/sets/{group_set.id}/joining")
    assert seen.status_code == 200 and "福利0群" not in seen.text, "an advisor sees only the groups they own"


def test_the_api_needs_its_scopes_and_sees_only_its_corp(session, org):
    corp, ops, _, group_set, _ = org
    reader, _ = api_client(session, corp, scopes=["communities:read"])
    assert reader.get(f"/api/v1/communities/group-sets/{group_set.id}/joining").status_code == 200
    assert reader.post(f"/api/v1/communities/group-sets/{group_set.id}/join-ways", json={}).status_code == 403
    writer, _ = api_client(session, corp, scopes=["communities:read", "communities:write"])
    made = writer.post(f"/api/v1/communities/group-sets/{group_set.id}/join-ways", json={})
    assert made.status_code == 201 and made.json()["qr_code"] is None and made.json()["status"] == "active"
    bad = writer.patch(f"/api/v1/communities/group-sets/{group_set.id}/joining", json={"capacity": 200,
                                                                                       "rotate_at": 0})
    assert bad.status_code == 422 and "rotate_at" in bad.text
    put = writer.put(f"/api/v1/communities/group-sets/{group_set.id}/welcome", json={"rules_text": "文明交流"})
    assert put.status_code == 200 and put.json()["rules"]["pending"] is True
    other, _ = api_client(session, make_corp(session), scopes=["*"])
    assert other.get(f"/api/v1/communities/group-sets/{group_set.id}/joining").status_code == 404
    assert other.delete(f"/api/v1/communities/join-ways/{made.json()['id']}").status_code == 404


def test_a_verification_gate_hands_out_the_sets_join_way(session, org):
    from siyu.acquisition import verification

    corp, ops, _, group_set, _ = org
    gate = verification.save_community(session, corp_id=corp.id, actor="test", name="高净值验证群", verify_by="sms",
                                       qr_image_url="https://img.example/old-qr.png")
    with pytest.raises(Conflict) as exc:
        joinways.link_gate(session, principal=ops, set_id=group_set.id, gated_community_id=gate.id)
    assert exc.value.field == "gated_community_id", "the set needs its set-wide join way first"
    way = joinways.create_way(session, principal=ops, set_id=group_set.id)
    joinways.link_gate(session, principal=ops, set_id=group_set.id, gated_community_id=gate.id)
    assert verification.join_way_qr(gate) is None, "not before WeCom made the join way"
    way.config_id, way.qr_code = "cfg1", "https://wework.qpic.cn/wwpic/join/cfg1/0"
    session.flush()
    assert verification.join_way_qr(gate) == way.qr_code
    assert joinways.gates(session, corp_id=corp.id, set_id=group_set.id) == [(gate.id, "高净值验证群")]
    with pytest.raises(NotFound):
        joinways.link_gate(session, principal=ops, set_id=group_set.id, gated_community_id="x")
