"""Broadcasts (群发): a 1-on-1 mass message to an audience, each advisor as sender for their own
customers, under the delivery policy.

- `create_broadcast` stores the broadcast and submits its text to the content gate (kind
  `broadcast`): nothing goes out before a checker approves it.
- `preview` is the delivery plan of the audience (recipients and exclusions by reason, SQL).
- `send_now` / `schedule` queue `broadcasts.start` (now, or at the scheduled time).
- `broadcasts.start` (jobs) records the plan in the delivery ledger in one statement (recipients
  `planned` with their advisor, the excluded `aborted` with the reason), and makes one
  `broadcast_send` per advisor (per 10,000 customers), each with a `broadcasts.send` job.
- `broadcasts.send` claims its intent (state `calling`) in a committed transaction before the
  add_msg_template call; a send found `calling` after a crash is reconciled with WeCom's list of the
  advisor's mass messages (`get_groupmsg_list_v2`), never sent again blindly.
- `broadcasts.check` reads the results per advisor (sent, not a friend, over the day's allowance,
  not confirmed) into the ledger and the send; advisors who have not confirmed are reminded
  (`broadcasts.remind`, the corp's application message) once.
"""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from siyu.broadcasts.models import Broadcast, BroadcastSend
from siyu.db import utcnow
from siyu.delivery import plan as delivery_plan
from siyu.delivery import service as delivery
from siyu.delivery.models import DeliveryLedger
from siyu.errors import Conflict, Forbidden, InvalidInput, NotFound
from siyu.tenancy import audit
from siyu.tenancy.principal import Principal

WRITERS = ("administrator", "operations")
STAGES = ("new", "activated", "invested", "reinvested", "dormant", "lost")
MAX_PER_CALL = 10_000  # WeCom: external_userid holds at most 10,000 customers a call


def audiences_module(part: str):
    """The audiences domain's module (saved segments), when that domain is installed."""
    from siyu import DOMAINS, domain_module

    return domain_module("audiences", part) if "audiences" in DOMAINS else None


def source(broadcast_id: int) -> str:
    return f"broadcast:{broadcast_id}"


def _require_writer(principal: Principal) -> None:
    if principal.kind == "staff" and not principal.has_role(*WRITERS):
        raise Forbidden("your role does not allow this")


def _audience(session: Session, *, corp_id: int, value: object) -> dict:
    if not isinstance(value, dict):
        raise InvalidInput("choose the audience", field="audience")
    if "segment_id" in value:
        seg = value["segment_id"]
        if not isinstance(seg, int) or isinstance(seg, bool) or seg <= 0:
            raise InvalidInput("choose a saved segment", field="segment_id")
        audiences = audiences_module("service")
        if audiences is None:
            raise InvalidInput("saved segments are not available", field="segment_id")
        audiences.segment_customer_ids(session, corp_id=corp_id, segment_id=seg)  # raises if not the corp's
        return {"segment_id": seg}
    stages = value.get("stages", [])
    if not isinstance(stages, list) or any(s not in STAGES for s in stages):
        raise InvalidInput("the stages are some of %(stages)s", field="stages", params={"stages": ", ".join(STAGES)})
    return {"stages": sorted(set(stages))}


def audience_select(session: Session, *, corp_id: int, audience: dict) -> Select:
    """The broadcast's audience as a select of customer ids (a saved segment, or customers by stage)."""
    from siyu.customers.models import Customer

    if "segment_id" in audience:
        return audiences_module("service").segment_customer_ids(
            session, corp_id=corp_id, segment_id=audience["segment_id"])
    q = select(Customer.id).where(Customer.corp_id == corp_id)
    if audience.get("stages"):
        q = q.where(Customer.stage.in_(audience["stages"]))
    return q


def create_broadcast(session: Session, *, principal: Principal, name: object, text: object, audience: object,
                     product_codes: object = (), holdout_basis_points: object = 0, allow_select: bool = False
                     ) -> Broadcast:
    """A draft broadcast; its text is submitted for approval at once."""
    from siyu.broadcasts.content import KIND, OWNER
    from siyu.compliance import suitability
    from siyu.compliance.service import submit_content

    _require_writer(principal)
    if not isinstance(name, str) or not name.strip() or len(name.strip()) > 80:
        raise InvalidInput("a name is 1–80 characters", field="name")
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput("write the message", field="text")
    if not isinstance(holdout_basis_points, int) or isinstance(holdout_basis_points, bool) \
            or not 0 <= holdout_basis_points <= 5000:
        raise InvalidInput("the holdout is 0–50%", field="holdout_basis_points")
    codes = list(dict.fromkeys(product_codes or ()))
    for code in codes:
        suitability.get_product(session, corp_id=principal.corp_id, code=code, field="product_codes")
    row = Broadcast(corp_id=principal.corp_id, name=name.strip(), status="draft",
                    audience=_audience(session, corp_id=principal.corp_id, value=audience),
                    product_codes=codes, allow_select=bool(allow_select),
                    holdout_basis_points=holdout_basis_points, holdout_salt=secrets.randbits(62),
                    created_by=principal.label[:120], created_by_staff_id=principal.staff_id)
    session.add(row)
    session.flush()
    types = sorted({suitability.get_product(session, corp_id=principal.corp_id, code=c).product_type for c in codes})
    submit_content(session, corp_id=principal.corp_id, actor=principal, kind=KIND, owner=(OWNER, row.id),
                   body=text, title=row.name, product_types=types or None)
    audit.record(session, corp_id=principal.corp_id, actor=principal, action="broadcast.created",
                 target_type="broadcast", target_id=row.id, detail={"audience": row.audience})
    return row


def get_broadcast(session: Session, *, corp_id: int, broadcast_id: object) -> Broadcast:
    row = session.get(Broadcast, broadcast_id) if isinstance(broadcast_id, int) else None
    if row is None or row.corp_id != corp_id:
        raise NotFound("no such broadcast")
    return row


def list_broadcasts(session: Session, *, corp_id: int, limit: int = 100) -> list[Broadcast]:
    return list(session.scalars(select(Broadcast).where(Broadcast.corp_id == corp_id)
                                .order_by(Broadcast.id.desc()).limit(limit)))


def holdout_of(row: Broadcast) -> tuple[int, int, int] | None:
    if not row.holdout_basis_points:
        return None
    mult, add = delivery.broadcast_key(row.holdout_salt)
    return mult, add, row.holdout_basis_points


def preview(session: Session, *, row: Broadcast, at: dt.datetime | None = None) -> delivery_plan.Plan:
    return delivery_plan.build_plan(session, corp_id=row.corp_id,
                                    audience=audience_select(session, corp_id=row.corp_id, audience=row.audience),
                                    at=at, product_codes=row.product_codes, holdout=holdout_of(row))


def schedule(session: Session, *, principal: Principal, broadcast_id: int, at: dt.datetime | None = None
             ) -> Broadcast:
    """Queue the broadcast: now (at=None) or at a later time (UTC)."""
    from siyu.broadcasts.jobs import QUEUE, START
    from siyu.jobs.service import enqueue

    _require_writer(principal)
    row = get_broadcast(session, corp_id=principal.corp_id, broadcast_id=broadcast_id)
    if row.status not in ("draft", "scheduled"):
        raise Conflict("the broadcast has been sent already")
    now = utcnow()
    if at is not None and (at.tzinfo is None or at < now - dt.timedelta(minutes=1)):
        raise InvalidInput("choose a time in the future", field="scheduled_at")
    row.status, row.scheduled_at = "scheduled", at or now
    enqueue(session, name=START, payload={"broadcast_id": row.id}, corp_id=row.corp_id, queue=QUEUE,
            run_at=row.scheduled_at, idempotency_key=f"{START}:{row.id}:{int(row.scheduled_at.timestamp())}")
    audit.record(session, corp_id=principal.corp_id, actor=principal, action="broadcast.scheduled",
                 target_type="broadcast", target_id=row.id, detail={"at": row.scheduled_at.isoformat()})
    return row


def cancel(session: Session, *, principal: Principal, broadcast_id: int) -> Broadcast:
    _require_writer(principal)
    row = get_broadcast(session, corp_id=principal.corp_id, broadcast_id=broadcast_id)
    if row.status not in ("draft", "scheduled"):
        raise Conflict("the broadcast has been sent already")
    row.status = "cancelled"
    audit.record(session, corp_id=principal.corp_id, actor=principal, action="broadcast.cancelled",
                 target_type="broadcast", target_id=row.id)
    return row


def record_plan(session: Session, *, row: Broadcast, at: dt.datetime) -> dict[str, Any]:
    """Write the plan into the ledger (one INSERT … SELECT; the unique (source, customer) makes a
    second run a no-op) and make the per-advisor sends. Returns the plan's counts."""
    from sqlalchemy import insert, literal

    src = source(row.id)
    if session.scalar(select(func.count()).select_from(DeliveryLedger).where(DeliveryLedger.source == src)):
        return row.plan
    audience = audience_select(session, corp_id=row.corp_id, audience=row.audience).distinct()
    rows = delivery_plan.plan_rows(session, corp_id=row.corp_id, audience=audience, at=at,
                                   product_codes=row.product_codes, holdout=holdout_of(row)).subquery("rows")
    from sqlalchemy import case

    session.execute(insert(DeliveryLedger).from_select(
        ["corp_id", "customer_id", "kind", "source", "state", "reason", "at", "advisor_userid"],
        select(literal(row.corp_id), rows.c.customer_id, literal("broadcast"), literal(src),
               case((rows.c.reason.is_(None), "planned"), else_="aborted"),
               func.coalesce(rows.c.reason, ""), literal(at), rows.c.advisor_userid)))
    counts = dict(session.execute(select(DeliveryLedger.reason, func.count()).where(DeliveryLedger.source == src)
                                  .group_by(DeliveryLedger.reason)).all())
    recipients = counts.pop("", 0)
    plan = {"audience": recipients + sum(counts.values()), "recipients": recipients,
            "excluded": {r: counts[r] for r in delivery.REASONS if r in counts}}
    per_advisor = session.execute(select(DeliveryLedger.advisor_userid, func.count())
                                  .where(DeliveryLedger.source == src, DeliveryLedger.state == "planned")
                                  .group_by(DeliveryLedger.advisor_userid)
                                  .order_by(DeliveryLedger.advisor_userid)).all()
    for advisor, n in per_advisor:
        for part in range((n + MAX_PER_CALL - 1) // MAX_PER_CALL):
            session.add(BroadcastSend(corp_id=row.corp_id, broadcast_id=row.id, advisor_userid=advisor, part=part,
                                      customers=min(MAX_PER_CALL, n - part * MAX_PER_CALL)))
    session.flush()
    return plan


def part_customers(session: Session, *, send: BroadcastSend) -> list[tuple[int, str]]:
    """(customer id, external_userid) of the send's part: its advisor's recipients in id order."""
    from siyu.customers.models import Customer

    rows = session.execute(select(DeliveryLedger.customer_id, Customer.external_userid)
                           .join(Customer, Customer.id == DeliveryLedger.customer_id)
                           .where(DeliveryLedger.source == source(send.broadcast_id),
                                  DeliveryLedger.advisor_userid == send.advisor_userid,
                                  DeliveryLedger.state.in_(("planned", "sent", "failed")),
                                  DeliveryLedger.reason.not_in(("opted_out",)))
                           .order_by(DeliveryLedger.customer_id)
                           .offset(send.part * MAX_PER_CALL).limit(MAX_PER_CALL)).all()
    return [(cid, ext) for cid, ext in rows]


def refresh_status(session: Session, *, row: Broadcast) -> None:
    open_ = session.scalar(select(func.count()).select_from(BroadcastSend).where(
        BroadcastSend.broadcast_id == row.id, BroadcastSend.state.in_(("planned", "calling", "waiting"))))
    if row.status == "sending" and not open_:
        row.status, row.finished_at = "sent", utcnow()


def progress(session: Session, *, row: Broadcast) -> dict[str, Any]:
    """Per advisor: customers, sent, not a friend, over the allowance, not confirmed, state; and
    the ledger by state and reason."""
    from siyu.tenancy.models import Staff

    names = dict(session.execute(select(Staff.wecom_userid, Staff.name).where(Staff.corp_id == row.corp_id)).all())
    sends = list(session.scalars(select(BroadcastSend).where(BroadcastSend.broadcast_id == row.id)
                                 .order_by(BroadcastSend.advisor_userid, BroadcastSend.part)))
    return {"sends": [{"advisor": names.get(s.advisor_userid) or s.advisor_userid, "state": s.state,
                       "customers": s.customers, "sent": s.sent, "not_friend": s.not_friend,
                       "over_allowance": s.over_allowance, "unconfirmed": s.unconfirmed, "detail": s.detail}
                      for s in sends],
            "ledger": delivery.ledger_summary(session, source=source(row.id))}
