"""The firm pushes rewards paid, coupons used and orders matured (POST /api/v1/analytics/events):
scoped API key, the key's corp only, idempotent by the firm's event id, bad input named by field,
batches all or nothing. Orders pushed through the integration API reach the store through the feed."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from customers.factories import make_customer
from integration.test_api import run_events
from siyu.analytics.models import AnalyticsEvent
from siyu.customers import service as customers
from tenancy.factories import api_client, make_corp, make_staff, principal_of  # noqa: F401

BASE = "/api/v1/analytics"


@pytest.fixture
def corp(session):
    from siyu.tenancy import service

    return service.create_corp(session, slug=f"ae-{uuid.uuid4().hex[:8]}", name="事件推送银行")


@pytest.fixture
def linked(session, corp):
    admin = principal_of(make_staff(session, corp, roles=("administrator",)))
    c = make_customer(session, corp.id, userid="adv", name="张伟", state="ad-1")
    customers.link_firm_customer(session, principal=admin, external_userid=c.external_userid, firm_customer_id="F-1")
    return c


@pytest.fixture
def api(session, corp):
    return api_client(session, corp, scopes=["analytics:write"])[0]


def reward(event_id="R-1", **over):
    body = {"event_id": event_id, "type": "campaign.reward_paid", "firm_customer_id": "F-1",
            "occurred_at": "2026-03-02T10:00:00+08:00", "amount_fen": 500, "campaign": "lottery-0301"}
    return {**body, **over}


def _stored(session, corp_id):
    return session.scalars(select(AnalyticsEvent).where(AnalyticsEvent.corp_id == corp_id)
                           .order_by(AnalyticsEvent.id)).all()


def test_a_reward_is_stored_once_and_a_changed_repeat_is_a_conflict(session, corp, linked, api):
    r = api.post(f"{BASE}/events", json=reward())
    assert r.status_code == 201, r.text
    assert r.json()["created"] is True and r.json()["amount_fen"] == 500
    again = api.post(f"{BASE}/events", json=reward())
    assert (again.status_code, again.json()["created"]) == (200, False)
    changed = api.post(f"{BASE}/events", json=reward(amount_fen=800))
    assert (changed.status_code, changed.json()["field"]) == (409, "amount_fen")
    (event,) = [e for e in _stored(session, corp.id) if e.type == "campaign.reward_paid"]
    assert (event.customer_id, event.customer_key, event.amount_fen, event.campaign, event.source_key) == (
        linked.id, str(linked.id), 500, "lottery-0301", "firm_event:R-1")
    assert event.ts.isoformat() == "2026-03-02T02:00:00+00:00", "stored in UTC"


@pytest.mark.parametrize(("body", "field"), [
    (reward(amount_fen=5.5), "amount_fen"),
    (reward(amount_fen="500"), "amount_fen"),
    (reward(amount_fen=None), "amount_fen"),
    (reward(amount_fen=0), "amount_fen"),
    (reward(type="order.invested"), "type"),
    (reward(occurred_at="2026-03-02 10:00"), "occurred_at"),
    (reward(occurred_at="2099-01-01T00:00:00Z"), "occurred_at"),
    (reward(event_id="bad id!"), "event_id"),
    ({**reward(), "extra": 1}, "extra"),
    (reward(type="order.matured", product_code=None), "product_code"),
])
def test_bad_input_is_named_by_field_and_nothing_is_stored(session, corp, linked, api, body, field):
    r = api.post(f"{BASE}/events", json=body)
    assert r.status_code == 422, r.text
    assert field in str(r.json()), r.json()
    assert not [e for e in _stored(session, corp.id) if e.source_key.startswith("firm_event:")]


def test_an_unknown_customer_is_404_and_another_corps_customer_is_unknown(session, corp, linked):
    other = make_corp(session)
    api_other = api_client(session, other, scopes=["analytics:write"])[0]
    r = api_other.post(f"{BASE}/events", json=reward())
    assert (r.status_code, r.json()["field"]) == (404, "firm_customer_id")


def test_keys_without_the_scope_or_without_a_key_are_refused(session, corp, linked):
    reader = api_client(session, corp, scopes=["orders:write"])[0]
    assert reader.post(f"{BASE}/events", json=reward()).status_code == 403
    reader.headers.pop("Authorization")
    assert reader.post(f"{BASE}/events", json=reward()).status_code == 401
    assert not _stored(session, corp.id) or all(not e.source_key.startswith("firm_event:")
                                                for e in _stored(session, corp.id))


def test_a_batch_is_all_or_nothing_with_each_bad_item_named(session, corp, linked, api):
    items = [reward("R-1"), reward("C-1", type="coupon.redeemed", amount_fen=40_000),
             reward("M-1", type="order.matured", amount_fen=None, product_code="WM-90", campaign=None)]
    bad = api.post(f"{BASE}/events/batch", json={"items": [*items, reward("R-2", amount_fen=-1)]})
    assert bad.status_code == 422
    assert bad.json()["errors"] == [{"index": 3, "field": "items.3.amount_fen",
                                     "detail": bad.json()["errors"][0]["detail"]}]
    assert not [e for e in _stored(session, corp.id) if e.source_key.startswith("firm_event:")]
    ok = api.post(f"{BASE}/events/batch", json={"items": items})
    assert (ok.status_code, ok.json()["created"]) == (201, 3)
    assert [i["type"] for i in ok.json()["items"]] == ["campaign.reward_paid", "coupon.redeemed", "order.matured"]
    again = api.post(f"{BASE}/events/batch", json={"items": items})
    assert (again.status_code, again.json()["created"]) == (200, 0)
    types = sorted(e.type for e in _stored(session, corp.id) if e.source_key.startswith("firm_event:"))
    assert types == ["campaign.reward_paid", "coupon.redeemed", "order.matured"]


def test_an_order_through_the_integration_api_is_an_order_invested_event(session, corp, linked):
    orders = api_client(session, corp, scopes=["orders:write"])[0]
    r = orders.post("/api/v1/integration/orders", json={
        "order_id": "O-9", "firm_customer_id": "F-1", "amount_fen": 160_000, "product_code": "WM-90",
        "occurred_at": "2026-03-05T09:30:00+08:00"})
    assert r.status_code == 201, r.text
    run_events(session, "customer.invested")
    (event,) = [e for e in _stored(session, corp.id) if e.type == "order.invested"]
    assert (event.customer_id, event.amount_fen, event.product) == (linked.id, 160_000, "WM-90")
