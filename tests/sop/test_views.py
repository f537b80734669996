"""Console pages of SOP: building a set's week (weekly and dated slots, a working-days slot), the
calendar in week and month with each slot time's state, templates applied to sets, owners' tasks,
customer SOPs; bad input names its field; advisors read and change nothing."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from communities.factories import make_group
from compliance.gate import approve_all
from siyu.communities.models import GroupSet
from siyu.db import utcnow
from siyu.sop import service
from siyu.sop.models import SopSend, SopSlot
from tenancy.factories import console_user, make_corp, make_staff


@pytest.fixture
def corp(session):
    corp = make_corp(session)
    make_staff(session, corp, name="李顾问", wecom_userid="li")
    group_set = GroupSet(corp_id=corp.id, name="稳健理财群组", positioning="product")
    session.add(group_set)
    session.flush()
    for i, owner in enumerate(("zhang", "zhang", "li")):
        make_group(session, corp.id, name=f"稳健理财{i + 1}群", owner=owner).group_set_id = group_set.id
    session.flush()
    return corp, None, group_set


def _week_form(**kw):
    form = {"title": "产品解读", "content_type": "product", "time": "09:30", "channel": "group",
            "text": "本周稳健理财产品解读，市场有风险，投资需谨慎。"}
    form.update(kw)
    return form


def test_build_a_week_and_see_each_slot_in_the_calendar(session, corp):
    corp, _zhang, group_set = corp
    user = console_user(session, corp, roles=["operations"])
    made = user.post(f"/sop/sets/{group_set.id}/slots", {**_week_form(), "weekday": ["0", "2", "4"]},
                     follow_redirects=False)
    assert made.status_code == 303, made.text[-2000:]
    games = user.post(f"/sop/sets/{group_set.id}/slots",
                      {**_week_form(title="周二周四互动游戏", content_type="interaction", time="20:00",
                                    text="互动小游戏：猜猜今天的沪深300收盘点位。"), "weekday": ["1", "3"]},
                      follow_redirects=False)
    assert games.status_code == 303
    monday = dt.date(2026, 12, 14)
    page = user.get(f"/sop/sets/{group_set.id}", params={"start": monday.isoformat()})
    assert page.status_code == 200
    assert page.text.count('data-testid="entry"') == 5, "Mon/Wed/Fri product + Tue/Thu games"
    assert "待审批" in page.text or "合规暂缓" in page.text, "not yet approved: shown as held by compliance"
    approve_all(session, corp.id)
    page = user.get(f"/sop/sets/{group_set.id}", params={"start": monday.isoformat()})
    assert page.text.count('data-state="planned"') == 5
    month = user.get(f"/sop/sets/{group_set.id}", params={"view": "month", "start": "2027-03-10"})
    assert month.status_code == 200 and month.text.count('data-testid="entry"') == 25, "Mon 1 March – Sun 4 April"

    bad = user.post(f"/sop/sets/{group_set.id}/slots", _week_form(time="25:00", weekday="1"))
    assert bad.status_code == 422 and 'data-field="time"' in bad.text
    none = user.post(f"/sop/sets/{group_set.id}/slots", _week_form())
    assert none.status_code == 422 and 'data-field="weekdays"' in none.text


def test_working_days_only_skips_public_holidays(session, corp):
    corp, _zhang, group_set = corp
    user = console_user(session, corp, roles=["operations"])
    user.post(f"/sop/sets/{group_set.id}/slots", {**_week_form(working_days_only="1"),
                                                  "weekday": [str(d) for d in range(7)]})
    for slot in session.scalars(select(SopSlot).where(SopSlot.corp_id == corp.id)):
        slot.created_at = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)  # the slot existed back then
    session.flush()
    # 2026-10-01..07: National Day (holidays); 2026-10-10 (Saturday) is a make-up working day.
    page = user.get(f"/sop/sets/{group_set.id}", params={"view": "month", "start": "2026-10-01"}).text
    assert 'data-day="2026-10-01"' in page
    day = page.split('data-day="2026-10-01"')[1].split('data-testid="day"')[0]
    assert 'data-testid="entry"' not in day, "a public holiday has no working-days slot"
    saturday = page.split('data-day="2026-10-10"')[1].split('data-testid="day"')[0]
    assert 'data-testid="entry"' in saturday, "a make-up working day has it"


def test_a_template_applied_to_two_sets_and_the_owners_tasks(session, corp):
    corp, _none, group_set = corp
    advisor = console_user(session, corp, roles=["advisor"], name="张顾问", wecom_userid="zhang")
    other = GroupSet(corp_id=corp.id, name="福利群组", positioning="benefit")
    session.add(other)
    session.flush()
    make_group(session, corp.id, name="福利1群", owner="zhang").group_set_id = other.id
    user = console_user(session, corp, roles=["operations"])
    made = user.post("/sop/templates", {"name": "标准周", "description": "一三五产品，二四互动"},
                     follow_redirects=False)
    template_id = int(made.headers["location"].rsplit("/", 1)[1])
    user.post(f"/sop/templates/{template_id}/slots", {**_week_form(), "weekday": ["4"]})
    for s in (group_set, other):
        applied = user.post(f"/sop/sets/{s.id}/templates", {"template_id": str(template_id)}, follow_redirects=False)
        assert applied.status_code == 303
    approve_all(session, corp.id)
    now = utcnow()
    planned = service.plan(session, corp_id=corp.id, start=now, end=now + dt.timedelta(days=7), enqueue_jobs=False)
    assert planned.runs == 2, "one Friday in the coming week for each set, from one approved template slot"
    owners = sorted(session.scalars(select(SopSend.owner_userid).where(SopSend.corp_id == corp.id)))
    assert owners == ["li", "zhang", "zhang"]

    tasks = advisor.get("/sop/tasks")
    assert tasks.status_code == 200 and tasks.text.count('data-testid="task-row"') == 2, "zhang's own sends"
    assert advisor.post(f"/sop/sets/{group_set.id}/slots", {**_week_form(), "weekday": ["1"]}).status_code == 403
    ops_tasks = user.get("/sop/tasks").text
    assert ops_tasks.count('data-testid="task-row"') == 3


def test_customer_sop_with_steps(session, corp):
    corp, _zhang, _set = corp
    user = console_user(session, corp, roles=["operations"])
    made = user.post("/sop/journeys", {"name": "新客7天", "event": "added"}, follow_redirects=False)
    assert made.status_code == 303
    journey_id = int(made.headers["location"].rsplit("/", 1)[1])
    ok = user.post(f"/sop/journeys/{journey_id}/steps",
                   {"day_offset": "1", "time": "10:00", "title": "第1天问候",
                    "text": "您好，欢迎加入，有问题随时联系我。"},
                   follow_redirects=False)
    assert ok.status_code == 303
    bad = user.post(f"/sop/journeys/{journey_id}/steps", {"day_offset": "x", "time": "10:00", "title": "t",
                                                          "text": "好"})
    assert bad.status_code == 422 and 'data-field="day_offset"' in bad.text
    page = user.get(f"/sop/journeys/{journey_id}").text
    assert "第1天问候" in page


def test_an_administrator_sets_the_reminders_application(session, corp):
    corp, _none, _set = corp
    admin = console_user(session, corp, roles=["administrator"])
    assert admin.post("/sop/settings", {"app_agent_id": "1000002", "notice_lead_minutes": "45",
                                        "confirm_window_minutes": "90", "late_after_minutes": "5"},
                      follow_redirects=False).status_code == 303
    settings = service.settings_for(session, corp_id=corp.id)
    assert (settings.app_agent_id, settings.notice_lead_minutes, settings.confirm_window_minutes) == (1000002, 45, 90)
    bad = admin.post("/sop/settings", {"app_agent_id": "x", "notice_lead_minutes": "45"})
    assert bad.status_code == 422 and 'data-field="app_agent_id"' in bad.text
    # The settings form is on the page once, in its body (not in the page's <title>).
    page = admin.get("/sop").text
    title = page.split("<title>", 1)[1].split("</title>", 1)[0]
    assert "<" not in title and page.count('data-testid="settings-form"') == 1
    ops = console_user(session, corp, roles=["operations"])
    assert ops.post("/sop/settings", {"app_agent_id": "1"}).status_code == 403


def test_home_tiles_show_sends_to_confirm_and_trouble(session, corp):
    corp, _none, group_set = corp
    advisor = console_user(session, corp, roles=["advisor"], name="张顾问", wecom_userid="zhang")
    ops = console_user(session, corp, roles=["operations"])
    now = utcnow()
    ops.post(f"/sop/sets/{group_set.id}/slots", {**_week_form(), "date": service.local_day(now).isoformat(),
                                                 "time": "00:00"})
    approve_all(session, corp.id)
    session.execute(SopSlot.__table__.update().where(SopSlot.corp_id == corp.id)
                    .values(created_at=now - dt.timedelta(days=2)))
    service.plan(session, corp_id=corp.id, start=now - dt.timedelta(days=1), end=now, enqueue_jobs=False)
    for send in session.scalars(select(SopSend).where(SopSend.corp_id == corp.id, SopSend.owner_userid == "zhang")):
        send.state = "waiting"
    session.flush()
    home = advisor.get("/").text
    assert "待在企业微信确认的群SOP" in home
    assert "24小时内延迟、错过或被拦截的群SOP" in ops.get("/").text


def test_a_bad_start_date_is_named(session, corp):
    corp, _none, group_set = corp
    user = console_user(session, corp, roles=["operations"])
    bad = user.get(f"/sop/sets/{group_set.id}", params={"start": "2026-13-40"})
    assert bad.status_code == 422 and 'data-field="start"' in bad.text
    assert user.get("/sop/sets/999999999").status_code == 404
