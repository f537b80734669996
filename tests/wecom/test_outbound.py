"""Send once: an outbound effect is made at most once per key, whatever fails around it; and a
stored event that was not dispatched is dispatched by its job, once."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from sqlalchemy import select

from siyu.db import session_scope
from siyu.jobs.models import Job
from siyu.jobs.registry import JobContext
from siyu.tenancy import service as tenancy
from siyu.wecom import inbox, service
from siyu.wecom.crypto import generate_aes_key
from siyu.wecom.emulator.callbacks import event_xml
from siyu.wecom.errors import RateLimited, SystemBusy, WelcomeNotNeeded
from siyu.wecom.jobs import process_event
from siyu.wecom.models import WecomOutbound


@pytest.fixture
def corp_id(database_url) -> int:
    with session_scope() as s:
        corp = tenancy.create_corp(s, slug="out-" + uuid.uuid4().hex[:8], name="发送测试银行")
        return corp.id


def record(corp_id: int, key: str) -> WecomOutbound:
    with session_scope() as s:
        return s.scalar(select(WecomOutbound).where(WecomOutbound.corp_id == corp_id, WecomOutbound.effect_key == key))


def test_a_sent_effect_is_never_sent_again(corp_id):
    calls = []
    first = service.send_once(corp_id=corp_id, effect_key="welcome:1", endpoint="send_welcome_msg",
                              call=lambda: calls.append(1))
    again = service.send_once(corp_id=corp_id, effect_key="welcome:1", endpoint="send_welcome_msg",
                              call=lambda: calls.append(2))
    assert (first.state, first.sent_now, again.state, again.sent_now, calls) == ("sent", True, "sent", False, [1])


def test_a_refusal_that_left_nothing_is_retried_and_an_unanswered_call_is_not(corp_id):
    def limited():
        raise RateLimited(45009, "api freq out of limit", "externalcontact/send_welcome_msg")

    out = service.send_once(corp_id=corp_id, effect_key="k1", endpoint="send_welcome_msg", call=limited)
    assert (out.state, out.errcode) == ("failed", 45009) and record(corp_id, "k1").retryable
    out = service.send_once(corp_id=corp_id, effect_key="k1", endpoint="send_welcome_msg", call=lambda: None)
    assert out.sent_now and record(corp_id, "k1").attempts == 2

    def lost_answer():
        raise SystemBusy(-1, "HTTP 502", "externalcontact/add_msg_template", maybe_applied=True)

    calls = []
    out = service.send_once(corp_id=corp_id, effect_key="k2", endpoint="add_msg_template", call=lost_answer)
    assert out.state == "unknown"
    out = service.send_once(corp_id=corp_id, effect_key="k2", endpoint="add_msg_template",
                            call=lambda: calls.append(1))
    assert out.state == "unknown" and calls == [], "a call that may have reached WeCom is never repeated"


def test_a_welcome_whose_answer_was_lost_is_tried_again_and_a_used_code_is_not_a_failure(corp_id):
    def lost_answer():
        raise SystemBusy(-1, "HTTP 503", "externalcontact/send_welcome_msg", maybe_applied=True)

    def code_used():
        raise WelcomeNotNeeded(41051, "welcome code used", "externalcontact/send_welcome_msg")

    out = service.send_once(corp_id=corp_id, effect_key="w", endpoint="send_welcome_msg", call=lost_answer,
                            repeat_safe=True)
    assert out.state == "failed" and record(corp_id, "w").retryable
    # The repeat finds the code used up: the first attempt probably arrived; not a failure, not repeated.
    out = service.send_once(corp_id=corp_id, effect_key="w", endpoint="send_welcome_msg", call=code_used,
                            repeat_safe=True)
    assert out.state == "unknown" and not record(corp_id, "w").retryable


def test_a_worker_that_died_mid_call_leaves_unknown_not_a_second_send(corp_id):
    with session_scope() as s:
        claim = service.claim_effect(s, corp_id=corp_id, effect_key="crash", endpoint="send_welcome_msg")
    assert claim.outbound_id is not None  # ... and the process died here, during the call
    calls = []
    out = service.send_once(corp_id=corp_id, effect_key="crash", endpoint="send_welcome_msg",
                            call=lambda: calls.append(1))
    assert (out.state, calls) == ("unknown", [])


def test_a_stored_event_is_dispatched_by_its_job_once(session):
    corp = tenancy.create_corp(session, slug="disp-" + uuid.uuid4().hex[:8], name="分发测试银行",
                               wecom_corp_id="ww" + uuid.uuid4().hex[:12])
    plaintext = event_xml(corp.wecom_corp_id, 1764000000, "change_external_contact", "del_follow_user",
                          [("UserID", "zhangsan"), ("ExternalUserID", "wmLOST0001")])
    stored = inbox.record_event(session, plaintext=plaintext)
    ctx = JobContext(id=1, name="wecom.process_event", attempt=1, max_attempts=10, queue="wecom", corp_id=corp.id,
                     run_at=dt.datetime.now(dt.UTC), enqueued_at=dt.datetime.now(dt.UTC), worker_id="test")
    process_event(session, {"event_id": stored.id}, ctx)
    process_event(session, {"event_id": stored.id}, ctx)
    assert inbox.get_event(session, event_id=stored.id).processed_at is not None
    # Processed twice, dispatched once: the jobs customer.lost makes for this corp (one per subscriber
    # that wants its events, the database-only ones sharing one), whatever they are.
    from siyu.jobs.events import _jobs_for

    jobs = session.scalars(select(Job.name).where(Job.corp_id == corp.id, Job.name.like("event:customer.lost:%"))).all()
    assert jobs and sorted(jobs) == sorted(j["name"] for j in _jobs_for(session, "customer.lost", {}, corp_id=corp.id,
                                                                          key=None))


def test_a_welcome_that_needs_review_is_pending_until_a_checker_approves(session):
    from siyu.compliance.service import content_for_send

    corp = tenancy.create_corp(session, slug="rev-" + uuid.uuid4().hex[:8], name="审查测试银行")
    service.configure_connection(session, corp_id=corp.id, actor="t", wecom_corp_id="ww" + uuid.uuid4().hex[:12],
                                 secret="s", token="tok123", aes_key=generate_aes_key())
    text = "您好，这是我们的独家产品"  # "独家" is for a compliance officer to judge
    cfg = service.set_default_welcome(session, corp_id=corp.id, actor="t", enabled=True, text=text)
    assert cfg.welcome_enabled
    held = content_for_send(session, corp_id=corp.id, kind="welcome", owner=("corp", corp.id))
    assert held.held and held.text is None and held.held_reason == "awaiting approval"
    from compliance.gate import approve_all

    approve_all(session, corp.id)
    assert content_for_send(session, corp_id=corp.id, kind="welcome", owner=("corp", corp.id)).text == text
