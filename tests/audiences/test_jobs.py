"""The daily count: one figure per segment and Shanghai calendar day, a rerun replaces it, a segment
whose rule broke (a tag deleted) is skipped without stopping the others."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from audiences.factories import customer, link, tag
from customers.factories import job_context
from siyu.audiences import jobs, service
from siyu.audiences.models import SegmentCount
from siyu.jobs.models import Job
from tenancy.factories import make_corp, make_staff, principal_of


def test_daily_counts_make_a_history(session, monkeypatch):
    corp = make_corp(session)
    me = principal_of(make_staff(session, corp))
    t = tag(session, corp.id)
    for _ in range(2):
        customer(session, corp.id, stage="invested")
    link(session, customer(session, corp.id), t)
    invested = service.create_segment(session, principal=me, name="已投",
                                      rule={"kind": "stage", "stages": ["invested"]})
    tagged = service.create_segment(session, principal=me, name="有标签", rule={"kind": "tags", "tag_ids": [t.id]})

    # 23:30 UTC on 03-01 is already 03-02 in Shanghai
    late = dt.datetime(2026, 3, 1, 23, 30, tzinfo=dt.UTC)
    service.record_daily_count(session, corp_id=corp.id, segment_id=invested.id, now=late)
    customer(session, corp.id, stage="invested")
    service.record_daily_count(session, corp_id=corp.id, segment_id=invested.id, now=late + dt.timedelta(hours=1))
    service.record_daily_count(session, corp_id=corp.id, segment_id=invested.id, now=late + dt.timedelta(days=1))
    history = service.count_history(session, corp_id=corp.id, segment_id=invested.id)
    assert [(p.day, p.count) for p in history] == [(dt.date(2026, 3, 2), 3), (dt.date(2026, 3, 3), 3)]

    session.delete(session.get(type(t), t.id))  # the tag is gone from the library: that rule no longer holds
    session.flush()
    jobs.count_corp(session, {}, job_context(corp.id))
    counted = {r.segment_id for r in session.scalars(select(SegmentCount).where(SegmentCount.corp_id == corp.id))}
    assert invested.id in counted and tagged.id not in counted
    assert session.get(type(invested), invested.id).last_count == 3


def test_count_all_enqueues_one_job_per_corp_with_segments(session):
    corp, idle = make_corp(session), make_corp(session)
    me = principal_of(make_staff(session, corp))
    service.create_segment(session, principal=me, name="all", rule={"kind": "lost", "lost": False})
    jobs.count_all(session, {}, job_context(corp.id))
    jobs.count_all(session, {}, job_context(corp.id))  # the same day: not twice
    queued = list(session.scalars(select(Job.corp_id).where(Job.name == jobs.COUNT_CORP)))
    assert queued.count(corp.id) == 1 and idle.id not in queued
