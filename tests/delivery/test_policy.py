"""The delivery policy: caps counted across kinds by Asia/Shanghai calendar day (checked against a
plain reference over generated send histories), WeCom's allowance, quiet hours that hold and release,
the opt-out, and the global control group (stable, re-drawn only on request, receives nothing)."""

from __future__ import annotations

import calendar
import datetime as dt
import itertools
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select

from customers.factories import make_customer
from siyu.delivery import service
from siyu.delivery.models import DeliveryLedger
from siyu.errors import InvalidInput
from siyu.tenancy import service as tenancy
from siyu.tenancy.audit import list_entries
from siyu.tenancy.principal import Principal

SH = ZoneInfo("Asia/Shanghai")
AT = dt.datetime(2026, 3, 1, 2, 30, tzinfo=dt.UTC)  # 10:30 on 1 March in Shanghai: a month boundary
_ids = itertools.count(1)


@pytest.fixture
def corp(session):
    corp = tenancy.create_corp(session, slug=f"dl-{next(_ids)}-{id(session) % 100000}", name="触达银行")
    ops = tenancy.create_staff(session, corp_id=corp.id, login=f"ops.dl.{corp.id}", name="运营", roles=["operations"],
                               password=None)
    principal = Principal(corp_id=corp.id, kind="staff", label=ops.login, staff_id=ops.id,
                          roles=frozenset({"operations"}))
    policy = service.policy_for(session, corp_id=corp.id)
    policy.holdout_basis_points = 0
    policy.quiet_start_minute = policy.quiet_end_minute = 0  # no quiet hours unless a test sets them
    customer = make_customer(session, corp.id, userid="zhangsan")
    session.flush()
    return corp.id, principal, customer.id


def reference(history, at, *, per_day, per_7, per_30, allowance, kind):
    """The caps computed plainly: Shanghai dates of the counted sends compared with today's."""
    today = at.astimezone(SH).date()
    counted = [(h_at.astimezone(SH).date(), k) for h_at, k, state in history if state in ("planned", "sent")
               and h_at <= at]
    if sum(d == today for d, _ in counted) >= per_day:
        return "capped_day"
    if sum((today - d).days < 7 for d, _ in counted) >= per_7:
        return "capped_7_days"
    if sum((today - d).days < 30 for d, _ in counted) >= per_30:
        return "capped_30_days"
    if kind != "moment":
        if allowance == "month":
            same, cap = (lambda d: (d.year, d.month) == (today.year, today.month)), \
                calendar.monthrange(today.year, today.month)[1]
        elif allowance == "week":
            same, cap = (lambda d: d.isocalendar()[:2] == today.isocalendar()[:2]), 7
        else:
            same, cap = (lambda d: d == today), 1
        if sum(same(d) for d, k in counted if k != "moment") >= cap:
            return "capped_wecom"
    return None


sends = st.lists(st.tuples(st.integers(min_value=-45 * 24 * 60, max_value=60),  # minutes from AT
                           st.sampled_from(service.KINDS), st.sampled_from(["planned", "sent", "held", "aborted",
                                                                            "failed"])), max_size=40)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(history=sends, per_day=st.integers(0, 3), per_7=st.integers(0, 8), per_30=st.integers(0, 40),
       allowance=st.sampled_from(["month", "week", "day"]), kind=st.sampled_from(service.KINDS),
       shift=st.integers(min_value=0, max_value=24 * 60 - 1))
def test_caps_are_counted_across_kinds_by_shanghai_calendar_day(session, corp, history, per_day, per_7, per_30,
                                                                allowance, kind, shift):
    corp_id, _principal, customer_id = corp
    at = AT + dt.timedelta(minutes=shift)
    policy = service.policy_for(session, corp_id=corp_id)
    policy.per_day, policy.per_7_days, policy.per_30_days, policy.wecom_allowance = per_day, per_7, per_30, allowance
    rows = [(at + dt.timedelta(minutes=m), k, state) for m, k, state in history]
    session.add_all([DeliveryLedger(corp_id=corp_id, customer_id=customer_id, kind=k, source=f"h:{i}", state=state,
                                    at=h_at) for i, (h_at, k, state) in enumerate(rows)])
    session.flush()
    try:
        got = service.claim(session, corp_id=corp_id, customer_id=customer_id, kind=kind, source="new:1", at=at)
        expected = reference(rows, at, per_day=per_day, per_7=per_7, per_30=per_30, allowance=allowance, kind=kind)
        assert (got.state, got.reason or None) == (("aborted", expected) if expected else ("planned", None))
    finally:
        session.execute(delete(DeliveryLedger).where(DeliveryLedger.customer_id == customer_id))


def test_a_send_is_claimed_once_per_source_and_customer(session, corp):
    corp_id, _principal, customer_id = corp
    first = service.claim(session, corp_id=corp_id, customer_id=customer_id, kind="broadcast", source="b:1", at=AT)
    again = service.claim(session, corp_id=corp_id, customer_id=customer_id, kind="broadcast", source="b:1", at=AT)
    assert first.go and not again.go, "a redelivered claim finds the row: never a second send"
    assert again.state == "planned" and not again.fresh


def test_a_quiet_hours_send_is_held_and_released_at_the_next_allowed_minute(session, corp):
    corp_id, _principal, customer_id = corp
    policy = service.policy_for(session, corp_id=corp_id)
    policy.quiet_start_minute, policy.quiet_end_minute = 21 * 60, 8 * 60
    night = dt.datetime(2026, 3, 2, 14, 5, tzinfo=dt.UTC)  # 22:05 in Shanghai
    held = service.claim(session, corp_id=corp_id, customer_id=customer_id, kind="sop_step", source="s:1", at=night)
    assert (held.state, held.reason) == ("held", "quiet_hours")
    assert held.due_at == dt.datetime(2026, 3, 3, 8, 0, tzinfo=SH), "08:00 the next morning, Shanghai"
    early = service.claim(session, corp_id=corp_id, customer_id=customer_id, kind="sop_step", source="s:1",
                          at=held.due_at - dt.timedelta(minutes=1))
    assert early.state == "held" and not early.go, "not before its time"
    released = service.claim(session, corp_id=corp_id, customer_id=customer_id, kind="sop_step", source="s:1",
                             at=held.due_at)
    assert released.go and released.state == "planned", "released, not lost"
    assert session.scalar(select(DeliveryLedger.state).where(DeliveryLedger.source == "s:1")) == "planned"
    # a held send does not count; its release does
    assert service.claim(session, corp_id=corp_id, customer_id=customer_id, kind="broadcast", source="b:9",
                         at=held.due_at + dt.timedelta(hours=1)).reason == "capped_day"


def test_the_opted_out_customer_is_not_sent_marketing(session, corp):
    from siyu.customers.models import Customer
    from siyu.privacy.service import record_consent

    corp_id, _principal, customer_id = corp
    ext = session.get(Customer, customer_id).external_userid
    record_consent(session, corp_id=corp_id, actor="test", external_userid=ext, purpose="marketing", granted=False,
                   source="advisor", note="TD")
    got = service.claim(session, corp_id=corp_id, customer_id=customer_id, kind="keyword_marketing", source="k:1",
                        at=AT)
    assert (got.state, got.reason) == ("aborted", "opted_out")


def test_the_global_control_group_is_stable_redrawn_on_request_and_audited(session, corp):
    corp_id, principal, _customer_id = corp
    policy = service.policy_for(session, corp_id=corp_id)
    policy.holdout_basis_points = 500
    ids = range(1, 20_001)
    group = {i for i in ids if service.in_global_holdout(policy, i)}
    assert 800 <= len(group) <= 1200, "about 5% of customers"
    assert group == {i for i in ids if service.in_global_holdout(service.policy_for(session, corp_id=corp_id), i)}
    service.redraw_holdout(session, principal=principal)
    redrawn = {i for i in ids if service.in_global_holdout(policy, i)}
    assert redrawn != group and 800 <= len(redrawn) <= 1200
    assert any(e.action == "delivery.holdout_redrawn" for e in list_entries(session, corp_id=corp_id))
    member = None
    while member is None:  # a customer of the corp who is in the new control group (1 in 20)
        c = make_customer(session, corp_id, userid="zhangsan").id
        member = c if service.in_global_holdout(policy, c) else None
    got = service.claim(session, corp_id=corp_id, customer_id=member, kind="broadcast", source="b:2", at=AT)
    assert (got.state, got.reason) == ("aborted", "holdout_global")


def test_policy_settings_are_checked_and_audited(session, corp):
    corp_id, principal, _customer_id = corp
    with pytest.raises(InvalidInput) as err:
        service.update_policy(session, principal=principal, per_day=-1)
    assert err.value.field == "per_day"
    with pytest.raises(InvalidInput):
        service.update_policy(session, principal=principal, wecom_allowance="year")
    row = service.update_policy(session, principal=principal, per_day=2, quiet_start_minute=22 * 60)
    assert (row.per_day, row.quiet_start_minute) == (2, 22 * 60)
    assert any(e.action == "delivery.policy_changed" for e in list_entries(session, corp_id=corp_id))
