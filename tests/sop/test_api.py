"""REST API of SOP: scopes, a set's calendar with states, slots with bad input named by field,
enrolments for events Siyu does not see (a maturity), and another corp's set is not found."""

from __future__ import annotations

import datetime as dt

from communities.factories import make_group
from customers.factories import make_customer
from siyu.communities.models import GroupSet
from siyu.sop.models import SopJourneySend
from tenancy.factories import api_client, make_corp, make_staff


def _set(session, corp):
    group_set = GroupSet(corp_id=corp.id, name="产品群组", positioning="product")
    session.add(group_set)
    session.flush()
    make_group(session, corp.id, name="产品1群", owner="zhang").group_set_id = group_set.id
    session.flush()
    return group_set


def test_calendar_slots_and_scopes(session):
    corp = make_corp(session)
    make_staff(session, corp, wecom_userid="zhang")
    group_set = _set(session, corp)
    reader, _ = api_client(session, corp, scopes=("sop:read",))
    writer, _ = api_client(session, corp, scopes=("sop:write", "sop:read"))
    body = {"title": "产品解读", "content_type": "product", "time": "09:30", "weekdays": [0, 2, 4],
            "text": "本周产品解读，市场有风险，投资需谨慎。"}
    assert reader.post(f"/api/v1/sop/group-sets/{group_set.id}/slots", json=body).status_code == 403
    made = writer.post(f"/api/v1/sop/group-sets/{group_set.id}/slots", json=body)
    assert made.status_code == 201 and [s["weekday"] for s in made.json()] == [0, 2, 4]
    bad = writer.post(f"/api/v1/sop/group-sets/{group_set.id}/slots", json={**body, "content_type": "ads"})
    assert bad.status_code == 422 and "content_type" in bad.text
    cal = reader.get(f"/api/v1/sop/group-sets/{group_set.id}/calendar", params={"start": "2027-03-01"}).json()
    entries = [e for d in cal["days"] for e in d["entries"]]
    assert [e["local_time"] for e in entries] == ["09:30"] * 3
    assert {e["state"] for e in entries} == {"held"}, "not approved yet"
    other = make_corp(session)
    stranger, _ = api_client(session, other, scopes=("sop:read",))
    assert stranger.get(f"/api/v1/sop/group-sets/{group_set.id}/calendar").status_code == 404


def test_enrol_for_a_maturity(session):
    from siyu.sop import service
    from siyu.tenancy.principal import Principal

    corp = make_corp(session)
    customer = make_customer(session, corp.id, userid="zhang")
    ops = Principal(corp_id=corp.id, kind="system", label="test")
    journey = service.create_journey(session, principal=ops, name="到期提醒", event="maturity")
    service.add_step(session, principal=ops, journey_id=journey.id, day_offset=-3, time="10:00", title="到期前3天",
                     text="您持有的产品将于3天后到期，可提前规划资金安排。")
    client, _ = api_client(session, corp, scopes=("sop:write",))
    maturity = (dt.datetime.now(dt.UTC) + dt.timedelta(days=10)).isoformat()
    done = client.post(f"/api/v1/sop/journeys/{journey.id}/enrolments",
                       json={"customer_id": customer.id, "event_at": maturity, "advisor_userid": "zhang"})
    assert done.status_code == 201 and len(done.json()["planned"]) == 1
    due = dt.datetime.fromisoformat(done.json()["planned"][0])
    assert (due.astimezone(service.CALENDAR_ZONE).hour, due.astimezone(service.CALENDAR_ZONE).minute) == (10, 0)
    again = client.post(f"/api/v1/sop/journeys/{journey.id}/enrolments",
                        json={"customer_id": customer.id, "event_at": maturity, "advisor_userid": "zhang"})
    assert again.json()["planned"] == [] and session.query(SopJourneySend).filter_by(corp_id=corp.id).count() == 1
    missing = client.post(f"/api/v1/sop/journeys/{journey.id}/enrolments",
                          json={"customer_id": 2**40, "event_at": maturity, "advisor_userid": "zhang"})
    assert missing.status_code == 404 and "customer_id" in missing.text
