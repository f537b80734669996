"""Backfill: the event store written from what Siyu stored before the feed ran (or while it was off).

| stored | event | source key (the feed's own, so live and backfilled rows never double) |
| --- | --- | --- |
| timeline adds (no handover take-over) | customer.added | `wecom:<inbox id>:added` / `customer_event:<id>` |
| follows with no add on the timeline (a full sync found them) | customer.added | `follow:<id>:added` |
| timeline losses (customer left) | customer.lost | `wecom:<inbox id>:lost` / `customer_event:<id>` |
| verifications at the gate | customer.verified | `verification:<id>` |
| group stays of known customers | group.joined, group.left | `stay:<id>:joined`, `stay:<id>:left` |
| the firm's orders | order.invested, order.redeemed | `firm_order:<id>` |

An add's welcome variant is the one its welcome send (`welcome_send`, by inbox event) used; its
campaign and persona are its channel code's. It reads those tables read-only, in id order and
in batches of `batch` rows, each batch written in one statement (insert-or-ignore): run twice, it
writes the same rows once. `run` is the whole of it for one corp; the job `analytics.backfill`
and `siyu analytics backfill --corp CODE` call it."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import typer
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.analytics import service
from siyu.jobs.registry import JobContext, PermanentFailure, job_handler

log = logging.getLogger(__name__)

BATCH = 5000
JOB = "analytics.backfill"


def _pages(session: Session, query, id_col, batch: int) -> Iterator[list[Any]]:
    last = 0
    while True:
        rows = session.execute(query.where(id_col > last).order_by(id_col).limit(batch)).all()
        if not rows:
            return
        yield rows
        last = rows[-1][0]


class _Codes:
    """Channel codes by state (campaign, persona), read once per state."""

    def __init__(self, session: Session, corp_id: int):
        self.session, self.corp_id, self.cache = session, corp_id, {}

    def dims(self, state: str | None) -> dict[str, str | None]:
        from siyu.acquisition.models import ChannelCode

        if not state:
            return {}
        if state not in self.cache:
            row = self.session.execute(select(ChannelCode.campaign, ChannelCode.persona_id).where(
                ChannelCode.corp_id == self.corp_id, ChannelCode.state == state)).first()
            self.cache[state] = ({"campaign": row.campaign or None,
                                  "persona": str(row.persona_id) if row.persona_id else None} if row else {})
        return self.cache[state]


def _inbox_id(source_key: str | None) -> int | None:
    parts = (source_key or "").split(":")
    if len(parts) == 3 and parts[0] == "wecom" and parts[1].isdigit():
        return int(parts[1])
    return None


def _adds_and_losses(session: Session, corp_id: int, batch: int) -> int:
    from siyu.acquisition.models import WelcomeSend
    from siyu.customers.models import CustomerEvent, CustomerFollow

    codes, n = _Codes(session, corp_id), 0
    on_timeline: set[tuple[int, str]] = set()
    q = select(CustomerEvent.id, CustomerEvent.customer_id, CustomerEvent.kind, CustomerEvent.at,
               CustomerEvent.detail, CustomerEvent.source_key).where(
        CustomerEvent.corp_id == corp_id, CustomerEvent.kind.in_(("added", "lost")))
    for page in _pages(session, q, CustomerEvent.id, batch):
        inbox_ids = [i for r in page if r.kind == "added" and (i := _inbox_id(r.source_key)) is not None]
        variants = dict(session.execute(select(WelcomeSend.inbox_event_id, WelcomeSend.variant_id).where(
            WelcomeSend.corp_id == corp_id, WelcomeSend.inbox_event_id.in_(inbox_ids))).all()) if inbox_ids else {}
        rows = []
        for r in page:
            detail = r.detail if isinstance(r.detail, dict) else {}
            advisor = detail.get("wecom_userid") if isinstance(detail.get("wecom_userid"), str) else None
            key = r.source_key or f"customer_event:{r.id}"
            if r.kind == "added":
                if advisor:
                    on_timeline.add((r.customer_id, advisor))
                if detail.get("change_type") == "transfer":
                    continue
                state = detail.get("state") if isinstance(detail.get("state"), str) else None
                variant = variants.get(_inbox_id(r.source_key))
                rows.append(service.event_row(corp_id=corp_id, customer_id=r.customer_id, type="customer.added",
                                              ts=r.at, source_key=key, channel=state, advisor=advisor,
                                              variant=str(variant) if variant else None, **codes.dims(state)))
            else:
                rows.append(service.event_row(corp_id=corp_id, customer_id=r.customer_id, type="customer.lost",
                                              ts=r.at, source_key=key, advisor=advisor))
        n += service.record_many(session, rows)
    q = select(CustomerFollow.id, CustomerFollow.customer_id, CustomerFollow.wecom_userid, CustomerFollow.add_time,
               CustomerFollow.state).where(CustomerFollow.corp_id == corp_id)
    for page in _pages(session, q, CustomerFollow.id, batch):
        n += service.record_many(session, [
            service.event_row(corp_id=corp_id, customer_id=r.customer_id, type="customer.added", ts=r.add_time,
                              source_key=f"follow:{r.id}:added", channel=r.state, advisor=r.wecom_userid,
                              **codes.dims(r.state))
            for r in page if (r.customer_id, r.wecom_userid) not in on_timeline])
    return n


def _verifications(session: Session, corp_id: int, batch: int) -> int:
    from siyu.acquisition.models import CustomerVerification
    from siyu.customers.models import Customer

    n = 0
    q = select(CustomerVerification.id, CustomerVerification.at, CustomerVerification.external_userid,
               CustomerVerification.firm_customer_id).where(CustomerVerification.corp_id == corp_id)
    for page in _pages(session, q, CustomerVerification.id, batch):
        exts = {r.external_userid for r in page if r.external_userid}
        firms = {r.firm_customer_id for r in page if r.firm_customer_id}
        by_ext = dict(session.execute(select(Customer.external_userid, Customer.id).where(
            Customer.corp_id == corp_id, Customer.external_userid.in_(exts))).all()) if exts else {}
        by_firm = dict(session.execute(select(Customer.firm_customer_id, Customer.id).where(
            Customer.corp_id == corp_id, Customer.firm_customer_id.in_(firms))).all()) if firms else {}
        rows = []
        for r in page:
            customer_id = by_ext.get(r.external_userid) or by_firm.get(r.firm_customer_id)
            if customer_id is not None:
                rows.append(service.event_row(corp_id=corp_id, customer_id=customer_id, type="customer.verified",
                                              ts=r.at, source_key=f"verification:{r.id}"))
        n += service.record_many(session, rows)
    return n


def _stays(session: Session, corp_id: int, batch: int) -> int:
    from siyu.communities.models import GroupChat, GroupMember

    n = 0
    q = (select(GroupMember.id, GroupMember.customer_id, GroupMember.joined_at, GroupMember.left_at,
                GroupMember.state, GroupChat.chat_id, GroupChat.owner_userid)
         .join(GroupChat, GroupChat.id == GroupMember.group_id)
         .where(GroupMember.corp_id == corp_id, GroupMember.customer_id.is_not(None)))
    for page in _pages(session, q, GroupMember.id, batch):
        rows = []
        for r in page:
            dims = {"group_key": r.chat_id, "join_way": r.state, "advisor": r.owner_userid or None}
            rows.append(service.event_row(corp_id=corp_id, customer_id=r.customer_id, type="group.joined",
                                          ts=r.joined_at, source_key=f"stay:{r.id}:joined", **dims))
            if r.left_at is not None:
                rows.append(service.event_row(corp_id=corp_id, customer_id=r.customer_id, type="group.left",
                                              ts=r.left_at, source_key=f"stay:{r.id}:left", **dims))
        n += service.record_many(session, rows)
    return n


def _orders(session: Session, corp_id: int, batch: int) -> int:
    from siyu.integration.models import FirmOrder

    n = 0
    q = select(FirmOrder.id, FirmOrder.customer_id, FirmOrder.kind, FirmOrder.occurred_at, FirmOrder.amount_fen,
               FirmOrder.product_code).where(FirmOrder.corp_id == corp_id)
    for page in _pages(session, q, FirmOrder.id, batch):
        n += service.record_many(session, [
            service.event_row(corp_id=corp_id, customer_id=r.customer_id,
                              type="order.invested" if r.kind == "investment" else "order.redeemed",
                              ts=r.occurred_at, source_key=f"firm_order:{r.id}", product=r.product_code,
                              amount_fen=r.amount_fen)
            for r in page])
    return n


PARTS = (("customer.added/lost", _adds_and_losses), ("customer.verified", _verifications),
         ("group.joined/left", _stays), ("order.invested/redeemed", _orders))


def run(session: Session, *, corp_id: int, batch: int = BATCH) -> dict[str, int]:
    """Backfills one corp; returns the number of NEW events per part (0 everywhere on a second run)."""
    if batch < 1:
        raise ValueError("batch must be at least 1")
    return {name: part(session, corp_id, batch) for name, part in PARTS}


def enqueue_backfill(session: Session, *, corp_id: int) -> None:
    """Asks a worker to backfill the corp (once at a time: a second request while one waits is the same job)."""
    from siyu.db import utcnow
    from siyu.jobs.service import enqueue

    enqueue(session, name=JOB, payload={}, corp_id=corp_id,
            idempotency_key=f"{JOB}:{corp_id}:{utcnow():%Y%m%d%H%M}")


@job_handler(JOB, max_attempts=5)
def backfill_job(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    if job.corp_id is None:
        raise PermanentFailure("the job has no corp")
    counts = run(session, corp_id=job.corp_id)
    log.info("analytics backfill of corp %s: %s", job.corp_id, counts)


def backfill_command(
    corp: str = typer.Option(..., "--corp", help="the corp's code (slug)"),
    batch: int = typer.Option(BATCH, "--batch", min=1, help="rows read and written per statement"),
) -> None:
    """Write the analytics events of what is already stored (adds, losses, verifications, group stays,
    orders); safe to run again (nothing is written twice). Prints the new events per kind as JSON."""
    import json

    from siyu.db import session_scope
    from siyu.tenancy.models import Corp

    with session_scope() as s:
        corp_id = s.scalar(select(Corp.id).where(Corp.slug == corp))
        if corp_id is None:
            typer.echo(f"no corp with the code {corp!r}", err=True)
            raise typer.Exit(2)
        counts = run(s, corp_id=corp_id, batch=batch)
    typer.echo(json.dumps({"corp": corp, "new_events": counts}, ensure_ascii=False))
