"""The compliance domain's part in data-subject requests and retention (see `siyu.privacy`): archived
chats, risk assessments and the customer's consent ledger (read through `privacy.service`), and the
purge of archived messages.

Erasing keeps what is under a legal hold or is evidence: messages of a chat-archive alert (a
compliance case), risk assessments (suitability records) and consent records (proof of consent and
withdrawal; their notes are erased)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from siyu.compliance.models import ArchiveAlert, ArchiveFalsePositive, ArchiveMessage, CustomerRiskAssessment
from siyu.privacy.service import Erased, erase_consent_notes, export_consents, register_purger, register_subject_domain


def _rows(objs, fields: Sequence[str]) -> list[dict[str, Any]]:
    return [{f: getattr(o, f) for f in fields} for o in objs]


def export(session: Session, *, corp_id: int, external_userid: str) -> dict[str, list[dict]]:
    messages = session.scalars(select(ArchiveMessage).where(
        ArchiveMessage.corp_id == corp_id, ArchiveMessage.customer_userid == external_userid)
        .order_by(ArchiveMessage.sent_at))
    assessments = session.scalars(select(CustomerRiskAssessment).where(
        CustomerRiskAssessment.corp_id == corp_id, CustomerRiskAssessment.customer_ref == external_userid)
        .order_by(CustomerRiskAssessment.assessed_at))
    return {
        "chat_messages": _rows(messages, ("msgid", "sender", "staff_userid", "msgtype", "sent_at", "text", "amount")),
        "risk_assessments": _rows(assessments, ("level", "source", "assessed_at", "expires_at", "reference")),
        "consents": export_consents(session, corp_id=corp_id, external_userid=external_userid),
    }


def erase(session: Session, *, corp_id: int, external_userid: str) -> Erased:
    out = Erased()
    held = set(session.scalars(select(ArchiveAlert.message_id).where(
        ArchiveAlert.corp_id == corp_id, ArchiveAlert.customer_userid == external_userid)))
    n = 0
    for m in session.scalars(select(ArchiveMessage).where(
            ArchiveMessage.corp_id == corp_id, ArchiveMessage.customer_userid == external_userid)):
        if m.id in held:
            continue
        m.text, m.amount = "", None
        if not m.sender_is_staff:
            m.sender = "erased"
        m.customer_userid = "erased"
        m.tolist = ["erased" if t == external_userid else t for t in m.tolist]
        n += 1
    out.erased["chat_messages"] = n
    if held:
        out.kept.append({"record": "chat_messages", "count": len(held),
                         "reason": "evidence of a chat-archive alert (compliance case)"})
    assessments = session.scalar(select(func.count()).select_from(CustomerRiskAssessment).where(
        CustomerRiskAssessment.corp_id == corp_id, CustomerRiskAssessment.customer_ref == external_userid)) or 0
    if assessments:
        out.kept.append({"record": "risk_assessments", "count": assessments,
                         "reason": "suitability record under legal hold for its retention period"})
    notes, count = erase_consent_notes(session, corp_id=corp_id, external_userid=external_userid)
    out.erased["consent_notes"] = notes
    if count:
        out.kept.append({"record": "consents", "count": count,
                         "reason": "proof of consent and withdrawal (notes erased)"})
    session.flush()
    return out


def purge_archive(session: Session, *, corp_id: int, before: dt.datetime, limit: int) -> int:
    """Archived messages older than `before` without an open alert (closed alerts go with them)."""
    open_alert = select(ArchiveAlert.message_id).where(ArchiveAlert.corp_id == corp_id, ArchiveAlert.status == "open")
    ids = list(session.scalars(select(ArchiveMessage.id).where(
        ArchiveMessage.corp_id == corp_id, ArchiveMessage.sent_at < before, ArchiveMessage.id.not_in(open_alert))
        .order_by(ArchiveMessage.id).limit(limit)))
    if not ids:
        return 0
    alert_ids = select(ArchiveAlert.id).where(ArchiveAlert.message_id.in_(ids))
    session.execute(delete(ArchiveFalsePositive).where(ArchiveFalsePositive.alert_id.in_(alert_ids)))
    session.execute(delete(ArchiveAlert).where(ArchiveAlert.message_id.in_(ids)))
    session.execute(delete(ArchiveMessage).where(ArchiveMessage.id.in_(ids)))
    return len(ids)


register_subject_domain("compliance", exporter=export, eraser=erase)
register_purger("archive_message", purge_archive)
