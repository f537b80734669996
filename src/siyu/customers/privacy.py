"""The customers domain's part in data-subject requests (see `siyu.privacy`): what Siyu
holds about a customer (profile, follow relations with remarks, notes, tags, timeline, product
recommendations) and erasing it.

Erasing keeps the customer row as a tombstone (its external_userid, so that the next WeCom sync does
not bring the person back as new and so that retained records elsewhere still have a key) with every
personal field cleared; notes and timeline entries are deleted. Product recommendations are sales
records under a legal hold: kept (and named in the request) until their retention period ends, when
the "order" class's purge deletes them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from siyu.customers import search, sidebar
from siyu.customers.models import Customer, CustomerEvent, CustomerFollow, CustomerNote, CustomerTag, CustomerTagLink
from siyu.privacy.service import Erased, register_purger, register_subject_domain


def _customer(session: Session, corp_id: int, external_userid: str) -> Customer | None:
    return session.scalar(select(Customer).where(Customer.corp_id == corp_id,
                                                 Customer.external_userid == external_userid))


def export(session: Session, *, corp_id: int, external_userid: str) -> dict[str, list[dict[str, Any]]]:
    c = _customer(session, corp_id, external_userid)
    if c is None:
        return {"profile": [], "follows": [], "notes": [], "tags": [], "timeline": [], "recommendations": []}
    follows = session.scalars(select(CustomerFollow).where(CustomerFollow.customer_id == c.id))
    notes = session.scalars(select(CustomerNote).where(CustomerNote.customer_id == c.id).order_by(CustomerNote.id))
    tags = session.scalars(select(CustomerTag.name).join(CustomerTagLink, CustomerTagLink.tag_id == CustomerTag.id)
                           .where(CustomerTagLink.customer_id == c.id))
    events = session.scalars(select(CustomerEvent).where(CustomerEvent.customer_id == c.id).order_by(CustomerEvent.at))
    return {
        "profile": [{"external_userid": c.external_userid, "name": c.name, "gender": c.gender, "unionid": c.unionid,
                     "stage": c.stage, "firm_customer_id": c.firm_customer_id, "first_added_at": c.first_added_at,
                     "lost_at": c.lost_at}],
        "follows": [{"advisor": f.wecom_userid, "remark": f.remark, "description": f.description,
                     "added_at": f.add_time, "channel": f.state, "status": f.status} for f in follows],
        "notes": [{"text": n.text, "at": n.created_at} for n in notes],
        "tags": [{"tag": t} for t in tags],
        "timeline": [{"kind": e.kind, "at": e.at, "detail": e.detail} for e in events],
        "recommendations": [{"at": r.created_at, "advisor": r.advisor_label, "product_code": r.product_code,
                             "product_name": r.product_name, "product_risk_level": r.product_risk_level,
                             "customer_level": r.customer_level, "explanation": r.explanation, "text": r.final_text}
                            for r in sidebar.recommendations_of(session, corp_id=corp_id, customer_id=c.id)],
    }


def erase(session: Session, *, corp_id: int, external_userid: str) -> Erased:
    out = Erased()
    c = _customer(session, corp_id, external_userid)
    if c is None:
        return out
    c.name = c.name_hash = c.unionid = c.firm_customer_id = None
    c.gender = 0
    follows = list(session.scalars(select(CustomerFollow).where(CustomerFollow.customer_id == c.id)))
    for f in follows:
        f.remark = f.remark_hash = f.description = None
    search.reindex(session, customer=c)  # the blind index of the name and remarks goes with them
    out.erased["profile"] = 1
    out.erased["follow_remarks"] = len(follows)
    out.erased["notes"] = session.execute(delete(CustomerNote).where(CustomerNote.customer_id == c.id)).rowcount
    out.erased["timeline"] = session.execute(delete(CustomerEvent).where(CustomerEvent.customer_id == c.id)).rowcount
    out.erased["tags"] = session.execute(delete(CustomerTagLink).where(CustomerTagLink.customer_id == c.id)).rowcount
    kept = len(sidebar.recommendations_of(session, corp_id=corp_id, customer_id=c.id))
    if kept:
        out.kept.append({"record": "product_recommendations", "count": kept,
                         "reason": "sales-process record (suitability evidence) under legal hold for its retention "
                                   "period"})
    session.flush()
    return out


register_subject_domain("customers", exporter=export, eraser=erase)
# 1-on-1 product recommendations are sales records: the "order" class (orders and sales records),
# which other domains' sales records (the firm's orders) share.
register_purger("order", sidebar.purge_recommendations)
