"""Group health from a known history: every figure, the score and the dying verdict are computed by
hand here (the formula of siyu.communities.health) and compared; the daily job stores a day once and
announces a group turning dying once; lifetime per positioning."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from communities.factories import wecom_chat
from customers.factories import external_id, make_customer
from siyu.communities import health, sync
from siyu.communities.models import GroupHealth
from siyu.compliance import archive
from siyu.customers import contacts
from siyu.customers.listing import CALENDAR_ZONE
from siyu.jobs.events import subscribe
from siyu.jobs.models import Job
from tenancy.factories import make_corp, make_staff

DAY = dt.date(2026, 3, 20)  # the window: 3-14 00:00 to 3-21 00:00, Shanghai
CREATED = dt.datetime(2026, 3, 1, 9, 0, tzinfo=CALENDAR_ZONE)


@subscribe("group.dying", name="tests.communities.dying")
def _dying(session, payload, job):  # so that publishing enqueues a job the test can count
    pass


def sh(month_day: str, hm: str) -> dt.datetime:
    return dt.datetime.fromisoformat(f"2026-{month_day}T{hm}:00").replace(tzinfo=CALENDAR_ZONE)


@pytest.fixture
def history(session):
    corp = make_corp(session)
    make_staff(session, corp, name="张顾问", wecom_userid="zhang")
    known = [make_customer(session, corp.id, userid="zhang", name=f"客户{i}") for i in range(3)]
    for c in known:
        c.firm_customer_id = f"F{c.id}"  # verified
    contacts.record_event(session, corp_id=corp.id, customer_id=known[0].id, kind="invested", at=sh("03-02", "10:00"),
                          actor="firm", detail={}, source_key="test:invested")
    first = [c.external_userid for c in known] + [external_id() for _ in range(7)]  # 10 at the start
    joiners = [(external_id(), "way-a", sh("03-15", "08:00")), (external_id(), None, sh("03-19", "08:00"))]
    leavers = first[7:]  # 3 leave in the window
    cid = "wr" + external_id()[2:]
    owner = {"userid": "zhang", "type": 1, "join_scene": 1, "join_time": CREATED}
    members = [owner] + [{"userid": e, "join_time": CREATED} for e in first]
    group, _ = sync.apply_group_chat(session, corp_id=corp.id, at=CREATED,
                                     detail=wecom_chat(cid, name="新手课堂9期", owner="zhang", members=members,
                                                       created=CREATED))
    for ext, state, at in joiners:
        members.append({"userid": ext, "join_time": at, "state": state} if state else {"userid": ext, "join_time": at})
        sync.apply_group_chat(session, corp_id=corp.id, at=at,
                              detail=wecom_chat(cid, name=group.name, owner="zhang", members=members, created=CREATED))
    for i, ext in enumerate(leavers):
        members = [m for m in members if m["userid"] != ext]
        sync.apply_group_chat(session, corp_id=corp.id, at=sh("03-17", f"1{i}:00"), quit_scene=0, left_ids=[ext],
                              detail=wecom_chat(cid, name=group.name, owner="zhang", members=members, created=CREATED))
    a, b, c = first[0], first[1], first[2]
    said = [(a, "03-10", "10:00"),  # before the window
            (a, "03-15", "10:00"), ("zhang", "03-15", "10:20"),  # a wait of 20 minutes
            (b, "03-16", "09:00"), (c, "03-16", "09:05"), ("zhang", "03-16", "10:00"),  # 60 minutes
            (a, "03-18", "20:00")]  # never answered: open until 3-21 00:00, 28 h
    archive.ingest_records(session, corp_id=corp.id, source="file", records=[
        archive.ArchiveRecord(msgid=f"h{i}", sender=who, tolist=(), roomid=cid, msgtype="text",
                              sent_at=sh(md, hm).astimezone(dt.UTC), text="早上好")
        for i, (who, md, hm) in enumerate(said)])
    return corp, group


def test_the_figures_of_a_known_week(session, history):
    _, group = history
    f = health.compute(session, group=group, day=DAY)
    assert (f.customers_at_start, f.customers, f.joins, f.leaves) == (10, 9, 2, 3)
    assert f.joins_by_state == {"way-a": 1, "": 1}
    assert (f.messages, f.customer_messages, f.speakers, f.messages_per_day) == (6, 4, 3, 0.9)
    assert (f.owner_replies, f.owner_waiting, f.owner_median_wait_min) == (2, 1, 60.0)
    assert f.days_since_content == 4, "the owner's last message, 3-16 (until SOP slots are recorded)"
    assert (f.verified_share, f.invested_share) == (round(3 / 9, 3), round(1 / 9, 3))
    by_hand = {"activity": 1.0, "content": (14 - 4) / 12, "replies": (480 - 60) / 450, "retention": 0.0,
               "standing": (3 / 9 + 1 / 9) / 2}
    assert f.parts == {k: round(v, 3) for k, v in by_hand.items()}
    assert f.score == round(100 * (0.35 * 1 + 0.25 * 10 / 12 + 0.15 * 420 / 450 + 0 + 0.10 * 2 / 9)) == 72
    assert (f.dying, f.reasons) == (True, ["shrinking"]), "3 of 10 customers left in a week"


def test_a_quiet_week_is_dying_and_the_daily_job_says_so_once(session, history):
    corp, group = history
    later = DAY + dt.timedelta(days=14)  # nobody wrote since 3-18
    f = health.compute(session, group=group, day=later)
    assert (f.messages, f.speakers, f.days_since_content, f.leaves) == (0, 0, 18, 0)
    assert f.parts["content"] == 0.0 and f.parts["activity"] == 0.0
    assert f.reasons == ["quiet", "low_score"] and f.dying

    assert health.store_corp(session, corp_id=corp.id, day=later) == {"groups": 1, "dying": 1, "turned_dying": 1}
    assert health.store_corp(session, corp_id=corp.id, day=later) == {"groups": 1, "dying": 1, "turned_dying": 1}
    row, turned = health.store(session, group=group, day=later + dt.timedelta(days=1))
    assert row.dying and not turned, "still dying: no second alert"
    assert session.scalar(select(func.count()).select_from(GroupHealth).where(GroupHealth.group_id == group.id)) == 2
    assert session.scalar(select(func.count()).select_from(Job).where(
        Job.corp_id == corp.id, Job.name == "event:group.dying:tests.communities.dying")) == 1
    assert health.latest(session, group_ids=[group.id])[group.id].day == later + dt.timedelta(days=1)


def test_series_per_day(session, history):
    _, group = history
    s = health.series(session, group=group, days=7, today=DAY)
    assert s["x"][0] == "2026-03-14" and s["x"][-1] == "2026-03-20"
    assert s["members"] == [10, 11, 11, 8, 8, 9, 9]
    assert s["messages"] == [0, 2, 3, 0, 1, 0, 0]
    assert s["speakers"] == [0, 1, 2, 0, 1, 0, 0]


def test_lifetime_per_positioning(session):
    corp = make_corp(session)
    make_staff(session, corp, name="张顾问", wecom_userid="zhang")
    now = dt.datetime(2026, 5, 1, 4, 0, tzinfo=dt.UTC)

    def group(positioning, created, last_customer_at=None, dismissed=None):
        ext, cid = external_id(), "wr" + external_id()[2:]
        g, _ = sync.apply_group_chat(session, corp_id=corp.id, at=created, detail=wecom_chat(
            cid, name=cid, owner="zhang", created=created,
            members=[{"userid": "zhang", "type": 1}, {"userid": ext, "join_time": created}]))
        g.positioning = positioning
        if last_customer_at:
            archive.ingest_records(session, corp_id=corp.id, source="file", records=[archive.ArchiveRecord(
                msgid=cid, sender=ext, tolist=(), roomid=cid, msgtype="text", sent_at=last_customer_at, text="hi")])
        if dismissed:
            sync.mark_dismissed(session, corp_id=corp.id, chat_id=cid, at=dismissed)
        return g

    d = dt.timedelta(days=1)
    ids = [group("novice_class", now - 40 * d, now - 35 * d).id,  # quiet for 35 days: ended after 5
           group("novice_class", now - 40 * d, now - 2 * d).id,  # alive
           group("benefit", now - 20 * d, dismissed=now - 10 * d).id,  # dismissed after 10 days
           group("benefit", now - 3 * d).id]  # young, nobody wrote yet: not ended
    rows = {r.positioning: r for r in health.lifetimes(session, corp_id=corp.id, group_ids=ids, now=now)}
    assert [(r.groups, r.ended, r.median_days, r.within_week, r.within_month) for r in rows.values()] == [
        (2, 1, 10.0, 0, 1), (2, 1, 5.0, 1, 1)]
    assert list(rows) == ["benefit", "novice_class"]
