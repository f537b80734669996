"""A handover WeCom completes (在职/离职继承) is not a loss and not a new channel add: WeCom sends
`del_external_contact` with `Source=DELETE_BY_TRANSFER` to the handing advisor and an
`add_external_contact` (no State, no WelcomeCode) to the taking one. The events run through the
real subscribers here, as the worker would run them."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from siyu.acquisition import jobs as acquisition_jobs
from siyu.acquisition.models import ChannelAdd, WelcomeFollowUp
from siyu.customers import jobs as customer_jobs
from siyu.customers.models import Customer, CustomerEvent, CustomerFollow
from siyu.customers.service import follow_endings
from siyu.db import utcnow
from siyu.jobs.registry import JobContext
from siyu.wecom.emulator.callbacks import event_xml
from siyu.wecom.events import parse_event

from .test_service import A, _code, corp, fast_argon2  # noqa: F401  (fixtures)

EXT = "wmTRANSFER000001"


def _run(session, corp, event_id: int, change_type: str, fields) -> str:  # noqa: F811 (the corp fixture)
    """Parse the event as the callback endpoint does and run the subscribers of its domain event."""
    at = int(utcnow().timestamp())
    event = parse_event(event_xml("ww-transfer", at, "change_external_contact", change_type, fields))
    payload = {**event.payload(), "inbox_event_id": event_id, "received_at": utcnow().isoformat()}
    now = dt.datetime.now(dt.UTC)
    ctx = JobContext(id=event_id, name=event.domain_event, attempt=1, max_attempts=5, queue="default",
                     corp_id=corp.id, run_at=now, enqueued_at=now, worker_id="t")
    if event.domain_event == "customer.added":
        customer_jobs.upsert_contact(session, payload, ctx)
        acquisition_jobs.attribute(session, payload, ctx)
        if not payload.get("welcome_code"):  # (a welcome code's send runs transactions of its own)
            acquisition_jobs.send_welcome(session, payload, ctx)
    elif event.domain_event == "customer.deleted":
        customer_jobs.contact_deleted(session, payload, ctx)
        acquisition_jobs.customer_deleted(session, payload, ctx)
    elif event.domain_event == "customer.transferred_out":
        customer_jobs.contact_transferred_out(session, payload, ctx)
    session.flush()
    return event.domain_event


def test_a_completed_handover_is_neither_a_loss_nor_a_channel_add(session, corp):  # noqa: F811
    code = _code(session, corp, advisors=[A("zhangsan"), A("lisi")])
    since = utcnow() - dt.timedelta(hours=1)
    # The customer scans the channel code and adds zhangsan (with a welcome code).
    _run(session, corp, 7001, "add_external_contact",
         [("UserID", "zhangsan"), ("ExternalUserID", EXT), ("State", code.state), ("WelcomeCode", "WC1")])
    # 24 h after the transfer request WeCom completes it: the handing advisor's DELETE_BY_TRANSFER ...
    name = _run(session, corp, 7002, "del_external_contact",
                [("UserID", "zhangsan"), ("ExternalUserID", EXT), ("Source", "DELETE_BY_TRANSFER")])
    assert name == "customer.transferred_out"
    customer = session.scalar(select(Customer).where(Customer.corp_id == corp.id, Customer.external_userid == EXT))
    assert customer.stage != "lost"
    follows = {f.wecom_userid: f.status for f in session.scalars(
        select(CustomerFollow).where(CustomerFollow.customer_id == customer.id))}
    assert follows == {"zhangsan": "transferred"}
    # ... and the taking advisor's add, without State or WelcomeCode.
    _run(session, corp, 7003, "add_external_contact", [("UserID", "lisi"), ("ExternalUserID", EXT)])
    follows = {f.wecom_userid: f.status for f in session.scalars(
        select(CustomerFollow).where(CustomerFollow.customer_id == customer.id))}
    assert follows == {"zhangsan": "transferred", "lisi": "active"}

    # Acquisition: one channel add, still with the firm; no follow-up to greet a "new" customer.
    (add,) = session.scalars(select(ChannelAdd).where(ChannelAdd.corp_id == corp.id))
    assert (add.advisor_userid, add.lost_at) == ("zhangsan", None)
    assert session.scalars(select(WelcomeFollowUp).where(WelcomeFollowUp.corp_id == corp.id)).all() == []
    # Service quality: nobody lost or deleted a customer.
    assert follow_endings(session, corp_id=corp.id, since=since, until=utcnow() + dt.timedelta(minutes=1)) == {}
    # The timeline names the handover.
    kinds = [(e.kind, (e.detail or {}).get("change_type")) for e in session.scalars(
        select(CustomerEvent).where(CustomerEvent.customer_id == customer.id).order_by(CustomerEvent.id))]
    assert ("transferred", None) in kinds and ("added", "transfer") in kinds


def test_an_advisor_deleting_a_customer_is_still_a_loss(session, corp):  # noqa: F811
    code = _code(session, corp, advisors=[A("zhangsan")])
    _run(session, corp, 7101, "add_external_contact",
         [("UserID", "zhangsan"), ("ExternalUserID", EXT), ("State", code.state), ("WelcomeCode", "WC2")])
    assert _run(session, corp, 7102, "del_external_contact",
                [("UserID", "zhangsan"), ("ExternalUserID", EXT)]) == "customer.deleted"
    customer = session.scalar(select(Customer).where(Customer.corp_id == corp.id, Customer.external_userid == EXT))
    assert customer.stage == "lost"
    (add,) = session.scalars(select(ChannelAdd).where(ChannelAdd.corp_id == corp.id))
    assert add.lost_at is not None
    # An add without a welcome code that is no handover still asks the advisor to greet by hand.
    _run(session, corp, 7103, "add_external_contact", [("UserID", "zhangsan"), ("ExternalUserID", "wmOTHER0000001")])
    assert len(session.scalars(select(WelcomeFollowUp).where(WelcomeFollowUp.corp_id == corp.id)).all()) == 1
