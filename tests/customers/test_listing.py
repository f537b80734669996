"""The list's query plans give the same answers: every way of reading (by id, testing each customer
along the ordered index, probing held sets, the per-stage index range counts) is checked against a
plain computation in Python over the same customers, for each role's visibility and many filters."""

from __future__ import annotations

import datetime as dt
import itertools
import random

import pytest
from sqlalchemy import select

from customers.factories import T0, add_payload, job_context, make_customer
from siyu.customers import jobs, listing, service
from siyu.customers.models import Customer, CustomerFollow, CustomerTag, CustomerTagLink
from siyu.tenancy import service as tenancy
from tenancy.factories import make_corp, make_staff, principal_of

TAGS = [("t-a", "意向", "基金"), ("t-b", "意向", "理财"), ("t-c", "风险等级", "C3")]
STATES = ["ad-douyin-1", "ad-douyin-2", "branch-xuhui", None]


@pytest.fixture
def world(session):
    rng = random.Random(7)
    corp = make_corp(session)
    east = tenancy.create_department(session, corp_id=corp.id, name="东区")
    advisors = [make_staff(session, corp, wecom_userid=f"a{i}", department_id=east.id if i < 3 else None)
                for i in range(5)]
    lead = make_staff(session, corp, wecom_userid="lead", department_id=east.id, sees_department=True)
    ops = make_staff(session, corp, roles=["operations"])
    for i in range(70):
        advisor = rng.choice(advisors)
        customer = make_customer(session, corp.id, userid=advisor.wecom_userid, name=f"客户{i}",
                                 at=T0 + dt.timedelta(hours=rng.randint(0, 24 * 40)), state=rng.choice(STATES),
                                 tags=rng.sample(TAGS, rng.randint(0, 2)),
                                 stage=rng.choice(["new", "activated", "invested", "dormant"]))
        if rng.random() < 0.3:  # a second advisor
            other = rng.choice(advisors)
            jobs.upsert_contact(session, add_payload(other.wecom_userid, customer.external_userid,
                                                     at=customer.first_added_at + dt.timedelta(days=1),
                                                     state=rng.choice(STATES)), job_context(corp.id))
        if rng.random() < 0.15:
            jobs.contact_lost(session, add_payload(advisor.wecom_userid, customer.external_userid,
                                                   at=customer.first_added_at + dt.timedelta(days=2)),
                              job_context(corp.id))
    session.flush()
    return corp, advisors, lead, ops


def _expected(session, corp_id: int, visible: set[int] | None, f: service.CustomerFilters) -> list[Customer]:
    """The answer computed in Python from the rows themselves."""
    start = listing._day_start(f.added_from) if f.added_from else None
    end = listing._day_start(f.added_to + dt.timedelta(days=1)) if f.added_to else None
    out = []
    for c in session.scalars(select(Customer).where(Customer.corp_id == corp_id)):
        follows = session.scalars(select(CustomerFollow).where(CustomerFollow.customer_id == c.id)).all()
        active_staff = {fl.staff_id for fl in follows if fl.status == "active"}
        tags = set(session.scalars(select(CustomerTagLink.tag_id).where(CustomerTagLink.customer_id == c.id)))
        if visible is not None and not active_staff & visible:
            continue
        if f.staff_id is not None and f.staff_id not in active_staff:
            continue
        if f.stage and c.stage != f.stage:
            continue
        if f.tag_id is not None and f.tag_id not in tags:
            continue
        if f.state and not any((fl.state or "").startswith(f.state) for fl in follows):
            continue
        if start and c.first_added_at < start or end and c.first_added_at >= end:
            continue
        if f.q and f.q not in (c.name, c.external_userid):
            continue
        out.append(c)
    return sorted(out, key=lambda c: (c.first_added_at, c.id), reverse=True)


def _all_pages(session, principal, f) -> list[int]:
    ids, after = [], None
    while True:
        page = service.list_customers(session, principal=principal, filters=f, after=after, limit=7)
        ids += [r.id for r in page.rows]
        if page.next_after is None:
            return ids
        after = page.next_after


@pytest.mark.parametrize("strategy", ["chosen", "by_id", "tested", "probed"])
def test_every_plan_gives_the_plain_answer(session, world, monkeypatch, strategy):
    corp, advisors, lead, ops = world
    if strategy == "by_id":  # every set is small enough to read by id
        monkeypatch.setattr(listing, "LIST_READ_BY_ID_BELOW", 10**9)
        monkeypatch.setattr(listing, "COUNT_READ_BY_ID_BELOW", 10**9)
    elif strategy in ("tested", "probed"):  # never by id
        monkeypatch.setattr(listing, "LIST_READ_BY_ID_BELOW", 0)
        monkeypatch.setattr(listing, "COUNT_READ_BY_ID_BELOW", 0)
    tag_ids = list(session.scalars(select(CustomerTag.id).where(CustomerTag.corp_id == corp.id)))
    some_name = session.scalar(select(Customer).where(Customer.corp_id == corp.id).limit(1)).name
    filter_sets = [
        {}, {"stage": "invested"}, {"staff_id": advisors[1].id}, {"tag_id": tag_ids[0]}, {"state": "ad-douyin"},
        {"added_from": "2026-03-10", "added_to": "2026-03-25"}, {"q": some_name},
        {"stage": "new", "staff_id": advisors[0].id, "tag_id": tag_ids[1]},
        {"state": "branch", "tag_id": tag_ids[2], "added_from": "2026-03-05"},
        {"stage": "dormant", "state": "ad-"}, {"q": some_name, "tag_id": tag_ids[0]},
    ]
    principals = [(principal_of(ops), None), (principal_of(advisors[0]), {advisors[0].id}),
                  (principal_of(lead), {a.id for a in advisors[:3]} | {lead.id})]
    for (principal, visible), raw in itertools.product(principals, filter_sets):
        f = service.make_filters(**raw)
        expected = _expected(session, corp.id, visible, f)
        if f.staff_id is not None and visible is not None and f.staff_id not in visible:
            expected = []
        assert _all_pages(session, principal, f) == [c.id for c in expected], (principal.label, raw)
        counts = service.stage_counts(session, principal=principal, filters=f)
        want = dict.fromkeys(service.STAGES, 0)
        for c in expected:
            want[c.stage] += 1
        assert counts == want, (principal.label, raw)


def test_stage_copies_follow_the_customer(session, world):
    corp, advisors, _lead, _ops = world
    customer = session.scalar(select(Customer).where(Customer.corp_id == corp.id, Customer.stage == "invested")
                              .limit(1))
    from siyu.customers import contacts

    contacts.change_stage(session, customer, "reinvested", at=T0, actor="test")
    session.flush()
    assert set(session.scalars(select(CustomerFollow.stage).where(CustomerFollow.customer_id == customer.id))) \
        == {"reinvested"}
    assert set(session.scalars(select(CustomerTagLink.stage).where(CustomerTagLink.customer_id == customer.id))) \
        <= {"reinvested"}
