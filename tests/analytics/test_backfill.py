"""The backfill writes the events of what was stored before, with the feed's own source keys: an add
the feed recorded live is not recorded again, and a second run writes nothing."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from sqlalchemy import select

from customers.factories import T0, add_payload, external_id, job_context, make_customer
from siyu.analytics import backfill
from siyu.analytics import jobs as feed
from siyu.analytics.models import AnalyticsEvent
from siyu.communities.models import GroupChat, GroupMember
from siyu.customers import contacts
from siyu.customers.models import FollowStatus
from siyu.integration.models import FirmOrder


@pytest.fixture
def corp(session):
    from siyu.tenancy import service

    return service.create_corp(session, slug=f"bf-{uuid.uuid4().hex[:8]}", name="回填测试银行")


def _events(session, corp_id):
    return sorted((e.type, e.customer_id, e.source_key, e.channel, e.advisor, e.amount_fen, e.group_key)
                  for e in session.scalars(select(AnalyticsEvent).where(AnalyticsEvent.corp_id == corp_id)))


def test_backfill_writes_what_is_stored_once_and_never_doubles_the_live_feed(session, corp):
    # A: added while the feed ran (the add's shared job recorded it live).
    ext_a = external_id()
    payload = add_payload("zhangsan", ext_a, state="ad-spring", event_id=98_765_001)
    contacts.record_add(session, corp_id=corp.id, external_userid=ext_a, wecom_userid="zhangsan", at=T0,
                        state="ad-spring", source_key=f"wecom:{payload['inbox_event_id']}:added")
    feed.customer_added(session, payload, job_context(corp.id))
    a = contacts.get_by_external_id(session, corp_id=corp.id, external_userid=ext_a)
    # B: added before the feed existed, later lost; an order and a group stay.
    b = make_customer(session, corp.id, userid="lisi", state="sms-1", at=T0 + dt.timedelta(days=1))
    contacts.record_end(session, corp_id=corp.id, external_userid=b.external_userid, wecom_userid="lisi",
                        at=T0 + dt.timedelta(days=3), status=FollowStatus.LOST, source_key="wecom:98765002:lost")
    order = FirmOrder(corp_id=corp.id, kind="investment", firm_order_id="O-1", customer_id=a.id,
                      firm_customer_id="F-1", amount_fen=160_000, product_code="WM001",
                      occurred_at=T0 + dt.timedelta(days=2), fields={})
    group = GroupChat(corp_id=corp.id, chat_id="wrGROUP1", owner_userid="zhangsan")
    session.add_all([order, group])
    session.flush()
    stay = GroupMember(corp_id=corp.id, group_id=group.id, member_id=ext_a, member_type="customer",
                       customer_id=a.id, joined_at=T0 + dt.timedelta(hours=2), left_at=T0 + dt.timedelta(days=5),
                       state="jw-1")
    session.add(stay)
    session.flush()

    first = backfill.run(session, corp_id=corp.id, batch=1)  # batches of one row: the paging is exercised
    assert first == {"customer.added/lost": 2, "customer.verified": 0, "group.joined/left": 2,
                     "order.invested/redeemed": 1}, "A's add was recorded live: not again"
    expected = sorted([
        ("customer.added", a.id, "wecom:98765001:added", "ad-spring", "zhangsan", None, None),
        ("customer.added", b.id, next(e.source_key for e in _timeline(session, b.id, "added")), "sms-1", "lisi",
         None, None),
        ("customer.lost", b.id, "wecom:98765002:lost", None, "lisi", None, None),
        ("order.invested", a.id, f"firm_order:{order.id}", None, None, 160_000, None),
        ("group.joined", a.id, f"stay:{stay.id}:joined", None, "zhangsan", None, "wrGROUP1"),
        ("group.left", a.id, f"stay:{stay.id}:left", None, "zhangsan", None, "wrGROUP1"),
    ])
    assert _events(session, corp.id) == expected

    assert backfill.run(session, corp_id=corp.id) == dict.fromkeys(first, 0), "a second run writes nothing"
    assert _events(session, corp.id) == expected


def test_a_follow_without_an_add_on_the_timeline_is_an_add(session, corp):
    from siyu.customers.models import CustomerEvent, CustomerFollow

    c = make_customer(session, corp.id, userid="wangwu", state="poster-9")
    for ev in _timeline(session, c.id, "added"):
        session.delete(ev)  # found by a full sync: no add event was ever received
    session.flush()
    (follow,) = session.scalars(select(CustomerFollow).where(CustomerFollow.customer_id == c.id))
    backfill.run(session, corp_id=corp.id)
    assert _events(session, corp.id) == [("customer.added", c.id, f"follow:{follow.id}:added", "poster-9", "wangwu",
                                          None, None)]
    assert not session.scalars(select(CustomerEvent).where(CustomerEvent.customer_id == c.id,
                                                           CustomerEvent.kind == "added")).all()


def _timeline(session, customer_id, kind):
    from siyu.customers.models import CustomerEvent

    return list(session.scalars(select(CustomerEvent).where(CustomerEvent.customer_id == customer_id,
                                                             CustomerEvent.kind == kind)))


def test_the_cli_backfills_a_corp_and_names_an_unknown_one(engine):
    import json

    from typer.testing import CliRunner

    from customers.factories import make_customer as make
    from siyu.cli import app
    from siyu.db import session_scope
    from siyu.tenancy import service

    with session_scope() as s:
        corp = service.create_corp(s, slug=f"bfc-{uuid.uuid4().hex[:8]}", name="命令行回填银行")
        make(s, corp.id, userid="zhaoliu", state="oa-1")
        slug, corp_id = corp.slug, corp.id
    runner = CliRunner()
    first = runner.invoke(app, ["analytics", "backfill", "--corp", slug, "--batch", "2"])
    assert first.exit_code == 0, first.output
    assert json.loads(first.output.strip().splitlines()[-1])["new_events"]["customer.added/lost"] == 1
    again = runner.invoke(app, ["analytics", "backfill", "--corp", slug])
    assert json.loads(again.output.strip().splitlines()[-1])["new_events"]["customer.added/lost"] == 0
    with session_scope() as s:
        assert s.scalar(select(AnalyticsEvent.channel).where(AnalyticsEvent.corp_id == corp_id)) == "oa-1"
    unknown = runner.invoke(app, ["analytics", "backfill", "--corp", "no-such-corp"])
    assert unknown.exit_code == 2 and "no-such-corp" in unknown.output
    with session_scope() as s:  # other tests count what the engines copy
        from sqlalchemy import delete

        s.execute(delete(AnalyticsEvent).where(AnalyticsEvent.corp_id == corp_id))
