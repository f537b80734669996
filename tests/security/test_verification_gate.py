"""The verification gate: a non-customer's number is answered exactly like a customer's (no SMS is
sent, the visitor cannot tell), every check counts against the limits, and with the firm's system
a number alone never verifies: the one-time code is always required."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from acquisition.test_verification import IP, PHONE, SECRET, T0, FirmHook, Outbox, _community, _open, _send
from siyu.acquisition import verification as v
from siyu.acquisition.models import VerificationCode
from siyu.errors import InvalidInput
from tenancy.factories import make_corp

STRANGER = "13900009999"


@pytest.fixture
def corp(session):
    return make_corp(session, name="门槛银行")


@pytest.fixture
def firm(session, corp):
    hook = FirmHook({PHONE: "C0001234"})
    v.save_hook(session, corp_id=corp.id, actor="test", url=hook.url, secret=SECRET)
    yield hook
    hook.close()


def _visible(visit) -> str:
    """What the H5 page shows next: the same rule as acquisition.h5."""
    from siyu.acquisition.h5 import step_of

    return step_of(visit)


def test_a_stranger_and_a_customer_see_the_same_answer(session, corp, firm):
    outbox = Outbox()
    community = _community(session, corp, verify_by="both")
    t1, k1, customer_visit = _open(session, community)
    t2, k2, stranger_visit = _open(session, community, ip="203.0.113.50")
    a = _send(session, t1, k1, outbox)
    b = v.request_code(session, token=t2, key=k2, phone=STRANGER, ip="203.0.113.50", now=T0, provider=outbox,
                       consent_version=0)
    assert _visible(a) == _visible(b) == "code"
    assert [p for p, _t in outbox.sent] == [PHONE]  # no SMS to a number the firm does not know
    # Any code the stranger types is "not right", exactly as a customer's wrong code.
    with pytest.raises(InvalidInput) as wrong:
        v.enter_code(session, token=t2, key=k2, code="123456", ip="203.0.113.50", now=T0)
    assert wrong.value.msgid == "the code is not right; %(n)s tries left"


def test_every_check_counts_against_the_limits(session, corp, firm):
    outbox = Outbox()
    community = _community(session, corp, verify_by="both")
    for i in range(v.MAX_SENDS_PER_IP_HOUR):
        token, key, _ = _open(session, community, ip="203.0.113.77")
        v.request_code(session, token=token, key=key, phone=f"1390000{i:04d}", ip="203.0.113.77",
                       now=T0 + i * v.MIN_SEND_INTERVAL, provider=outbox, consent_version=0)
    token, key, _ = _open(session, community, ip="203.0.113.77")
    with pytest.raises(v.RateLimited):
        v.request_code(session, token=token, key=key, phone="13900005555", ip="203.0.113.77",
                       now=T0 + 30 * v.MIN_SEND_INTERVAL, provider=outbox, consent_version=0)
    assert session.scalar(select(func.count()).select_from(VerificationCode)
                          .where(VerificationCode.corp_id == corp.id)) == v.MAX_SENDS_PER_IP_HOUR
    assert len(firm.requests) == v.MAX_SENDS_PER_IP_HOUR  # refused before the firm is asked


def test_firm_verification_never_accepts_a_number_alone(session, corp, firm):
    outbox = Outbox()
    community = _community(session, corp, verify_by="firm")
    token, key, _ = _open(session, community)
    visit = _send(session, token, key, outbox)
    assert visit.status == "code_sent" and len(outbox.sent) == 1
    done = v.enter_code(session, token=token, key=key, code=outbox.last_code(), ip=IP, now=T0)
    assert done.status == "verified" and done.firm_customer_id == "C0001234"


def test_the_firm_hook_must_be_https(session, corp, monkeypatch):
    from siyu.config import get_settings

    monkeypatch.setattr(get_settings(), "outbound_local_networks", [])
    with pytest.raises(InvalidInput) as refused:
        v.save_hook(session, corp_id=corp.id, actor="t", url="http://firm.example/verify", secret=SECRET)
    assert refused.value.field == "url"
    v.save_hook(session, corp_id=corp.id, actor="t", url="https://firm.example/verify", secret=SECRET)
