"""REST API /api/v1/integration: KYC push, orders and redemptions (idempotent, integer fen, batches all
or nothing), customer lookups; scopes and tenancy; the lifecycle stage that orders move."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from customers.factories import job_context, make_customer
from siyu.compliance import suitability
from siyu.customers import service as customers
from siyu.customers.models import CustomerEvent
from siyu.integration import service as webhooks
from siyu.integration.models import FirmOrder
from siyu.integration.service import MAX_AMOUNT_FEN
from siyu.jobs import registry
from siyu.jobs.models import Job
from tenancy.factories import api_client, make_corp, make_staff, principal_of  # noqa: F401

BASE = "/api/v1/integration"


@pytest.fixture
def linked(session, corp):
    """Two customers of the corp linked to the firm's ids F-1 and F-2."""
    admin = principal_of(make_staff(session, corp, roles=("administrator",)))
    out = []
    for firm_id, name in (("F-1", "张伟"), ("F-2", "李娜")):
        c = make_customer(session, corp.id, userid="adv", name=name)
        customers.link_firm_customer(session, principal=admin, external_userid=c.external_userid,
                                     firm_customer_id=firm_id)
        out.append(c)
    return out


@pytest.fixture
def api(session, corp):
    return api_client(session, corp, scopes=["orders:write", "kyc:write", "customers:read"])[0]


def order(order_id="O-1", firm="F-1", amount=1_000_000, product="WM-90", at="2026-03-02T10:00:00+08:00"):
    return {"order_id": order_id, "firm_customer_id": firm, "amount_fen": amount, "product_code": product,
            "occurred_at": at}


def run_events(session, event: str) -> int:
    """Runs the queued jobs of `event`'s subscribers in this session (what a worker would do)."""
    jobs = session.scalars(select(Job).where(Job.name.like(f"event:{event}:%"), Job.state == "queued")
                           .order_by(Job.id)).all()
    for job in jobs:
        spec = registry.get_handler(job.name)
        spec.fn(session, job.payload, dataclasses.replace(job_context(job.corp_id, job.id), name=job.name))
        job.state = "done"
    session.flush()
    return len(jobs)


def test_an_order_is_stored_once_and_a_changed_repeat_names_the_field(session, api, linked):
    suitability.create_product(session, corp_id=linked[0].corp_id, actor="test", code="WM-90", name="90天理财",
                               product_type="wealth_management", risk_level="R2")
    first = api.post(f"{BASE}/orders", json=order())
    assert first.status_code == 201, first.text
    assert first.json()["product_risk_level"] == "R2" and first.json()["amount_fen"] == 1_000_000
    again = api.post(f"{BASE}/orders", json=order())
    assert again.status_code == 200 and again.json()["created"] is False
    changed = api.post(f"{BASE}/orders", json=order(amount=1_000_001))
    assert changed.status_code == 409 and changed.json()["field"] == "amount_fen"
    assert api.post(f"{BASE}/orders", json=order(product="OTHER")).json()["field"] == "product_code"
    # A redemption is another kind: the same id does not clash with the order's.
    assert api.post(f"{BASE}/redemptions", json=order(amount=400_000)).status_code == 201
    assert session.scalar(select(func.count()).select_from(FirmOrder)
                          .where(FirmOrder.corp_id == linked[0].corp_id)) == 2
    found = api.get(f"{BASE}/customers", params={"firm_customer_id": "F-1"}).json()
    assert found["holdings"] == [{"product_code": "WM-90", "product_risk_level": "R2", "invested_fen": 1_000_000,
                                  "redeemed_fen": 400_000, "held_fen": 600_000}]
    assert found["name"] == "张*" and found["stage"] == "new"


@pytest.mark.parametrize(("change", "field"), [
    ({"amount_fen": 12.5}, "amount_fen"), ({"amount_fen": "100"}, "amount_fen"), ({"amount_fen": -1}, "amount_fen"),
    ({"amount_fen": 0}, "amount_fen"), ({"amount_fen": MAX_AMOUNT_FEN + 1}, "amount_fen"),
    ({"amount_fen": True}, "amount_fen"),
    ({"occurred_at": "2026-03-02T10:00:00"}, "occurred_at"), ({"occurred_at": "2026-03-02"}, "occurred_at"),
    ({"occurred_at": "2099-01-01T00:00:00Z"}, "occurred_at"), ({"occurred_at": "yesterday"}, "occurred_at"),
    ({"firm_customer_id": "F-404"}, "firm_customer_id"), ({"product_code": "a b"}, "product_code"),
    ({"order_id": "中文"}, "order_id"),
])
def test_bad_orders_are_refused_naming_the_field_and_store_nothing(session, api, linked, change, field):
    answer = api.post(f"{BASE}/orders", json={**order(), **change})
    assert answer.status_code in (404, 422), answer.text
    body = answer.json()
    named = body.get("field") or body["errors"][0]["field"]
    assert named == field
    assert session.scalar(select(func.count()).select_from(FirmOrder)
                          .where(FirmOrder.corp_id == linked[0].corp_id)) == 0


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(amount=st.one_of(
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=12), st.booleans(), st.none(),
    st.integers(max_value=0), st.integers(min_value=MAX_AMOUNT_FEN + 1), st.lists(st.integers(), max_size=2),
))
def test_any_amount_that_is_not_whole_positive_fen_is_refused(session, api, linked, amount):
    answer = api.post(f"{BASE}/orders", json={**order(), "amount_fen": amount})
    assert answer.status_code == 422, answer.text
    body = answer.json()
    assert (body.get("field") or body["errors"][0]["field"]) == "amount_fen"
    assert session.scalar(select(func.count()).select_from(FirmOrder)
                          .where(FirmOrder.corp_id == linked[0].corp_id)) == 0


def test_a_batch_is_all_or_nothing_and_names_index_and_field(session, api, linked):
    items = [order(order_id=f"B-{i}", firm="F-1" if i % 2 else "F-2", amount=100 + i) for i in range(1000)]
    bad = [dict(it) for it in items]
    bad[3]["firm_customer_id"] = "F-404"
    bad[997]["occurred_at"] = "2026-03-02T10:00:00"
    refused = api.post(f"{BASE}/orders/batch", json={"items": bad})
    assert refused.status_code == 422, refused.text[:300]
    assert [(e["index"], e["field"]) for e in refused.json()["errors"]] == [(3, "items.3.firm_customer_id"),
                                                                           (997, "items.997.occurred_at")]
    assert session.scalar(select(func.count()).select_from(FirmOrder)
                          .where(FirmOrder.corp_id == linked[0].corp_id)) == 0
    stored = api.post(f"{BASE}/orders/batch", json={"items": items})
    assert stored.status_code == 201 and stored.json()["created"] == 1000
    repeat = api.post(f"{BASE}/orders/batch", json={"items": items[:10]})
    assert repeat.status_code == 200 and repeat.json()["created"] == 0
    too_many = api.post(f"{BASE}/orders/batch", json={"items": items + [order(order_id="B-x")]})
    assert too_many.status_code == 422 and too_many.json()["errors"][0]["field"] == "items"
    inner = api.post(f"{BASE}/orders/batch", json={"items": [order(order_id="D-1"), order(order_id="D-1", amount=5)]})
    assert inner.status_code == 409 and inner.json()["errors"] == [
        {"index": 1, "field": "items.1.amount_fen",
         "detail": "this order id was pushed before with another amount_fen"}]


def test_investments_move_the_lifecycle_stage_and_go_on_the_timeline(session, api, linked, corp):
    zhang, li = linked
    # The firm listens for stage changes (without an endpoint, no webhook job is made for them).
    webhooks.create_endpoint(session, principal=principal_of(make_staff(session, corp, roles=("administrator",))),
                             url="https://firm.example/hook", events=["customer.stage_changed"])
    api.post(f"{BASE}/orders", json=order(order_id="O-1", product="A"))
    api.post(f"{BASE}/orders", json=order(order_id="O-2", product="A"))  # the same product again: still invested
    api.post(f"{BASE}/orders", json=order(order_id="O-3", firm="F-2", product="A"))
    assert run_events(session, "customer.invested") >= 3
    session.refresh(zhang), session.refresh(li)
    assert (zhang.stage, li.stage) == ("invested", "invested")
    api.post(f"{BASE}/redemptions", json=order(order_id="R-1", product="A", amount=500))
    api.post(f"{BASE}/orders", json=order(order_id="O-4", product="A"))  # after a redemption: reinvested
    api.post(f"{BASE}/orders", json=order(order_id="O-5", firm="F-2", product="B"))  # a second product: reinvested
    run_events(session, "customer.redeemed"), run_events(session, "customer.invested")
    session.refresh(zhang), session.refresh(li)
    assert (zhang.stage, li.stage) == ("reinvested", "reinvested")
    kinds = session.scalars(select(CustomerEvent.kind).where(CustomerEvent.customer_id == zhang.id)
                            .order_by(CustomerEvent.id)).all()
    assert kinds.count("invested") == 3 and kinds.count("redeemed") == 1 and kinds.count("stage_changed") == 2
    # The stage change is an event a webhook carries.
    assert session.scalar(select(func.count()).select_from(Job)
                          .where(Job.name.like("event:customer.stage_changed:%"))) >= 4


def test_kyc_push_is_recorded_by_compliance_and_found_by_phone(session, api, linked):
    pushed = api.post(f"{BASE}/kyc", json={"firm_customer_id": "F-1", "level": "C3", "phone": "+86 138 0013 8000",
                                           "assessed_at": "2026-01-05T10:00:00+08:00"})
    assert pushed.status_code == 201, pushed.text
    assert pushed.json()["source"] == "firm_kyc_api" and pushed.json()["expires_at"].startswith("2027-01-05T02:00")
    assert suitability.current_assessment(session, corp_id=linked[0].corp_id, customer_ref="F-1").level == "C3"
    found = api.post(f"{BASE}/customers/lookup", json={"phone": "13800138000"})
    assert found.status_code == 200 and found.json()["risk_level"] == "C3"
    assert found.json()["external_userid"] == linked[0].external_userid
    by_ext = api.post(f"{BASE}/kyc", json={"external_userid": linked[1].external_userid, "level": "C5"})
    assert by_ext.status_code == 201
    assert api.get(f"{BASE}/customers", params={"external_userid": linked[1].external_userid}).json()["risk_level"] \
        == "C5"
    for body, field in [({"firm_customer_id": "F-1", "level": "C9"}, "level"),
                        ({"firm_customer_id": "F-404", "level": "C1"}, "firm_customer_id"),
                        ({"level": "C1"}, "firm_customer_id"),
                        ({"firm_customer_id": "F-1", "level": "C1", "phone": "12345"}, "phone"),
                        ({"firm_customer_id": "F-1", "level": "C1", "assessed_at": "2026-01-05"}, "assessed_at")]:
        refused = api.post(f"{BASE}/kyc", json=body)
        assert refused.status_code in (404, 422) and refused.json()["field"] == field, (body, refused.text)
    assert api.post(f"{BASE}/customers/lookup", json={"phone": "13900000000"}).status_code == 404


def test_scopes_and_corps(session, corp, linked):
    readonly, _ = api_client(session, corp, scopes=["customers:read"])
    assert readonly.post(f"{BASE}/orders", json=order()).status_code == 403
    assert readonly.post(f"{BASE}/kyc", json={"firm_customer_id": "F-1", "level": "C1"}).status_code == 403
    writer, _ = api_client(session, corp, scopes=["orders:write"])
    assert writer.get(f"{BASE}/customers", params={"firm_customer_id": "F-1"}).status_code == 403
    assert writer.post(f"{BASE}/orders", json=order()).status_code == 201
    other, _ = api_client(session, make_corp(session), scopes=["*"])
    # Another corp knows neither the customer nor the order id (its own O-1 is another order).
    assert other.post(f"{BASE}/orders", json=order()).json()["field"] == "firm_customer_id"
    assert other.get(f"{BASE}/customers", params={"firm_customer_id": "F-1"}).status_code == 404
    assert session.scalar(select(func.count()).select_from(FirmOrder)
                          .where(FirmOrder.corp_id == corp.id)) == 1
    assert readonly.post(f"{BASE}/orders", headers={"Authorization": "Bearer nope"}, json=order()).status_code == 401


def test_times_are_stored_in_utc(session, api, linked):
    api.post(f"{BASE}/orders", json=order(at="2026-03-02T08:00:00+08:00"))
    stored = session.scalar(select(FirmOrder).where(FirmOrder.corp_id == linked[0].corp_id))
    assert stored.occurred_at == dt.datetime(2026, 3, 2, 0, 0, tzinfo=dt.UTC)
