"""Outbound webhooks end to end: an order pushed by the firm becomes `customer.invested`, a real worker
fans it out to the corp's endpoint and POSTs it to a real HTTP receiver started here. A receiver that
fails twice gets three attempts with one delivery id and valid signatures; one that never answers
ends dead after the attempts allowed."""

from __future__ import annotations

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import select

from customers.factories import make_customer
from siyu.customers import service as customers
from siyu.db import session_scope
from siyu.integration import service
from siyu.integration.models import WebhookAttempt, WebhookDelivery
from siyu.jobs.models import Job
from siyu.tenancy import service as tenancy
from tenancy.factories import make_staff, principal_of
from wecom.test_pipeline import wait_for, worker  # noqa: F401  (the worker fixture)


class Receiver:
    """A tiny threaded HTTP server: answers the first `failures` POSTs with 500 (or never, when
    `hang`), then 200; keeps what it received."""

    def __init__(self, *, failures: int = 0, hang: bool = False):
        self.failures, self.hang = failures, hang
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                if receiver.hang:
                    receiver.release.wait(10)
                    return
                code = 500 if len(receiver.received) <= receiver.failures else 200
                self.send_response(code)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/siyu"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fast_retries(monkeypatch):
    monkeypatch.setattr(service, "BACKOFF_BASE_SECONDS", 0.2)
    monkeypatch.setattr(service, "BACKOFF_CAP_SECONDS", 0.4)
    monkeypatch.setattr(service, "MAX_ATTEMPTS", 3)
    monkeypatch.setattr(service, "TIMEOUT_SECONDS", 0.5)
    yield


def _setup(url: str, events=("customer.invested",)):
    """A corp with a customer linked to F-1, and an endpoint at `url`; returns (corp id, admin, secret)."""
    with session_scope() as s:
        corp = tenancy.create_corp(s, slug="wh-" + uuid.uuid4().hex[:8], name="回调测试银行")
        admin = principal_of(make_staff(s, corp, roles=("administrator",)))
        customer = make_customer(s, corp.id, userid="adv", name="张伟")
        customers.link_firm_customer(s, principal=admin, external_userid=customer.external_userid,
                                     firm_customer_id="F-1")
        _endpoint, secret = service.create_endpoint(s, principal=admin, url=url, events=list(events))
        return corp.id, admin, secret


def _invest(admin, order_id="O-1"):
    with session_scope() as s:
        service.record_order(s, principal=admin, kind="investment", body={
            "order_id": order_id, "firm_customer_id": "F-1", "amount_fen": 12_345_00, "product_code": "WM-90",
            "occurred_at": "2026-03-02T10:00:00+08:00"})


def _delivery(corp_id: int) -> WebhookDelivery | None:
    with session_scope() as s:
        return s.scalar(select(WebhookDelivery).where(WebhookDelivery.corp_id == corp_id))


def _attempts(delivery_id: int) -> list[WebhookAttempt]:
    with session_scope() as s:
        return list(s.scalars(select(WebhookAttempt).where(WebhookAttempt.delivery_id == delivery_id)
                              .order_by(WebhookAttempt.id)))


def test_a_failing_receiver_gets_three_signed_attempts_with_one_delivery_id(worker, fast_retries):  # noqa: F811
    receiver = Receiver(failures=2)
    try:
        corp_id, admin, secret = _setup(receiver.url)
        _invest(admin)
        delivered = wait_for(lambda: (d := _delivery(corp_id)) is not None and d.state == "delivered" and d, 30)
        assert [a.status_code for a in _attempts(delivered.id)] == [500, 500, 200]
        assert all(a.latency_ms >= 0 for a in _attempts(delivered.id))
        assert len(receiver.received) == 3
        assert {h["x-siyu-delivery"] for h, _b in receiver.received} == {delivered.delivery_uid}
        for headers, body in receiver.received:
            assert headers["x-siyu-event"] == "customer.invested"
            assert service.verify_signature(secret, timestamp=headers["x-siyu-timestamp"], body=body,
                                            signature=headers["x-siyu-signature"])
            assert not service.verify_signature("whsec_wrong", timestamp=headers["x-siyu-timestamp"], body=body,
                                                 signature=headers["x-siyu-signature"])
            assert not service.verify_signature(secret, timestamp=headers["x-siyu-timestamp"], body=body + b" ",
                                                signature=headers["x-siyu-signature"])
        envelope = json.loads(receiver.received[-1][1])
        assert envelope["id"] == delivered.delivery_uid and envelope["event"] == "customer.invested"
        data = envelope["data"]
        assert data["amount_fen"] == 1_234_500 and data["firm_customer_id"] == "F-1" and data["name_masked"] == "张*"
        assert "张伟" not in receiver.received[-1][1].decode()
    finally:
        receiver.close()


def test_a_receiver_that_never_answers_ends_dead_after_the_attempts_allowed(worker, fast_retries):  # noqa: F811
    receiver = Receiver(hang=True)
    try:
        corp_id, admin, _secret = _setup(receiver.url)
        _invest(admin)
        dead = wait_for(lambda: (d := _delivery(corp_id)) is not None and d.state == "dead" and d, 30)
        attempts = _attempts(dead.id)
        assert len(attempts) == 3 and all(a.status_code is None for a in attempts)
        assert all(a.error == "no answer in time" for a in attempts)
        with session_scope() as s:
            job = s.scalar(select(Job).where(Job.name == service.DELIVER_JOB, Job.corp_id == corp_id))
            assert job.state == "dead" and job.attempt == 3
    finally:
        receiver.close()


def test_a_corp_without_endpoints_gets_no_webhook_jobs(session):
    """Most corps have no webhook endpoint: their customer events make no fan-out work at all (the
    WeCom callback enqueues nothing for it); once an endpoint subscribes to an event, that event's
    job carries the fan-out (run together with the other domains' database work), and only that
    event's: an endpoint for losses adds nothing to adds."""
    from siyu.jobs.events import publish

    corp = tenancy.create_corp(session, slug="nohook-" + uuid.uuid4().hex[:8], name="无回调银行")

    def fan_outs(event: str) -> int:
        jobs = session.scalars(select(Job).where(Job.corp_id == corp.id, Job.name.startswith(f"event:{event}:")))
        return sum(1 for j in jobs if j.name == f"event:{event}:integration.webhooks"
                   or "integration.webhooks" in (j.payload.get("subscribers") or []))

    publish(session, "customer.lost", {"external_userid": "wm1", "userid": "adv"}, corp_id=corp.id, key="a")
    assert fan_outs("customer.lost") == 0
    service.create_endpoint(session, principal=principal_of(make_staff(session, corp, roles=("administrator",))),
                            url="https://firm.example/hook", events=["customer.lost"])
    publish(session, "customer.lost", {"external_userid": "wm2", "userid": "adv"}, corp_id=corp.id, key="b")
    assert fan_outs("customer.lost") == 1
    publish(session, "customer.added", {"external_userid": "wm3", "userid": "adv"}, corp_id=corp.id, key="c")
    assert fan_outs("customer.added") == 0
