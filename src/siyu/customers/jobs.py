"""Subscribers to the WeCom connector's contact events, and the job that reads a customer's profile.

An add is recorded at once from the event alone (customer, follow relation with its channel
`state`, timeline), in the handler's transaction. Reading the name, gender, unionid, remarks and
tags from `externalcontact/get` is a job of its own (`customers.fetch_profile`): the HTTP call holds
no database transaction, and WeCom being slow or rate-limited delays the profile, never the add.

Every handler is idempotent: the timeline entries carry the inbox event's key and follow changes
compare event times, so a redelivered or re-run event changes nothing twice."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from sqlalchemy.orm import Session

from siyu.customers import contacts
from siyu.customers.models import Customer, FollowStatus, LifecycleStage
from siyu.db import session_scope, utcnow
from siyu.errors import NotFound
from siyu.jobs.events import job_name_for, publish, subscribe
from siyu.jobs.registry import (
    JobContext,
    PermanentFailure,
    RetryLater,
    batch_handler,
    builtin_schedule,
    job_handler,
)
from siyu.jobs.service import enqueue

log = logging.getLogger(__name__)

FETCH_PROFILE = "customers.fetch_profile"


def _corp_id(job: JobContext) -> int:
    if job.corp_id is None:
        raise PermanentFailure("a contact event without a corp")
    return job.corp_id


def _required(payload: dict[str, Any], key: str) -> str:
    value = payload.get(key)
    if not isinstance(value, str) or not value or len(value) > 64:
        raise PermanentFailure(f"payload.{key} is missing or not a WeCom id")
    return value


def event_time(payload: dict[str, Any]) -> dt.datetime:
    """When WeCom says the event happened (CreateTime), else when Siyu received it."""
    create_time = payload.get("create_time")
    if isinstance(create_time, int) and 0 < create_time < 2**33:
        return dt.datetime.fromtimestamp(create_time, dt.UTC)
    try:
        at = dt.datetime.fromisoformat(str(payload["received_at"]))
        return at if at.tzinfo else at.replace(tzinfo=dt.UTC)
    except (KeyError, ValueError):
        return utcnow()


def _source_key(payload: dict[str, Any], kind: str) -> str | None:
    event_id = payload.get("inbox_event_id")
    return f"wecom:{event_id}:{kind}" if event_id is not None else None


def enqueue_profile_fetch(session: Session, *, corp_id: int, external_userid: str, reason: str) -> None:
    enqueue(session, name=FETCH_PROFILE, payload={"external_userid": external_userid}, corp_id=corp_id,
            idempotency_key=f"{FETCH_PROFILE}:{corp_id}:{external_userid}:{reason}"[:200])


@subscribe("customer.added", name="customers.upsert_contact", together=True)
def upsert_contact(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    """客户添加: the customer and the follow relation with its channel state and add time."""
    from siyu.customers.service import is_transfer_add

    corp_id = _corp_id(job)
    external_userid, userid = _required(payload, "external_userid"), _required(payload, "userid")
    state = payload.get("state") if isinstance(payload.get("state"), str) else None
    at = event_time(payload)
    change_type = str(payload.get("change_type") or "")
    if not payload.get("welcome_code") and is_transfer_add(session, corp_id=corp_id, external_userid=external_userid,
                                                           wecom_userid=userid, at=at):
        change_type = "transfer"  # the take-over advisor's add of a handover: named so on the timeline
    contacts.record_add(session, corp_id=corp_id, external_userid=external_userid, wecom_userid=userid,
                        at=at, state=state, source_key=_source_key(payload, "added"), change_type=change_type)
    enqueue_profile_fetch(session, corp_id=corp_id, external_userid=external_userid,
                          reason=f"event:{payload.get('inbox_event_id', job.id)}")


@batch_handler(job_name_for("customer.added", "customers.upsert_contact"))
def upsert_contacts(session: Session, payloads: list[dict[str, Any]], jobs: list[JobContext]) -> None:
    """Several adds recorded in one transaction (a burst of adds: one commit, not one per add)."""
    for payload, job in zip(payloads, jobs, strict=True):
        upsert_contact(session, payload, job)


@subscribe("customer.edited", name="customers.contact_edited", together=True)
def contact_edited(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    """客户信息变更 (remark, description, tags): read the profile again; an unknown customer is
    recorded as added then (the edit proves the follow relation)."""
    corp_id = _corp_id(job)
    external_userid, userid = _required(payload, "external_userid"), _required(payload, "userid")
    at = event_time(payload)
    if contacts.get_by_external_id(session, corp_id=corp_id, external_userid=external_userid) is None:
        contacts.record_add(session, corp_id=corp_id, external_userid=external_userid, wecom_userid=userid, at=at,
                            source_key=_source_key(payload, "added"), change_type="edit_external_contact")
    contacts.record_note_event(session, corp_id=corp_id, external_userid=external_userid, wecom_userid=userid, at=at,
                               kind="edited", detail={}, source_key=_source_key(payload, "edited"))
    enqueue_profile_fetch(session, corp_id=corp_id, external_userid=external_userid,
                          reason=f"event:{payload.get('inbox_event_id', job.id)}")


def _ended(session: Session, payload: dict[str, Any], job: JobContext, status: FollowStatus) -> None:
    corp_id = _corp_id(job)
    detail = {"source": payload["source"]} if isinstance(payload.get("source"), str) else {}
    contacts.record_end(session, corp_id=corp_id, external_userid=_required(payload, "external_userid"),
                        wecom_userid=_required(payload, "userid"), at=event_time(payload), status=status,
                        source_key=_source_key(payload, status.value), detail=detail)


@subscribe("customer.deleted", name="customers.contact_deleted", together=True)
def contact_deleted(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    """删除客户: the member of staff deleted the customer."""
    _ended(session, payload, job, FollowStatus.DELETED_BY_STAFF)


@subscribe("customer.lost", name="customers.contact_lost", together=True)
def contact_lost(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    """被客户删除: the customer deleted the member of staff."""
    _ended(session, payload, job, FollowStatus.LOST)


@subscribe("customer.transferred_out", name="customers.contact_transferred_out", together=True)
def contact_transferred_out(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    """删除企业客户 with Source=DELETE_BY_TRANSFER: a handover completed and WeCom moved the customer
    to the take-over advisor. The handing advisor's follow ends as `transferred`: not a deletion,
    not a loss (the customer stays the firm's, and never becomes `lost` through it)."""
    _ended(session, payload, job, FollowStatus.TRANSFERRED)


@subscribe("customer.transfer_failed", name="customers.transfer_failed", together=True)
def transfer_failed(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    """客户接替失败: on the timeline, with WeCom's reason (customer_refused / customer_limit_exceed)."""
    reason = payload.get("fail_reason")
    contacts.record_note_event(session, corp_id=_corp_id(job), external_userid=_required(payload, "external_userid"),
                               wecom_userid=_required(payload, "userid"), at=event_time(payload),
                               kind="transfer_failed",
                               detail={"fail_reason": reason[:64]} if isinstance(reason, str) else {},
                               source_key=_source_key(payload, "transfer_failed"))


@subscribe("customer.transferred", name="customers.follow_transferred", together=True)
def follow_transferred(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    """客户继承 completed (published by the compliance domain's handover): the take-over advisor
    follows the customer now and the handing advisor's follow relation ends."""
    try:
        at = dt.datetime.fromisoformat(str(payload.get("takeover_at")))
        at = at if at.tzinfo else at.replace(tzinfo=dt.UTC)
    except ValueError:
        at = utcnow()
    contacts.record_transfer(session, corp_id=_corp_id(job), external_userid=_required(payload, "external_userid"),
                             handover_userid=_required(payload, "handover_userid"),
                             takeover_userid=_required(payload, "takeover_userid"), at=at,
                             source_key=f"handover:{payload.get('handover_id')}:{job.id}")


def wecom_client(corp_id: int):
    """The corp's WeCom client, read in a short transaction of its own; None when not connected."""
    from siyu.wecom.service import client_for_corp

    with session_scope() as s:
        try:
            return client_for_corp(s, corp_id=corp_id)
        except NotFound:
            return None


@job_handler(FETCH_PROFILE, max_attempts=8)
def fetch_profile(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    """Read the customer from `externalcontact/get` and write name, gender, unionid, remarks and tags.

    The call is a read: no send-once record. It holds no transaction (the handler's session is used
    only after it). Rate limits and WeCom being busy raise, and the queue retries with backoff."""
    from siyu.wecom.errors import InvalidExternalUserId, NotExternalContact

    corp_id = _corp_id(job)
    external_userid = _required(payload, "external_userid")
    client = wecom_client(corp_id)
    if client is None:
        log.info("corp %s has no WeCom connection: profile of a customer not read", corp_id)
        return
    try:
        detail = client.get_external_contact(external_userid)
    except (InvalidExternalUserId, NotExternalContact):
        log.info("WeCom no longer knows a customer of corp %s: profile not read", corp_id)
        return
    contacts.apply_profile(session, corp_id=corp_id, detail=detail)


@batch_handler(FETCH_PROFILE)
def fetch_profiles(session: Session, payloads: list[dict[str, Any]], jobs: list[JobContext]) -> None:
    """Several profiles: every read first (holding no transaction), then all written in one."""
    from siyu.wecom.errors import InvalidExternalUserId, NotExternalContact

    details = []
    clients: dict[int, Any] = {}
    for payload, job in zip(payloads, jobs, strict=True):
        corp_id = _corp_id(job)
        external_userid = _required(payload, "external_userid")
        if corp_id not in clients:
            clients[corp_id] = wecom_client(corp_id)
        if clients[corp_id] is None:
            continue
        try:
            details.append((corp_id, clients[corp_id].get_external_contact(external_userid)))
        except (InvalidExternalUserId, NotExternalContact):
            continue
    for corp_id, detail in details:
        contacts.apply_profile(session, corp_id=corp_id, detail=detail)


# --- the firm's orders (published by siyu.integration) ------------------------------------------------------

# Lifecycle rule (docs/architecture.md, "Firm integration"): a first investment makes the customer
# `invested`; an investment after a redemption, or in another product than before (the publisher's
# `reinvestment` flag), makes them `reinvested`. A stage never moves back (reinvested stays), and a
# lost customer (no advisor follows them) keeps `lost`. A redemption goes on the timeline only.
_INVESTED_RANK = {LifecycleStage.INVESTED.value: 1, LifecycleStage.REINVESTED.value: 2}


def _order_customer(session: Session, payload: dict[str, Any], job: JobContext) -> Customer | None:
    corp_id = _corp_id(job)
    customer_id = payload.get("customer_id")
    customer = session.get(Customer, customer_id) if isinstance(customer_id, int) else None
    if customer is None or customer.corp_id != corp_id:
        return None
    return customer


def _order_time(payload: dict[str, Any]) -> dt.datetime:
    try:
        at = dt.datetime.fromisoformat(str(payload.get("occurred_at")))
        return at if at.tzinfo else at.replace(tzinfo=dt.UTC)
    except ValueError:
        return utcnow()


def _order_detail(payload: dict[str, Any]) -> dict[str, Any]:
    return {k: payload[k] for k in ("order_id", "product_code", "amount_fen", "product_risk_level")
            if isinstance(payload.get(k), str | int)}


@subscribe("customer.invested", name="customers.invested", together=True)
def order_invested(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    """已投资 / 已复投: the timeline entry and the lifecycle stage (rule above)."""
    customer = _order_customer(session, payload, job)
    if customer is None:
        return
    at, key = _order_time(payload), f"firm_order:{payload.get('firm_order_pk', job.id)}"
    contacts.record_event(session, corp_id=customer.corp_id, customer_id=customer.id, kind="invested", at=at,
                          actor="firm", detail=_order_detail(payload), source_key=f"{key}:invested")
    target = LifecycleStage.REINVESTED.value if payload.get("reinvestment") else LifecycleStage.INVESTED.value
    if customer.stage == LifecycleStage.LOST or _INVESTED_RANK.get(customer.stage, 0) >= _INVESTED_RANK[target]:
        return
    previous = customer.stage
    if contacts.change_stage(session, customer, target, at=at, actor="firm", source_key=key, reason="investment"):
        publish(session, "customer.stage_changed",
                {"external_userid": customer.external_userid, "firm_customer_id": customer.firm_customer_id,
                 "from": previous, "to": target, "stage": target},
                corp_id=customer.corp_id, key=f"{key}:stage")


@subscribe("customer.redeemed", name="customers.redeemed", together=True)
def order_redeemed(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    """赎回: on the timeline."""
    customer = _order_customer(session, payload, job)
    if customer is None:
        return
    contacts.record_event(session, corp_id=customer.corp_id, customer_id=customer.id, kind="redeemed",
                          at=_order_time(payload), actor="firm", detail=_order_detail(payload),
                          source_key=f"firm_order:{payload.get('firm_order_pk', job.id)}:redeemed")


def _reindex_contact(session: Session, corp_id: int, external_userid: str) -> None:
    from sqlalchemy import select

    from siyu.customers import search
    from siyu.customers.models import Customer

    customer = session.scalar(select(Customer).where(Customer.corp_id == corp_id,
                                                     Customer.external_userid == external_userid))
    if customer is not None:
        search.reindex(session, customer=customer)


@subscribe("customer.verified", name="customers.link_verified", together=True)
def link_verified(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    """A customer passed the verification gate with a known WeCom contact and the firm's customer
    id: link the two (`service.link_firm_customer`, audited). A contact Siyu does not know yet, or a
    firm id linked to another contact, is left for staff: logged, not retried."""
    from siyu.customers import service
    from siyu.errors import Conflict, InvalidInput
    from siyu.tenancy.principal import Principal

    corp_id = _corp_id(job)
    external_userid, firm_customer_id = payload.get("external_userid"), payload.get("firm_customer_id")
    if isinstance(external_userid, str) and external_userid:
        _reindex_contact(session, corp_id, external_userid)  # the verified phone: found by its last digits
    if not (isinstance(external_userid, str) and external_userid and isinstance(firm_customer_id, str)
            and firm_customer_id):
        return
    try:
        with session.begin_nested():
            service.link_firm_customer(session, principal=Principal.system(corp_id, "verification gate"),
                                       external_userid=external_userid, firm_customer_id=firm_customer_id)
    except (NotFound, Conflict, InvalidInput) as exc:
        log.info("verified customer not linked (verification %s): %s", payload.get("verification_id"), exc.msgid)


# --- corp tags both ways with WeCom (siyu.customers.tags) ------------------------------------------------------

from siyu.customers import tags as corp_tags  # noqa: E402

TAG_BUSY = (45009, 45033, -1)  # answers that left nothing at WeCom: try again later


@job_handler(corp_tags.SYNC_JOB, max_attempts=8)
def sync_corp_tags(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    """标签库: read every tag group from `get_corp_tag_list` (a read, holding no transaction) and
    make Siyu's groups and tags match (`tags.sync_library`). Rate limits raise and are retried."""
    corp_id = _corp_id(job)
    client = wecom_client(corp_id)
    if client is None:
        log.info("corp %s has no WeCom connection: tag library not read", corp_id)
        return
    groups = client.get_corp_tag_list()
    result = corp_tags.sync_library(session, corp_id=corp_id, groups=groups)
    log.info("tag library of corp %s synced: %s", corp_id, result.as_dict())


@job_handler("customers.daily_tag_sync")
def daily_tag_sync(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    """Every night: the tag library sync for each corp connected to WeCom, once per day."""
    from siyu.customers.listing import CALENDAR_ZONE
    from siyu.tenancy.service import connected_corp_ids

    day = utcnow().astimezone(CALENDAR_ZONE).date().isoformat()
    for corp_id in connected_corp_ids(session):
        enqueue(session, name=corp_tags.SYNC_JOB, payload={"daily": str(day)}, corp_id=corp_id, queue="wecom",
                idempotency_key=f"{corp_tags.SYNC_JOB}:{corp_id}:{day}")


builtin_schedule("customers.daily_tag_sync", cron="20 2 * * *", name="customers.daily_tag_sync")


@job_handler("customers.search_backfill")
def search_backfill(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    """Every few minutes: customers not yet in the search index (stored before it existed, or before
    its folding changed) are indexed, a batch at a time; new and changed customers are indexed as
    their profile is written."""
    from siyu.customers import search

    done = search.backfill(session)
    if done:
        log.info("search index: %s customers indexed", done)


builtin_schedule("customers.search_backfill", cron="*/5 * * * *", name="customers.search_backfill")


@job_handler(corp_tags.MARK_JOB, max_attempts=20)
def mark_tag(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    """Send one tag change made in Siyu to WeCom (`mark_tag`) at most once: the claim under the
    effect key `mark_tag:{mark id}` commits before the call, which holds no transaction."""
    from siyu.wecom import service as wecom

    corp_id = _corp_id(job)
    mark_id = payload.get("mark_id")
    if not isinstance(mark_id, int):
        raise PermanentFailure("payload.mark_id must be an integer")
    with session_scope() as s:
        call = corp_tags.mark_call(s, corp_id=corp_id, mark_id=mark_id)
        if call is None:
            return
        try:
            client = wecom.client_for_corp(s, corp_id=corp_id)
        except NotFound:
            client = None
        problem = ("the corp's WeCom connection is not set up" if client is None
                   else "the tag is no longer in the tag library" if not call.wecom_tag_id
                   else "no advisor follows this customer in WeCom" if not call.userid else "")
        if not problem:
            claim = wecom.claim_effect(s, corp_id=corp_id, effect_key=f"mark_tag:{mark_id}",
                                       endpoint="externalcontact/mark_tag")
    if problem:
        corp_tags.finish_mark(session, corp_id=corp_id, mark_id=mark_id, state="failed", detail=problem)
        return
    add, remove = ([call.wecom_tag_id], []) if call.action == "add" else ([], [call.wecom_tag_id])
    outcome = wecom.call_claimed(claim, lambda: client.mark_tag(
        userid=call.userid, external_userid=call.external_userid, add_tag=add, remove_tag=remove),
        repeat_safe=True, record_in=session)
    if outcome.state == "failed" and outcome.errcode in TAG_BUSY:
        raise RetryLater(2.0, f"WeCom busy ({outcome.errcode})")
    # "unknown" (the answer was lost): mark_tag is harmless to repeat, but the effect key says it
    # is not sent twice; the next profile read from WeCom shows what WeCom has.
    state = "sent" if outcome.state in ("sent", "unknown") else "failed"
    corp_tags.finish_mark(session, corp_id=corp_id, mark_id=mark_id, state=state, userid=call.userid,
                          errcode=outcome.errcode, detail=outcome.detail)
