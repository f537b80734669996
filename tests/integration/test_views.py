"""Console: the webhooks page (administrators add an endpoint and see its secret once, see deliveries
with every attempt, redeliver) and the holdings panel of the customer 360 page."""

from __future__ import annotations

from sqlalchemy import select

from customers.factories import make_customer
from siyu.customers import service as customers
from siyu.integration import service
from siyu.integration.models import WebhookEndpoint
from siyu.jobs.models import Job
from siyu.tenancy.models import Role
from tenancy.factories import console_user, fast_argon2, make_corp, principal_of  # noqa: F401

PAGE = "/integration/webhooks"


def test_an_administrator_adds_an_endpoint_and_sees_the_secret_once(session, corp):
    admin = console_user(session, corp)
    refused = admin.post(PAGE, {"url": "http://example.com/hook", "events": ["customer.added"]})
    assert refused.status_code == 422 and "https://" in refused.text
    assert admin.post(PAGE, {"url": "https://firm.example/hook"}).status_code == 422  # no event chosen
    created = admin.post(PAGE, {"url": "https://firm.example/hook", "events": ["customer.added", "customer.invested"]})
    assert created.status_code == 201 and created.headers["cache-control"] == "no-store"
    endpoint = session.scalar(select(WebhookEndpoint).where(WebhookEndpoint.corp_id == corp.id))
    assert endpoint.secret in created.text and endpoint.secret.startswith("whsec_")
    page = admin.get(PAGE)
    assert "https://firm.example/hook" in page.text and endpoint.secret not in page.text
    assert admin.post(f"{PAGE}/{endpoint.id}/enabled", {}).status_code == 303
    session.refresh(endpoint)
    assert endpoint.enabled is False
    # The stored secret is encrypted, not the clear text.
    raw = session.connection().exec_driver_sql(f"SELECT secret FROM webhook_endpoint WHERE id = {endpoint.id}").scalar()
    assert endpoint.secret not in raw


def test_deliveries_show_their_attempts_and_can_be_redelivered(session, corp):
    admin = console_user(session, corp)
    endpoint, _secret = service.create_endpoint(session, principal=principal_of(admin.staff),
                                                url="https://firm.example/hook", events=["customer.lost"])
    assert service.fan_out(session, corp_id=corp.id, event="customer.lost",
                           payload={"external_userid": "wm1", "userid": "adv", "name": "张伟"}, source_key="t:1") == 1
    assert service.fan_out(session, corp_id=corp.id, event="customer.lost", payload={}, source_key="t:1") == 0
    assert service.fan_out(session, corp_id=corp.id, event="customer.added", payload={}, source_key="t:2") == 0
    delivery = service.list_deliveries(session, corp_id=corp.id)[0].delivery
    assert delivery.payload == {"external_userid": "wm1", "userid": "adv"}  # nothing outside the safe keys
    service.record_attempt(session, delivery_id=delivery.id, status_code=503, latency_ms=42, error="HTTP 503",
                           final=True)
    page = admin.get(PAGE)
    assert delivery.delivery_uid in page.text and "HTTP 503" in page.text and "42 ms" in page.text
    again = admin.post(f"/integration/deliveries/{delivery.id}/redeliver")
    assert again.status_code == 303
    jobs = session.scalars(select(Job).where(Job.name == service.DELIVER_JOB, Job.corp_id == corp.id)).all()
    assert len(jobs) == 2 and all(j.payload == {"delivery_id": delivery.id} for j in jobs)
    session.refresh(delivery)
    assert delivery.state == "pending"
    # Other roles may not manage webhooks.
    operations = console_user(session, corp, roles=(Role.OPERATIONS,))
    assert operations.get(PAGE).status_code == 403
    assert operations.post(f"/integration/deliveries/{delivery.id}/redeliver").status_code == 403
    assert endpoint.id


def test_the_customer_360_page_shows_holdings_in_yuan(session, corp):
    admin = console_user(session, corp)
    customer = make_customer(session, corp.id, userid="adv", name="张伟")
    principal = principal_of(admin.staff)
    customers.link_firm_customer(session, principal=principal, external_userid=customer.external_userid,
                                 firm_customer_id="F-1")
    for kind, order_id, amount in (("investment", "O-1", 1_234_567), ("redemption", "R-1", 34_567)):
        service.record_order(session, principal=principal, kind=kind, body={
            "order_id": order_id, "firm_customer_id": "F-1", "amount_fen": amount, "product_code": "WM-90",
            "occurred_at": "2026-03-02T10:00:00+08:00"})
    detail = admin.get(f"/customers/{customer.id}")
    assert f"/integration/customers/{customer.id}/holdings" in detail.text
    panel = admin.get(f"/integration/customers/{customer.id}/holdings")
    assert panel.status_code == 200
    assert "12,345.67" in panel.text and "345.67" in panel.text and "12,000.00" in panel.text
    other = console_user(session, make_corp(session))
    assert other.get(f"/integration/customers/{customer.id}/holdings").status_code == 404
