"""The communities domain's service: applying WeCom's group picture is idempotent and publishes one
event per join and leave; visibility by role; search and filters; positioning, tags and group sets
with their rules (one set per group, writers only, audited); bad input named by field."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from communities.factories import T0, chat_id, make_group, wecom_chat
from customers.factories import external_id, make_customer
from siyu.communities import service, sync
from siyu.communities.models import GroupMember
from siyu.errors import Conflict, Forbidden, InvalidInput, NotFound
from siyu.jobs.events import subscribe
from siyu.jobs.models import Job
from siyu.tenancy import audit
from tenancy.factories import make_corp, make_staff, principal_of


@subscribe("group.joined", name="tests.communities.service_joined")
def _joined(session, payload, job):  # only so that publishing enqueues a job the tests can count
    pass


@subscribe("group.left", name="tests.communities.service_left")
def _left(session, payload, job):
    pass


@pytest.fixture
def org(session):
    corp = make_corp(session)
    staff = {
        "zhang": make_staff(session, corp, name="张顾问", wecom_userid="zhang"),
        "li": make_staff(session, corp, name="李顾问", wecom_userid="li"),
        "ops": make_staff(session, corp, name="运营", roles=["operations"]),
        "compliance": make_staff(session, corp, name="合规", roles=["compliance"]),
    }
    return corp, staff


def _event_jobs(session, corp_id: int, event: str) -> list[dict]:
    subscriber = "service_joined" if event == "group.joined" else "service_left"
    return [j.payload for j in session.scalars(select(Job).where(
        Job.corp_id == corp_id, Job.name == f"event:{event}:tests.communities.{subscriber}"))]


def test_applying_the_same_picture_twice_changes_nothing(session, org):
    corp, _ = org
    he = make_customer(session, corp.id, userid="zhang", name="何静")
    stranger = external_id()  # a customer of nobody in Siyu (joined through a colleague's invite)
    cid = chat_id()
    members = [{"userid": "zhang", "type": 1, "join_scene": 1},
               {"userid": he.external_userid, "join_scene": 2, "invitor": "zhang", "state": "set1-w1",
                "join_time": T0 + dt.timedelta(hours=1)},
               {"userid": stranger, "name": "罗伯特"}]
    detail = wecom_chat(cid, name="新手课堂3期", owner="zhang", members=members, notice="欢迎", admins=["zhang"])
    group, first = sync.apply_group_chat(session, corp_id=corp.id, detail=detail)
    assert first.created and (first.joined, first.left) == (3, 0)
    assert (group.member_count, group.customer_count, group.owner_staff_id) == (3, 2, org[1]["zhang"].id)
    before = session.scalar(select(func.count()).select_from(Job).where(Job.corp_id == corp.id))
    _, again = sync.apply_group_chat(session, corp_id=corp.id, detail=detail)
    assert (again.created, again.changed, again.joined, again.left) == (False, [], 0, 0)
    assert session.scalar(select(func.count()).select_from(Job).where(Job.corp_id == corp.id)) == before
    joined = _event_jobs(session, corp.id, "group.joined")
    assert sorted((p["external_userid"], p["customer_id"], p["join_scene"], p["state"]) for p in joined) == sorted([
        (he.external_userid, he.id, 2, "set1-w1"), (stranger, None, 3, None)])


def test_a_leave_and_a_rejoin_are_two_stays(session, org):
    corp, _ = org
    he = make_customer(session, corp.id, userid="zhang", name="何静")
    cid = chat_id()
    owner = {"userid": "zhang", "type": 1, "join_scene": 1}
    with_he = wecom_chat(cid, name="福利群", owner="zhang", members=[owner, {"userid": he.external_userid}])
    without = wecom_chat(cid, name="福利群", owner="zhang", members=[owner])
    group, _ = sync.apply_group_chat(session, corp_id=corp.id, detail=with_he)
    left_at = T0 + dt.timedelta(days=2)
    _, r = sync.apply_group_chat(session, corp_id=corp.id, detail=without, at=left_at, quit_scene=1,
                                 left_ids=[he.external_userid])
    assert r.left == 1 and group.member_count == 1
    _, r = sync.apply_group_chat(session, corp_id=corp.id, detail=without, at=left_at, quit_scene=1)
    assert r.left == 0, "a redelivered del_member changes nothing"
    rejoin = wecom_chat(cid, name="福利群", owner="zhang", members=[
        owner, {"userid": he.external_userid, "join_time": T0 + dt.timedelta(days=3)}])
    sync.apply_group_chat(session, corp_id=corp.id, detail=rejoin)
    stays = session.execute(select(GroupMember.joined_at, GroupMember.left_at, GroupMember.quit_scene)
                            .where(GroupMember.member_id == he.external_userid).order_by(GroupMember.id)).all()
    assert stays == [(T0, left_at, 1), (T0 + dt.timedelta(days=3), None, None)]
    assert len(_event_jobs(session, corp.id, "group.left")) == 1
    assert len(_event_jobs(session, corp.id, "group.joined")) == 2


def test_renames_owner_changes_and_dismissal(session, org):
    corp, staff = org
    cid = chat_id()
    group = make_group(session, corp.id, name="产品群", owner="zhang", cid=cid)
    moved = wecom_chat(cid, name="产品2群", owner="li", members=[{"userid": "li", "type": 1}], notice="周五直播")
    _, r = sync.apply_group_chat(session, corp_id=corp.id, detail=moved)
    assert sorted(r.changed) == ["name", "notice", "owner_userid"] and group.owner_staff_id == staff["li"].id
    sync.mark_dismissed(session, corp_id=corp.id, chat_id=cid, at=T0)
    sync.mark_dismissed(session, corp_id=corp.id, chat_id=cid, at=T0 + dt.timedelta(days=1))
    assert group.dismissed_at == T0, "a second dismiss changes nothing"
    assert sync.known_chat_ids(session, corp_id=corp.id) == []


def test_advisors_see_the_groups_they_own(session, org):
    corp, staff = org
    mine = make_group(session, corp.id, name="张的群", owner="zhang")
    theirs = make_group(session, corp.id, name="李的群", owner="li")
    zhang = principal_of(staff["zhang"])
    assert [r.name for r in service.list_groups(session, principal=zhang).rows] == ["张的群"]
    with pytest.raises(NotFound):
        service.get_group(session, principal=zhang, group_id=theirs.id)
    assert service.get_group(session, principal=zhang, group_id=mine.id) is mine
    ops = principal_of(staff["ops"])
    assert service.list_groups(session, principal=ops).total == 2
    other = make_corp(session)
    outsider = principal_of(make_staff(session, other, roles=["administrator"]))
    with pytest.raises(NotFound):
        service.get_group(session, principal=outsider, group_id=mine.id)


def test_search_and_filters(session, org):
    corp, staff = org
    ops = principal_of(staff["ops"])
    a = make_group(session, corp.id, name="新手课堂1期", owner="zhang", at=T0)
    b = make_group(session, corp.id, name="高净值沙龙", owner="li", at=T0 + dt.timedelta(days=1))
    make_group(session, corp.id, name="50%_特惠群", owner="li", at=T0 + dt.timedelta(days=2))
    service.update_group(session, principal=ops, group_id=b.id, positioning="high_net_worth", tags=["深圳", "2026春"])
    s = service.create_set(session, principal=ops, name="新手课堂", positioning="novice_class")
    service.assign_groups(session, principal=ops, set_id=s.id, group_ids=[a.id])

    def names(**kw):
        return [r.name for r in service.list_groups(session, principal=ops, filters=service.make_filters(**kw)).rows]

    assert names() == ["50%_特惠群", "高净值沙龙", "新手课堂1期"]
    assert names(q="课堂") == ["新手课堂1期"]
    assert names(q="李顾问") == ["50%_特惠群", "高净值沙龙"], "search finds the owner's name"
    assert names(q="%_") == ["50%_特惠群"], "LIKE wildcards are taken literally"
    assert names(positioning="high_net_worth") == ["高净值沙龙"]
    assert names(positioning="novice_class") == ["新手课堂1期"], "a group takes its set's positioning"
    assert names(group_set_id=str(s.id)) == ["新手课堂1期"]
    assert names(tag="深圳") == ["高净值沙龙"]
    assert names(owner_staff_id=str(staff["zhang"].id)) == ["新手课堂1期"]
    with pytest.raises(InvalidInput) as bad:
        service.make_filters(positioning="vip")
    assert bad.value.field == "positioning"
    with pytest.raises(InvalidInput) as bad:
        service.make_filters(group_set_id="abc")
    assert bad.value.field == "group_set"


def test_a_group_belongs_to_at_most_one_set(session, org):
    corp, staff = org
    ops = principal_of(staff["ops"])
    g = make_group(session, corp.id)
    first = service.create_set(session, principal=ops, name="福利群A", positioning="benefit")
    second = service.create_set(session, principal=ops, name="福利群B", positioning="benefit")
    service.assign_groups(session, principal=ops, set_id=first.id, group_ids=[g.id])
    service.assign_groups(session, principal=ops, set_id=second.id, group_ids=[g.id])
    counts = {s.name: s.group_count for s in service.list_sets(session, principal=ops)}
    assert counts == {"福利群A": 0, "福利群B": 1}
    with pytest.raises(Conflict) as clash:
        service.create_set(session, principal=ops, name="福利群A")
    assert clash.value.field == "name"
    service.delete_set(session, principal=ops, set_id=second.id)
    assert g.group_set_id is None, "the group stays, without a set"


def test_only_operations_and_administrators_change_groups_and_it_is_audited(session, org):
    corp, staff = org
    g = make_group(session, corp.id, owner="zhang")
    for who in ("zhang", "compliance"):
        with pytest.raises(Forbidden):
            service.update_group(session, principal=principal_of(staff[who]), group_id=g.id, positioning="product")
        with pytest.raises(Forbidden):
            service.create_set(session, principal=principal_of(staff[who]), name="x")
    ops = principal_of(staff["ops"])
    service.update_group(session, principal=ops, group_id=g.id, positioning="product", tags="基金, 定投，基金")
    assert (g.positioning, service.list_groups(session, principal=ops).rows[0].tags) == ("product", ["基金", "定投"])
    entries = [e for e in audit.list_entries(session, corp_id=corp.id) if e.action == "group.updated"]
    assert entries and entries[0].detail == {"positioning": "product", "tags": ["基金", "定投"]}
    with pytest.raises(InvalidInput) as bad:
        service.update_group(session, principal=ops, group_id=g.id, tags=["x" * 31])
    assert bad.value.field == "tags"
    with pytest.raises(InvalidInput) as bad:
        service.update_group(session, principal=ops, group_id=g.id, positioning="vip")
    assert bad.value.field == "positioning"
    with pytest.raises(NotFound):
        service.update_group(session, principal=ops, group_id=g.id, group_set_id=999_999_999)


def test_the_group_page_names_customers_masked_and_counts_joins_per_day(session, org):
    corp, staff = org
    he = make_customer(session, corp.id, userid="zhang", name="何静")
    cid = chat_id()
    day = dt.datetime(2026, 3, 10, 1, 0, tzinfo=dt.UTC)  # 09:00 in Shanghai
    members = [{"userid": "zhang", "type": 1, "join_scene": 1, "join_time": day},
               {"userid": he.external_userid, "join_time": day, "join_scene": 2, "invitor": "zhang"},
               {"userid": external_id(), "name": "罗伯特", "join_time": day}]
    group, _ = sync.apply_group_chat(session, corp_id=corp.id, detail=wecom_chat(cid, name="g", owner="zhang",
                                                                                 members=members))
    detail = service.group_detail(session, principal=principal_of(staff["ops"]), group_id=group.id)
    names = [(m.display_name, m.member_type, m.invitor_name) for m in detail.members]
    assert ("何*", "customer", "张顾问") in names and ("罗**", "customer", "") in names
    assert ("张顾问", "staff", "") in names
    assert all(m.display_name != he.external_userid for m in detail.members)
    series = service.joins_and_leaves(session, group_id=group.id, days=3, today=dt.date(2026, 3, 11))
    assert series == {"x": ["2026-03-09", "2026-03-10", "2026-03-11"], "joins": [0, 2, 0], "leaves": [0, 0, 0]}


def test_the_nightly_sync_enqueues_one_full_sync_per_connected_corp_per_day(session, org):
    from customers.factories import job_context
    from siyu.communities import jobs
    from siyu.jobs.registry import builtin_schedules

    corp, _ = org
    assert any(s.key == "communities.daily_sync" and s.cron.startswith("40 2") for s in builtin_schedules())
    corp.wecom_corp_id = "wwgroups" + str(corp.id)
    session.flush()
    jobs.daily_sync(session, {}, job_context(corp.id))
    jobs.daily_sync(session, {}, job_context(corp.id, job_id=2))
    syncs = session.scalars(select(Job).where(Job.name == jobs.SYNC_CORP, Job.corp_id == corp.id)).all()
    assert len(syncs) == 1 and syncs[0].queue == "wecom"


def test_a_group_job_without_a_chat_id_fails_for_good(session, org):
    from customers.factories import job_context
    from siyu.communities import jobs
    from siyu.jobs.registry import PermanentFailure

    corp, _ = org
    for payload in ({}, {"chat_id": ""}, {"chat_id": "x" * 65}, {"chat_id": 5}):
        with pytest.raises(PermanentFailure):
            jobs.group_updated(session, payload, job_context(corp.id))
