"""The feed over real HTTP: a customer adds an advisor through a channel code at the emulated WeCom,
the signed callback reaches Siyu's server, a real worker runs the add's shared job, and the event
store holds one customer.added with the code's channel, campaign, persona, advisor and the welcome
variant the customer was sent; WeCom delivering the callback again records nothing twice; the add
still costs three jobs."""

from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import func, select

from compliance.gate import approve_all
from siyu.acquisition import service, welcome
from siyu.acquisition.models import WelcomeSend
from siyu.analytics.models import AnalyticsEvent
from siyu.customers import contacts
from siyu.db import session_scope
from siyu.jobs.models import Job
from wecom.conftest import emulator, wire_siyu_corp  # noqa: F401  (the emulator server fixture)
from wecom.test_pipeline import siyu_server, wait_for, worker  # noqa: F401  (server and worker fixtures)

pytestmark = pytest.mark.slow


@pytest.fixture
def wired(emulator, siyu_server, worker):  # noqa: F811
    corp = wire_siyu_corp(emulator, callback_base_url=siyu_server.base_url, name="分析管道银行",
                          slug_prefix="anf", siyu_staff=("zhangsan",))
    with session_scope() as s:
        expert = next(p for p in service.list_personas(s, corp_id=corp.corp_id) if p.kind == "knowledge_expert")
        code = service.create_channel_code(s, corp_id=corp.corp_id, actor="test", name="手机银行入口",
                                           channel="mobile_banking", campaign="spring-2026", persona_id=expert.id,
                                           advisors=[service.AdvisorSpec("zhangsan")])
        welcome.add_variant(s, corp_id=corp.corp_id, actor="test", code_id=code.id, text="您好，新客礼包已备好。")
        welcome.add_variant(s, corp_id=corp.corp_id, actor="test", code_id=code.id, text="欢迎，回复 1 领取礼包。")
        welcome.save_flow(s, corp_id=corp.corp_id, actor="test", code_id=code.id, enabled=True)
        approve_all(s, corp.corp_id)
        return corp.corp_id, corp.wecom_id, code.id, expert.id


def _events(corp_id):
    with session_scope() as s:
        rows = s.scalars(select(AnalyticsEvent).where(AnalyticsEvent.corp_id == corp_id)).all()
        s.expunge_all()
        return rows


def test_an_add_is_one_customer_added_with_its_channel_and_a_redelivery_adds_nothing(emulator, wired):  # noqa: F811
    corp_id, wecom_id, code_id, persona_id = wired
    code = wait_for(lambda: (c := _active(corp_id, code_id)) is not None and c, timeout=20)
    # WeCom delivers this add's callback more than once (no acknowledgement seen, or just twice).
    emulator.post(f"/corps/{wecom_id}/faults", {"duplicate_callback_rate": 1.0})
    added = emulator.post(f"/corps/{wecom_id}/add_contact", {"config_id": code.config_id, "userid": "zhangsan"})

    def welcomed():
        with session_scope() as s:
            return s.scalar(select(WelcomeSend).where(WelcomeSend.corp_id == corp_id))

    send = wait_for(welcomed, timeout=20)
    (event,) = wait_for(lambda: _events(corp_id), timeout=20)

    def all_finished():
        with session_scope() as s:
            return not s.scalar(select(func.count()).select_from(Job).where(
                Job.corp_id == corp_id, Job.state.in_(("queued", "running", "failed"))))

    wait_for(all_finished, timeout=20)
    with session_scope() as s:
        customer = contacts.get_by_external_id(s, corp_id=corp_id, external_userid=added["external_userid"])
        jobs = Counter(s.scalars(select(Job.name).where(Job.corp_id == corp_id,
                                                        Job.name.like("event:customer.added%"))).all())
    events = _events(corp_id)
    assert len(events) == 1, "the repeated callback records nothing twice"
    assert (event.type, event.customer_id, event.customer_key) == ("customer.added", customer.id, str(customer.id))
    assert (event.channel, event.campaign, event.advisor, event.persona) == (code.state, "spring-2026", "zhangsan",
                                                                             str(persona_id))
    assert event.variant == str(send.variant_id), "the variant the customer was sent"
    assert event.source_key.startswith("wecom:") and event.source_key.endswith(":added")
    assert jobs == {"event:customer.added:together:default": 1, "event:customer.added:acquisition.welcome": 1}, \
        "the feed runs in the add's shared job"

    # The customer deletes the advisor: one customer.lost, with the advisor.
    emulator.post(f"/corps/{wecom_id}/delete_follow", {"userid": "zhangsan",
                                                       "external_userid": added["external_userid"]})
    lost = wait_for(lambda: [e for e in _events(corp_id) if e.type == "customer.lost"], timeout=20)
    assert [(e.customer_id, e.advisor) for e in lost] == [(customer.id, "zhangsan")]


def _active(corp_id, code_id):
    with session_scope() as s:
        code = service.get_channel_code(s, corp_id=corp_id, code_id=code_id)
        if code.status != "active":
            return None
        s.expunge(code)
        return code
