"""Customer handover (客户继承), the service: the rules checked before WeCom is called (two in-service
transfers per customer in 90 days, never to the advisor who has the customer, active take-over
staff, a reviewed message), calls of at most 100, and the states each customer goes through."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from siyu.customers import contacts
from siyu.db import utcnow
from siyu.errors import InvalidInput
from siyu.handover import service
from siyu.handover.models import HandoverItem
from siyu.jobs.models import Job
from siyu.tenancy import service as tenancy

T0 = dt.datetime(2026, 3, 1, 2, 0, tzinfo=dt.UTC)


@pytest.fixture
def staff(db, corp):
    for userid, name in (("zhangsan", "张三"), ("lisi", "李四"), ("wangwu", "王五")):
        tenancy.create_staff(db, corp_id=corp.id, login=f"{userid}.{corp.slug}", name=name, roles=["advisor"],
                             password=None, wecom_userid=userid)
    gone = tenancy.create_staff(db, corp_id=corp.id, login=f"zhaoliu.{corp.slug}", name="赵六", roles=["advisor"],
                                password=None, wecom_userid="zhaoliu")
    gone.is_active = False
    db.flush()


def _customers(db, corp, n: int, advisor: str = "zhangsan", prefix: str = "wmc") -> list[str]:
    ids = [f"{prefix}{i:05d}" for i in range(n)]
    for ext in ids:
        contacts.record_add(db, corp_id=corp.id, external_userid=ext, wecom_userid=advisor, at=T0)
    return ids


def _items(db, handover) -> dict[str, HandoverItem]:
    return {i.target_id: i for i in service.list_items(db, handover=handover)}


def test_the_plan_is_checked_before_wecom_with_a_reason_per_customer(db, corp, staff):
    exts = _customers(db, corp, 4)
    contacts.record_add(db, corp_id=corp.id, external_userid=exts[3], wecom_userid="lisi", at=T0)
    # exts[0] was transferred in service twice in the last 90 days (Siyu's own records), exts[1] once.
    old = service.create_handover(db, corp_id=corp.id, actor="test", kind="in_service", handover_userid="zhangsan",
                                  takeover_userids=["wangwu"], external_userids=exts[:2])
    for item, n in zip(service.list_items(db, handover=old), (2, 1), strict=True):
        item.state, item.accepted, item.requested_at = "refused", n, utcnow() - dt.timedelta(days=30)
        item.escalated = True
    db.flush()
    plan = service.create_handover(db, corp_id=corp.id, actor="test", kind="in_service", handover_userid="zhangsan",
                                   takeover_userids=["lisi"], external_userids=[*exts, "wmnotmine01"],
                                   message="您好，李四将继续为您服务。")
    items = _items(db, plan)
    assert items[exts[0]].state == "skipped" and items[exts[0]].reason == "transferred twice in the last 90 days"
    assert items[exts[1]].state == "pending"  # once: one more is allowed
    assert items[exts[2]].state == "pending" and items[exts[2]].takeover_userid == "lisi"
    assert items[exts[3]].reason == "every take-over advisor has this customer already"
    assert items["wmnotmine01"].reason == "not a customer of the handing advisor"
    assert plan.message == "您好，李四将继续为您服务。"
    # A transfer 91 days ago no longer counts.
    item = _items(db, old)[exts[0]]
    item.requested_at = utcnow() - dt.timedelta(days=91)
    db.flush()
    assert service.recent_transfer_counts(db, corp_id=corp.id, external_userids=[exts[0]]) == {}
    # The run is queued with the plan.
    assert db.scalar(select(Job).where(Job.name == "compliance.handover_run", Job.corp_id == corp.id,
                                       Job.payload["handover_id"].as_integer() == plan.id)) is not None


@pytest.mark.parametrize(("kwargs", "field", "words"), [
    ({"takeover_userids": ["zhangsan"]}, "takeover_userids", "cannot be the handing advisor"),
    ({"takeover_userids": ["zhaoliu"]}, "takeover_userids", "not an active member of staff"),
    ({"takeover_userids": ["nobody"]}, "takeover_userids", "not an active member of staff"),
    ({"takeover_userids": []}, "takeover_userids", "at least one"),
    ({"kind": "sideways"}, "kind", "resigned or in-service"),
    ({"message": "这款理财保本保收益，稳赚不赔"}, "message", "compliance review blocks this text: 保本"),
    ({"message": "长" * 201}, "message", "at most 200 characters"),
    ({"kind": "resigned", "message": "再见"}, "message", "only an in-service transfer"),
    ({"handover_userid": "zhaoliu"}, "handover_userid", "active member of staff"),
    ({"external_userids": ["bad id!"]}, "external_userids", "line 1 is not a WeCom id"),
])
def test_bad_plans_are_refused_naming_the_field_and_store_nothing(db, corp, staff, kwargs, field, words):
    _customers(db, corp, 2)
    args = {"kind": "in_service", "handover_userid": "zhangsan", "takeover_userids": ["lisi"], **kwargs}
    with pytest.raises(InvalidInput) as info:
        service.create_handover(db, corp_id=corp.id, actor="test", **args)
    assert info.value.field == field and words in info.value.message
    assert service.list_handovers(db, corp_id=corp.id) == []


def test_250_customers_go_in_three_calls_and_several_takeovers_share_evenly(db, corp, staff):
    exts = _customers(db, corp, 250)
    one = service.create_handover(db, corp_id=corp.id, actor="test", kind="resigned", handover_userid="zhangsan",
                                  takeover_userids=["lisi"])
    batches = service.plan_batches(db, handover=one)
    assert [len(b.targets) for b in batches] == [100, 100, 50]
    assert sorted(t for b in batches for t in b.targets) == exts
    assert len({b.key for b in batches}) == 3
    # Planned again (a re-run after a crash): the same calls under the same keys, nothing new.
    assert [b.key for b in service.plan_batches(db, handover=one)] == [b.key for b in batches]

    more = _customers(db, corp, 10, advisor="zhaoliu", prefix="wmz")
    spread = service.create_handover(db, corp_id=corp.id, actor="test", kind="resigned", handover_userid="zhaoliu",
                                     takeover_userids=["lisi", "wangwu"])
    items = _items(db, spread)
    assert sorted(items) == more
    assert sum(i.takeover_userid == "lisi" for i in items.values()) == 5


def test_states_from_call_to_takeover_retry_and_escalation(db, corp, staff):
    _customers(db, corp, 4)
    plan = service.create_handover(db, corp_id=corp.id, actor="test", kind="resigned", handover_userid="zhangsan",
                                   takeover_userids=["lisi", "wangwu"])
    (b1, b2) = service.plan_batches(db, handover=plan)
    service.record_batch(db, handover=plan, batch=b1, outcome_state="sent",
                         customer_errcodes={b1.targets[0]: 0, b1.targets[1]: 84061})
    service.record_batch(db, handover=plan, batch=b2, outcome_state="unknown")
    items = _items(db, plan)
    assert items[b1.targets[0]].state == "waiting" and items[b1.targets[0]].accepted == 1
    assert items[b1.targets[1]].state == "failed" and items[b1.targets[1]].escalated  # a retry cannot mend it
    assert {items[t].state for t in b2.targets} == {"waiting"}  # the result query decides
    assert plan.status == "running"

    # WeCom's answer: one taken over (published), one at the limit, one without a record.
    done, limited = b1.targets[0], b2.targets[0]
    service.apply_results(db, handover=plan, takeover_userid="lisi", statuses={done: (1, 1_800_000_000)})
    still = service.apply_results(db, handover=plan, takeover_userid="wangwu", statuses={limited: (4, 0)})
    assert still == 0
    items = _items(db, plan)
    assert items[done].state == "done" and items[limited].state == "limit" and not items[limited].escalated
    assert items[b2.targets[1]].state == "failed"
    assert db.scalar(select(Job).where(Job.name.like("%customer.transferred%"), Job.corp_id == corp.id)) is not None
    assert service.needs_run(db, handover=plan)

    # Retries go to the next take-over advisor; after 3 calls the customer is escalated.
    for attempt in (2, 3):
        batches = [b for b in service.plan_batches(db, handover=plan) if limited in b.targets]
        (batch,) = batches
        assert batch.takeover_userid == ("lisi" if attempt == 2 else "wangwu")
        service.record_batch(db, handover=plan, batch=batch, outcome_state="sent",
                             customer_errcodes={t: 0 for t in batch.targets})
        service.transfer_failed(db, corp_id=corp.id, external_userid=limited, takeover_userid=batch.takeover_userid,
                                fail_reason="customer_limit_exceed")
    item = _items(db, plan)[limited]
    assert (item.state, item.attempts, item.escalated) == ("limit", 3, True)
    assert service.escalation_count(db, corp_id=corp.id) >= 2


def test_an_in_service_refusal_is_escalated_at_once(db, corp, staff):
    (ext,) = _customers(db, corp, 1)
    plan = service.create_handover(db, corp_id=corp.id, actor="test", kind="in_service", handover_userid="zhangsan",
                                   takeover_userids=["lisi", "wangwu"])
    (batch,) = service.plan_batches(db, handover=plan)
    service.record_batch(db, handover=plan, batch=batch, outcome_state="sent", customer_errcodes={ext: 0})
    assert service.transfer_failed(db, corp_id=corp.id, external_userid=ext, takeover_userid="lisi",
                                   fail_reason="customer_refused") == [plan.id]
    item = _items(db, plan)[ext]
    assert (item.state, item.escalated) == ("refused", True)
    assert plan.status == "attention"
    # An operator may still retry it by hand (to the next advisor).
    service.retry_item(db, corp_id=corp.id, actor="test", handover_id=plan.id, item_id=item.id)
    assert (item.state, item.escalated, item.takeover_userid) == ("pending", False, "wangwu")
    assert plan.status == "running"


@given(st.one_of(st.text(max_size=80), st.lists(st.text(max_size=20), max_size=5)))
@settings(max_examples=200, deadline=None)
def test_id_lists_parse_to_clean_unique_ids_or_name_the_field(value):
    try:
        ids = service.parse_ids(value, field="external_userids")
    except InvalidInput as exc:
        assert exc.field == "external_userids" and "is not a WeCom id" in exc.message
        return
    assert len(ids) == len(set(ids)) and all(service.TARGET_RE.fullmatch(i) for i in ids)


def test_a_resigned_handover_names_customers_wecom_does_not_list_and_plans_no_call_for_them(db, corp, staff):
    exts = _customers(db, corp, 3, advisor="zhaoliu", prefix="wmu")
    handover = service.create_handover(db, corp_id=corp.id, actor="test", kind="resigned",
                                       handover_userid="zhaoliu", takeover_userids=["lisi"])
    assert service.check_unassigned(db, handover=handover, listed={exts[0], exts[1]}) == 1
    batches = service.plan_batches(db, handover=handover)
    assert [b.targets for b in batches] == [(exts[0], exts[1])]
    states = {i.target_id: (i.state, i.reason, i.attempts) for i in service.list_items(db, handover=handover)}
    assert states[exts[2]] == ("skipped", service.NOT_LISTED_CUSTOMER, 0)
    # An in-service transfer is not WeCom's unassigned business: nothing is skipped.
    other = service.create_handover(db, corp_id=corp.id, actor="test", kind="in_service", handover_userid="zhangsan",
                                    takeover_userids=["wangwu"], external_userids=_customers(db, corp, 1))
    assert service.check_unassigned(db, handover=other, listed=set()) == 0
