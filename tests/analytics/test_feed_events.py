"""The feed's subscribers on the domains' own events, run as a worker would run their jobs: 1-on-1
messages from a chat-archive ingest (one event per ingest, then message.received / message.sent per
message of a known customer), a verification at the gate, group stays; each recorded once however
often its job runs."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from sqlalchemy import func, select

from customers.factories import T0, job_context, make_customer
from integration.test_api import run_events
from siyu.analytics import jobs as feed
from siyu.analytics.models import AnalyticsEvent
from siyu.compliance import archive
from siyu.jobs.models import Job


@pytest.fixture
def corp(session):
    from siyu.tenancy import service

    return service.create_corp(session, slug=f"fe-{uuid.uuid4().hex[:8]}", name="事件订阅银行")


def _events(session, corp_id):
    return sorted((e.type, e.customer_id, e.advisor, e.group_key) for e in session.scalars(
        select(AnalyticsEvent).where(AnalyticsEvent.corp_id == corp_id)) if e.type != "customer.added")


def test_an_archive_ingest_is_one_job_and_each_message_one_event(session, corp):
    from tenancy.factories import make_staff

    make_staff(session, corp, wecom_userid="zhangsan")
    c = make_customer(session, corp.id, userid="zhangsan")
    at = T0 + dt.timedelta(days=1)

    def rec(msgid, sender, to, minutes):
        return archive.ArchiveRecord(msgid=msgid, sender=sender, tolist=(to,), roomid="", msgtype="text",
                                     sent_at=at + dt.timedelta(minutes=minutes), text="您好")

    records = [rec("m1", c.external_userid, "zhangsan", 0), rec("m2", "zhangsan", c.external_userid, 3),
               rec("m3", "wmUNKNOWN", "zhangsan", 5)]  # a customer Siyu does not know: not counted
    archive.ingest_records(session, corp_id=corp.id, records=records, source="file")
    jobs = session.scalar(select(func.count()).select_from(Job).where(
        Job.corp_id == corp.id, Job.name.like("event:chat.direct_messages:%"), Job.state == "queued"))
    assert jobs == 1, "one job per ingest"
    run_events(session, "chat.direct_messages")
    assert _events(session, corp.id) == [("message.received", c.id, "zhangsan", None),
                                         ("message.sent", c.id, "zhangsan", None)]
    archive.ingest_records(session, corp_id=corp.id, records=records, source="file")  # read again: nothing new
    assert run_events(session, "chat.direct_messages") == 0
    assert len(_events(session, corp.id)) == 2


def test_verification_and_group_stays_are_recorded_once(session, corp):
    c = make_customer(session, corp.id, userid="lisi")
    ctx = job_context(corp.id)
    verified = {"verification_id": 4242, "community_id": 1, "method": "sms", "external_userid": c.external_userid,
                "firm_customer_id": None, "at": "2026-03-03T08:00:00+00:00"}
    stay = {"group_id": 1, "stay_id": 77, "chat_id": "wrG1", "customer_id": c.id, "state": "jw-spring",
            "owner_userid": "lisi", "joined_at": "2026-03-04T08:00:00+00:00", "left_at": "2026-03-09T08:00:00+00:00"}
    for _ in range(2):  # a job that runs twice records nothing twice
        feed.customer_verified(session, verified, ctx)
        feed.group_joined(session, stay, ctx)
        feed.group_left(session, stay, ctx)
    feed.customer_verified(session, {**verified, "verification_id": 4243, "external_userid": "wmNOBODY"}, ctx)
    feed.group_joined(session, {**stay, "stay_id": 78, "customer_id": None}, ctx)
    assert _events(session, corp.id) == [("customer.verified", c.id, None, None),
                                         ("group.joined", c.id, "lisi", "wrG1"), ("group.left", c.id, "lisi", "wrG1")]
    row = session.scalar(select(AnalyticsEvent).where(AnalyticsEvent.corp_id == corp.id,
                                                      AnalyticsEvent.type == "group.left"))
    assert (row.join_way, row.ts.isoformat()) == ("jw-spring", "2026-03-09T08:00:00+00:00")
