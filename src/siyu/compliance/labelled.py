"""A corp's labelled messages (标注语料): what the wording review and dictionary drafts are tested on.

Messages come from a JSON-lines import (evaluation.parse_labelled's format; a bad line is reported
with its number and field and nothing is stored) and from chat-archive alerts in one click: an alert
marked false positive becomes an "ok" message, a resolved one a "violation". The text is encrypted
at rest (the PII key), as the archived message it may come from. One message per corp and `ref`
(the file's id, or alert:<id>); importing a ref again replaces its label.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from siyu.compliance.evaluation import Labelled, LabelledFileError, parse_labelled
from siyu.compliance.models import ArchiveAlert, ArchiveMessage, LabelledMessage
from siyu.errors import Conflict, InvalidInput, NotFound
from siyu.tenancy import audit
from siyu.tenancy.principal import Principal

MAX_IMPORT_LINES = 20_000
MAX_REF = 80


def _label(actor: Principal | str) -> str:
    return actor.label if isinstance(actor, Principal) else str(actor)


def import_lines(session: Session, *, corp_id: int, actor: Principal | str, lines: Iterable[str | bytes]) -> dict:
    """Import labelled JSON lines into the corp's set: all lines or none."""
    lines = list(lines)
    if len([raw for raw in lines if raw.strip()]) > MAX_IMPORT_LINES:
        raise InvalidInput("at most %(n)s lines per import", field="file", params={"n": MAX_IMPORT_LINES})
    try:
        items = parse_labelled(lines)
    except LabelledFileError as exc:
        n, fld, msg = exc.errors[0]
        more = f" (+{len(exc.errors) - 1} more)" if len(exc.errors) > 1 else ""
        raise InvalidInput("line %(line)s: %(field)s: %(message)s%(more)s", field="file",
                           params={"line": n, "field": fld, "message": msg, "more": more}) from None
    if not items:
        raise InvalidInput("the file has no labelled messages", field="file")
    for item in items:
        if len(item.id) > MAX_REF:
            raise InvalidInput("id %(id)s is longer than %(n)s characters", field="file",
                               params={"id": item.id[:20], "n": MAX_REF})
    existing = {m.ref: m for m in session.scalars(
        select(LabelledMessage).where(LabelledMessage.corp_id == corp_id,
                                      LabelledMessage.ref.in_([i.id for i in items])))}
    who = _label(actor)
    added = replaced = 0
    for item in items:
        row = existing.get(item.id)
        if row is None:
            session.add(LabelledMessage(corp_id=corp_id, ref=item.id, text=item.text, label=item.label,
                                        expected=item.expected, category=item.category[:40], speaker=item.speaker,
                                        source="import", added_by=who))
            added += 1
        else:
            row.text, row.label, row.expected = item.text, item.label, item.expected
            row.category, row.speaker = item.category[:40], item.speaker
            replaced += 1
    session.flush()
    audit.record(session, corp_id=corp_id, actor=actor, action="wording_labelled.imported",
                 target_type="wording_labelled_message", detail={"added": added, "replaced": replaced})
    return {"added": added, "replaced": replaced}


def add_from_alert(session: Session, *, corp_id: int, actor: Principal | str, alert_id: int) -> LabelledMessage:
    """The alert's message in the corp's labelled set: "ok" for an alert marked false positive,
    "violation" for a resolved one. Adding it twice changes nothing."""
    alert = session.get(ArchiveAlert, alert_id)
    if alert is None or alert.corp_id != corp_id:
        raise NotFound("no such alert", field="alert")
    if alert.status == "open":
        raise Conflict("close the alert first: resolved (a violation) or a false positive (acceptable)",
                       field="alert")
    ref = f"alert:{alert.id}"
    row = session.scalar(select(LabelledMessage).where(LabelledMessage.corp_id == corp_id, LabelledMessage.ref == ref))
    label = "ok" if alert.status == "false_positive" else "violation"
    if row is not None:
        return row
    message = session.get(ArchiveMessage, alert.message_id)
    if message is None or not message.text:
        raise Conflict("the alert's message has no text to label", field="alert")
    categories = [c for c in (alert.categories or []) if c]
    row = LabelledMessage(corp_id=corp_id, ref=ref, text=message.text, label=label,
                          expected="pass" if label == "ok" else alert.severity,
                          category="none" if label == "ok" else (categories[0] if categories else ""),
                          speaker="advisor" if message.sender_is_staff else "customer", source="alert",
                          alert_id=alert.id, added_by=_label(actor))
    session.add(row)
    session.flush()
    audit.record(session, corp_id=corp_id, actor=actor, action="wording_labelled.added_from_alert",
                 target_type="archive_alert", target_id=alert.id, detail={"label": label})
    return row


def labelled_refs_for_alerts(session: Session, *, corp_id: int, alert_ids: Iterable[int]) -> set[int]:
    ids = list(alert_ids)
    if not ids:
        return set()
    return set(session.scalars(select(LabelledMessage.alert_id).where(
        LabelledMessage.corp_id == corp_id, LabelledMessage.alert_id.in_(ids))))


def remove(session: Session, *, corp_id: int, actor: Principal | str, message_id: int) -> None:
    row = session.get(LabelledMessage, message_id)
    if row is None or row.corp_id != corp_id:
        raise NotFound("no such labelled message", field="message")
    ref = row.ref
    session.execute(delete(LabelledMessage).where(LabelledMessage.id == row.id))
    audit.record(session, corp_id=corp_id, actor=actor, action="wording_labelled.removed",
                 target_type="wording_labelled_message", target_id=message_id, detail={"ref": ref})


def counts(session: Session, *, corp_id: int) -> dict[str, int]:
    rows = session.execute(select(LabelledMessage.label, func.count()).where(LabelledMessage.corp_id == corp_id)
                           .group_by(LabelledMessage.label))
    out = {"violation": 0, "ok": 0}
    out.update({label: n for label, n in rows})
    return out


def list_messages(session: Session, *, corp_id: int, limit: int = 200) -> list[LabelledMessage]:
    return list(session.scalars(select(LabelledMessage).where(LabelledMessage.corp_id == corp_id)
                                .order_by(LabelledMessage.id.desc()).limit(limit)))


def items(session: Session, *, corp_id: int) -> list[Labelled]:
    """The corp's whole labelled set, as evaluation.Labelled."""
    return [
        Labelled(id=m.ref, text=m.text, label=m.label, expected=m.expected, category=m.category or "",
                 speaker=m.speaker)
        for m in session.scalars(select(LabelledMessage).where(LabelledMessage.corp_id == corp_id)
                                 .order_by(LabelledMessage.id))
    ]
