"""The plan preview (set-based, SQL): every audience member is a recipient or excluded for one
reason, and the reasons add up to the audience; each reason is the one the policy gives."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from customers.factories import make_customer
from siyu.compliance import suitability
from siyu.customers.models import Customer, CustomerFollow
from siyu.delivery import plan, service
from siyu.delivery.models import DeliveryLedger
from siyu.errors import NotFound
from siyu.privacy.service import record_consent
from tenancy.factories import make_corp, make_staff

AT = dt.datetime(2026, 5, 6, 3, 0, tzinfo=dt.UTC)  # 11:00 in Shanghai
NIGHT = dt.datetime(2026, 5, 6, 15, 0, tzinfo=dt.UTC)  # 23:00 in Shanghai


def _setup(session):
    corp = make_corp(session)
    make_staff(session, corp, wecom_userid="zhangsan")
    policy = service.policy_for(session, corp_id=corp.id)
    policy.holdout_basis_points = 0
    suitability.create_product(session, corp_id=corp.id, actor="test", code="FUND-R3", name="平衡混合基金",
                               product_type="fund", risk_level="R3")
    people = {}
    for name in ("ok", "lost", "stranger", "opted", "low", "expired", "none", "capped", "capped7", "ok2"):
        people[name] = make_customer(session, corp.id, userid="wangwu" if name == "stranger" else "zhangsan",
                                     name=name)
    for name in ("ok", "lost", "opted", "capped", "capped7", "ok2"):
        suitability.record_assessment(session, corp_id=corp.id, actor="test", source="manual", level="C4",
                                      customer_ref=people[name].external_userid, assessed_at=AT - dt.timedelta(days=3))
    suitability.record_assessment(session, corp_id=corp.id, actor="test", source="manual", level="C2",
                                  customer_ref=people["low"].external_userid, assessed_at=AT - dt.timedelta(days=3))
    suitability.record_assessment(session, corp_id=corp.id, actor="test", source="manual", level="C5",
                                  customer_ref=people["expired"].external_userid,
                                  assessed_at=AT - dt.timedelta(days=400))
    session.execute(CustomerFollow.__table__.update().where(CustomerFollow.customer_id == people["lost"].id)
                    .values(status="lost"))
    record_consent(session, corp_id=corp.id, actor="test", external_userid=people["opted"].external_userid,
                   purpose="marketing", granted=False, source="advisor", note="电话里说不要营销")
    session.add(DeliveryLedger(corp_id=corp.id, customer_id=people["capped"].id, kind="keyword_marketing",
                               source="k:1", state="sent", at=AT - dt.timedelta(hours=1)))
    for i, days in enumerate((1, 2, 4)):  # three in the last 7 calendar days, none today
        session.add(DeliveryLedger(corp_id=corp.id, customer_id=people["capped7"].id, kind="sop_step",
                                   source=f"s:{i}", state="sent", at=AT - dt.timedelta(days=days)))
    session.add(DeliveryLedger(corp_id=corp.id, customer_id=people["ok2"].id, kind="broadcast", source="b:0",
                               state="aborted", reason="capped_day", at=AT - dt.timedelta(hours=1)))
    session.flush()
    return corp.id, people


def test_every_excluded_customer_is_counted_by_its_reason_and_they_add_up(session):
    corp_id, people = _setup(session)
    audience = select(Customer.id).where(Customer.corp_id == corp_id)
    got = plan.build_plan(session, corp_id=corp_id, audience=audience, at=AT, product_codes=["FUND-R3"])
    assert got.excluded == {"not_friend": 1, "no_advisor": 1, "opted_out": 1, "unsuitable": 3, "capped_day": 1,
                            "capped_7_days": 1}
    assert got.recipients == 2, "ok, and ok2 (an aborted send does not count against the caps)"
    assert got.audience == 10 == got.recipients + sum(got.excluded.values())
    assert got.held == 0
    rows = {cid: (reason, advisor) for cid, reason, advisor, _ext in session.execute(
        plan.plan_rows(session, corp_id=corp_id, audience=audience, at=AT, product_codes=["FUND-R3"]))}
    assert rows[people["ok"].id] == (None, "zhangsan")
    assert {rows[people[n].id][0] for n in ("low", "expired", "none")} == {"unsuitable"}
    assert rows[people["stranger"].id][0] == "no_advisor", "followed only by someone who is not staff in Siyu"


def test_without_products_nobody_is_unsuitable_and_quiet_hours_hold_rather_than_exclude(session):
    corp_id, people = _setup(session)
    audience = select(Customer.id).where(Customer.corp_id == corp_id)
    got = plan.build_plan(session, corp_id=corp_id, audience=audience, at=NIGHT)
    assert "unsuitable" not in got.excluded and got.recipients == 5
    assert got.held == got.recipients and got.release_at == dt.datetime(2026, 5, 7, 0, 0, tzinfo=dt.UTC), \
        "held until 08:00 Shanghai, not excluded"


def test_the_plan_agrees_with_the_policy_for_each_customer(session):
    corp_id, people = _setup(session)
    audience = select(Customer.id).where(Customer.corp_id == corp_id)
    rows = {cid: reason for cid, reason, _a, _e in session.execute(
        plan.plan_rows(session, corp_id=corp_id, audience=audience, at=AT))}
    for name in ("ok", "opted", "capped", "capped7", "ok2", "low"):
        cid = people[name].id
        claim = service.claim(session, corp_id=corp_id, customer_id=cid, kind="broadcast", source=f"cmp:{cid}", at=AT)
        assert (claim.reason or None) == rows[cid], name


def test_a_broadcast_to_a_saved_segment_plans_over_its_members(session):
    """The audience is a saved segment (the audiences domain): its members, no one else."""
    from siyu.audiences import service as audiences
    from siyu.broadcasts import service as broadcasts
    from siyu.customers.contacts import change_stage
    from tenancy.factories import principal_of

    corp_id, people = _setup(session)
    ops = principal_of(make_staff(session, corp_id, roles=["operations"]))
    for name in ("ok", "opted", "low"):
        change_stage(session, people[name], "invested", at=AT, actor="test")
    segment = audiences.create_segment(session, principal=ops, name="已投资客户",
                                       rule={"kind": "stage", "stages": ["invested"]})
    row = broadcasts.create_broadcast(session, principal=ops, name="已投资客户回访",
                                      text="感谢您的信任，本周有理财讲座。", audience={"segment_id": segment.id})
    got = broadcasts.preview(session, row=row, at=AT)
    assert got.audience == 3 and got.recipients == 2 and got.excluded == {"opted_out": 1}
    with pytest.raises(NotFound) as err:
        broadcasts.create_broadcast(session, principal=ops, name="别家的分群", text="你好",
                                    audience={"segment_id": 10**9})
    assert getattr(err.value, "field", None) == "segment_id"
