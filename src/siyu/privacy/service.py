"""Personal information (个人信息保护, PIPL): the consent ledger, the marketing opt-out checked on every
outbound path, data-subject requests (export, delete) and retention with a scheduled purge.

Consent ledger
    Append-only `consent_record` rows per customer (external_userid) and purpose (`PURPOSES`); the
    state in force is the latest row. Chat-archive consent (WeCom's msg_audit_approved) is recorded
    here too, as purpose `chat_archiving` (`compliance.archive.record_consent` writes the ledger).

Marketing opt-out
    `siyu.compliance.service.review_outbound(kind=…, recipients=…)` calls `refused_recipients`: a
    message of a marketing kind is not sent to a customer whose `marketing` consent is withdrawn.
    Service kinds (`SERVICE_KINDS`: a welcome answering an add, a handover notice, a keyword reply
    answering the customer's own message) are not marketing. A kind that is not known is treated as
    marketing. A customer who writes "TD" / "退订" in a chat withdraws (`record_chat_reply`).

Data-subject requests
    Compliance registers an export or a delete for a customer with the requester's verification
    note; carrying it out runs every registered domain's exporter or eraser (`register_subject_domain`;
    each domain's `privacy` module registers its own, found through `siyu.DOMAINS`). An eraser keeps
    records under a legal hold (suitability, sales) and says which and why. Every step is audited.
    An export's bundle (JSON, also offered as CSV) is downloaded once by compliance, then cleared.

Retention
    `retention_policy` per corp and record class (`RECORD_CLASSES`, defaults seeded on first read,
    set by the firm's compliance officer); a daily job purges expired rows through each domain's
    registered purge function (`register_purger`), a bounded chunk per job, continuing in a new job
    while rows remain. The audit log is never purged.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.db import utcnow
from siyu.errors import Conflict, InvalidInput, NotFound
from siyu.privacy.models import ConsentRecord, DataSubjectRequest, PurgeRun, RetentionPolicy
from siyu.tenancy import audit
from siyu.tenancy.principal import Principal

PURPOSES = ("marketing", "chat_archiving", "data_sharing", "profiling", "personal_info")
SOURCES = ("h5", "advisor", "import", "api", "chat", "wecom")
USERID_RE = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
NOTE_MAX = 1000

# Kinds of outbound message that are a service to the customer, not marketing (docs/compliance.md).
SERVICE_KINDS = frozenset({"welcome", "handover", "keyword_reply", "service"})
MARKETING_KINDS = frozenset({"broadcast", "sop_slot", "moments", "course", "game", "campaign", "marketing"})
# What a customer writes to stop marketing messages (compared after trimming, case-insensitive).
UNSUBSCRIBE_REPLIES = frozenset({"td", "退订", "回复td退订", "退订td"})

KINDS = ("export", "delete")
STATUSES = ("requested", "in_progress", "done", "refused")
EXPORT_VALID_DAYS = 7
WORKER_ROLES = ("compliance",)  # register and carry out requests, edit retention
READER_ROLES = ("compliance", "administrator", "auditor")

# Record classes with default keep periods (days; None: for ever). The firm's compliance officer
# sets the periods that apply; these defaults follow common practice for Chinese financial firms.
RECORD_CLASSES: dict[str, tuple[int | None, str]] = {  # the legal basis is data the officer edits, in Chinese
    "archive_message": (5 * 365, "与客户的沟通记录：保存 5 年（机构档案管理制度）"),
    "marketing_send": (365, "营销发送日志：保存 1 年（个人信息保护法：保存期限为实现目的所必要的最短时间）"),
    "webhook_delivery": (90, "Webhook 投递日志：保存 90 天（仅供运维）"),
    "job": (30, "已完成的后台任务：保存 30 天（仅供运维）"),
    "audit_log": (None, "审计日志：永久保存（每项变更的证据）"),
    "suitability_assessment": (20 * 365, "适当性记录：保存 20 年（销售过程记录保存要求）"),
    "order": (20 * 365, "订单与销售记录：保存 20 年（销售过程记录保存要求）"),
}
NEVER_PURGED = frozenset({"audit_log"})
KEEP_DAYS_MAX = 100 * 366
PURGE_CHUNK = 500


def _corp(corp_id: object) -> int:
    if not isinstance(corp_id, int) or isinstance(corp_id, bool) or corp_id < 1:
        raise InvalidInput("invalid corp", field="corp_id")
    return corp_id


def check_userid(value: object, *, field: str = "external_userid") -> str:
    text = value.strip() if isinstance(value, str) else ""
    if not USERID_RE.match(text):
        raise InvalidInput("not a customer's WeCom id", field=field)
    return text


def _note(value: object, *, field: str = "note", required: bool = False, message: str = "write a note") -> str:
    text = value.strip() if isinstance(value, str) else ""
    if required and not text:
        raise InvalidInput(message, field=field)
    if len(text) > NOTE_MAX:
        raise InvalidInput("the note is too long (at most 1000 characters)", field=field)
    if any(ord(c) < 32 and c not in "\n\t" for c in text):
        raise InvalidInput("the note holds control characters", field=field)
    return text


def _label(actor: Principal | str) -> tuple[str, int | None]:
    return (actor.label, actor.staff_id) if isinstance(actor, Principal) else (str(actor), None)


# --- consent ledger --------------------------------------------------------------------------------------


def record_consent(session: Session, *, corp_id: int, actor: Principal | str, external_userid: str, purpose: str,
                   granted: bool, source: str, note: str = "", staff_userid: str = "",
                   at: dt.datetime | None = None, notice_version: int | None = None) -> ConsentRecord:
    """Append a grant or a withdrawal. An advisor recording on the customer's behalf must say how
    the customer told them (the note)."""
    corp_id = _corp(corp_id)
    external_userid = check_userid(external_userid)
    if purpose not in PURPOSES:
        raise InvalidInput("unknown purpose", field="purpose")
    if not isinstance(granted, bool):
        raise InvalidInput("granted must be true or false", field="granted")
    if source not in SOURCES:
        raise InvalidInput("unknown source", field="source")
    note = _note(note, required=source == "advisor",
                 message="say how the customer told you (an advisor records on the customer's behalf)")
    label, staff_id = _label(actor)
    row = ConsentRecord(corp_id=corp_id, external_userid=external_userid, purpose=purpose, granted=granted,
                        source=source, note=note, staff_userid=(staff_userid or "")[:64], actor=label[:120],
                        actor_staff_id=staff_id, at=at or utcnow(), notice_version=notice_version)
    session.add(row)
    session.flush()
    audit.record(session, corp_id=corp_id, actor=actor, action="consent.granted" if granted else "consent.withdrawn",
                 target_type="consent_record", target_id=row.id,
                 detail={"purpose": purpose, "source": source, "external_userid": external_userid})
    return row


def _latest_ids(corp_id: int, external_userids: Sequence[str], purposes: Sequence[str]):
    return (select(func.max(ConsentRecord.id))
            .where(ConsentRecord.corp_id == corp_id, ConsentRecord.external_userid.in_(external_userids),
                   ConsentRecord.purpose.in_(purposes))
            .group_by(ConsentRecord.external_userid, ConsentRecord.purpose))


def current_records(session: Session, *, corp_id: int, external_userids: Iterable[str],
                    purposes: Sequence[str] = PURPOSES) -> dict[tuple[str, str], ConsentRecord]:
    """The record in force per (customer, purpose) that has any."""
    ids = sorted(set(external_userids))
    out: dict[tuple[str, str], ConsentRecord] = {}
    for i in range(0, len(ids), 500):
        chunk = ids[i:i + 500]
        for row in session.scalars(select(ConsentRecord).where(
                ConsentRecord.id.in_(_latest_ids(corp_id, chunk, purposes)))):
            out[(row.external_userid, row.purpose)] = row
    return out


def consent_state(session: Session, *, corp_id: int, external_userid: str) -> dict[str, ConsentRecord | None]:
    """Each purpose's record in force for one customer (None: never asked)."""
    external_userid = check_userid(external_userid)
    got = current_records(session, corp_id=corp_id, external_userids=[external_userid])
    return {p: got.get((external_userid, p)) for p in PURPOSES}


def consent_history(session: Session, *, corp_id: int, external_userid: str, limit: int = 200) -> list[ConsentRecord]:
    return list(session.scalars(select(ConsentRecord).where(
        ConsentRecord.corp_id == corp_id, ConsentRecord.external_userid == external_userid)
        .order_by(ConsentRecord.id.desc()).limit(limit)))


def granted_count(session: Session, *, corp_id: int, purpose: str) -> int:
    """Customers whose consent to `purpose` stands (their latest ledger record for it is a grant)."""
    latest = (select(func.max(ConsentRecord.id)).where(ConsentRecord.corp_id == corp_id,
                                                       ConsentRecord.purpose == purpose)
              .group_by(ConsentRecord.external_userid))
    return session.scalar(select(func.count()).select_from(ConsentRecord).where(
        ConsentRecord.id.in_(latest), ConsentRecord.granted.is_(True))) or 0


def export_consents(session: Session, *, corp_id: int, external_userid: str) -> list[dict[str, Any]]:
    """The customer's consent ledger, oldest first, as a data-subject export shows it."""
    records = session.scalars(select(ConsentRecord).where(
        ConsentRecord.corp_id == corp_id, ConsentRecord.external_userid == external_userid).order_by(ConsentRecord.id))
    return [{f: getattr(c, f) for f in ("purpose", "granted", "source", "note", "at")} for c in records]


def erase_consent_notes(session: Session, *, corp_id: int, external_userid: str) -> tuple[int, int]:
    """Clear the notes of the customer's consent records; the records stay as proof of consent and
    withdrawal. Returns (notes cleared, records kept)."""
    notes = 0
    for c in session.scalars(select(ConsentRecord).where(
            ConsentRecord.corp_id == corp_id, ConsentRecord.external_userid == external_userid)):
        if c.note:
            c.note, notes = "", notes + 1
    count = session.scalar(select(func.count()).select_from(ConsentRecord).where(
        ConsentRecord.corp_id == corp_id, ConsentRecord.external_userid == external_userid)) or 0
    return notes, count


def is_marketing(kind: str | None) -> bool:
    return kind not in SERVICE_KINDS


def refused_recipients(session: Session, *, corp_id: int, kind: str | None, recipients: Iterable[str]
                       ) -> frozenset[str]:
    """The recipients a message of this kind must not reach: for marketing, those who withdrew."""
    recipients = [r for r in recipients if isinstance(r, str) and r]
    if not recipients or not is_marketing(kind):
        return frozenset()
    got = current_records(session, corp_id=corp_id, external_userids=recipients, purposes=("marketing",))
    return frozenset(uid for (uid, _), row in got.items() if not row.granted)


def is_unsubscribe(text: str | None) -> bool:
    return isinstance(text, str) and re.sub(r"\s+", "", text).lower() in UNSUBSCRIBE_REPLIES


def record_chat_reply(session: Session, *, corp_id: int, external_userid: str, text: str, staff_userid: str = ""
                      ) -> ConsentRecord | None:
    """A customer's own chat message: "TD" / "退订" withdraws marketing consent (once: a repeated
    "TD" while withdrawn records nothing). Returns the new record, if any."""
    if not is_unsubscribe(text):
        return None
    try:
        external_userid = check_userid(external_userid)
    except InvalidInput:
        return None
    current = consent_state(session, corp_id=corp_id, external_userid=external_userid)["marketing"]
    if current is not None and not current.granted:
        return None
    return record_consent(session, corp_id=corp_id, actor="customer (chat reply)", external_userid=external_userid,
                          purpose="marketing", granted=False, source="chat", staff_userid=staff_userid,
                          note="replied TD/退订 in chat")


# --- domain registry: exporters, erasers, purgers -------------------------------------------------------


@dataclass
class Erased:
    """What an eraser did: rows erased or anonymised per record kind, and what it kept and why."""

    erased: dict[str, int] = field(default_factory=dict)
    kept: list[dict[str, Any]] = field(default_factory=list)  # {"record", "count", "reason"}


Exporter = Callable[..., dict[str, list[dict[str, Any]]]]  # (session, *, corp_id, external_userid)
Eraser = Callable[..., Erased]  # (session, *, corp_id, external_userid)
Purger = Callable[..., int]  # (session, *, corp_id, before, limit) -> rows deleted (at most limit)


@dataclass(frozen=True)
class SubjectDomain:
    name: str
    exporter: Exporter
    eraser: Eraser


_domains: dict[str, SubjectDomain] = {}
# Per record class, the purge functions of the domains that keep such records (keyed by function,
# so importing a module twice registers it once).
_purgers: dict[str, dict[str, Purger]] = {}
_lock = threading.Lock()
_loaded = False


def register_subject_domain(name: str, *, exporter: Exporter, eraser: Eraser) -> None:
    """A domain's functions for data-subject requests (call at import of `siyu.<domain>.privacy`)."""
    with _lock:
        _domains[name] = SubjectDomain(name=name, exporter=exporter, eraser=eraser)


def register_purger(record_class: str, fn: Purger) -> None:
    if record_class not in RECORD_CLASSES:
        raise ValueError(f"unknown record class {record_class}")
    if record_class in NEVER_PURGED:
        raise ValueError(f"{record_class} is never purged")
    with _lock:
        _purgers.setdefault(record_class, {})[f"{fn.__module__}.{fn.__qualname__}"] = fn


def purge_older(session: Session, model, *, corp_id: int, at, before: dt.datetime, limit: int, where=()) -> int:
    """Delete at most `limit` rows of `model` of the corp whose time column `at` is before `before`
    (oldest ids first; `where`: further conditions): the body of most domains' purge functions."""
    from sqlalchemy import delete

    ids = list(session.scalars(select(model.id).where(model.corp_id == corp_id, at < before, *where)
                               .order_by(model.id).limit(limit)))
    if ids:
        session.execute(delete(model).where(model.id.in_(ids)))
    return len(ids)


def _load_domains() -> None:
    """Import every domain's `privacy` module, once. A domain above this one registers itself when
    imported; a domain below it (the job queue) cannot import it and exposes `PURGERS` instead, a
    mapping of record class to purge function, registered here."""
    global _loaded
    if _loaded:
        return
    from siyu import domain_modules

    for module in domain_modules("privacy"):
        for record_class, fn in getattr(module, "PURGERS", {}).items():
            register_purger(record_class, fn)
    _loaded = True


def subject_domains() -> list[SubjectDomain]:
    _load_domains()
    return [_domains[k] for k in sorted(_domains)]


def purgers() -> dict[str, list[Purger]]:
    """Per record class, every domain's purge function for it."""
    _load_domains()
    return {k: list(v.values()) for k, v in _purgers.items()}


# --- data-subject requests -----------------------------------------------------------------------------------


def _dsr_audit(session: Session, req: DataSubjectRequest, *, actor: Principal | str, action: str, **detail) -> None:
    audit.record(session, corp_id=req.corp_id, actor=actor, action=f"dsr.{action}", target_type="data_subject_request",
                 target_id=req.id, detail={"kind": req.kind, "external_userid": req.external_userid, **detail})


def create_request(session: Session, *, corp_id: int, actor: Principal | str, external_userid: str, kind: str,
                   verification_note: str) -> DataSubjectRequest:
    corp_id = _corp(corp_id)
    if kind not in KINDS:
        raise InvalidInput("choose export or delete", field="kind")
    external_userid = check_userid(external_userid)
    note = _note(verification_note, field="verification_note", required=True,
                 message="say how the requester's identity was verified")
    label, staff_id = _label(actor)
    req = DataSubjectRequest(corp_id=corp_id, external_userid=external_userid, kind=kind, status="requested",
                             verification_note=note, requested_by=label[:120], requested_by_staff_id=staff_id,
                             result={})
    session.add(req)
    session.flush()
    _dsr_audit(session, req, actor=actor, action="requested")
    return req


def get_request(session: Session, *, corp_id: int, request_id: int) -> DataSubjectRequest:
    req = session.get(DataSubjectRequest, request_id) if isinstance(request_id, int) and 0 < request_id < 2**63 \
        else None
    if req is None or req.corp_id != corp_id:
        raise NotFound("no such request", field="request")
    return req


def list_requests(session: Session, *, corp_id: int, limit: int = 200) -> list[DataSubjectRequest]:
    return list(session.scalars(select(DataSubjectRequest).where(DataSubjectRequest.corp_id == corp_id)
                                .order_by(DataSubjectRequest.id.desc()).limit(limit)))


def refuse_request(session: Session, *, corp_id: int, actor: Principal | str, request_id: int, reason: str
                   ) -> DataSubjectRequest:
    req = get_request(session, corp_id=corp_id, request_id=request_id)
    reason = _note(reason, field="reason", required=True, message="say why the request is refused")
    if req.status != "requested":
        raise Conflict("the request is no longer open", field="request")
    req.status, req.refusal_reason, req.finished_at = "refused", reason, utcnow()
    req.handled_by = _label(actor)[0][:120]
    session.flush()
    _dsr_audit(session, req, actor=actor, action="refused")
    return req


def gather(session: Session, *, corp_id: int, external_userid: str) -> dict[str, Any]:
    """Everything Siyu holds about the customer, per domain."""
    data: dict[str, Any] = {}
    for d in subject_domains():
        data[d.name] = d.exporter(session, corp_id=corp_id, external_userid=external_userid)
    return data


def carry_out(session: Session, *, corp_id: int, actor: Principal | str, request_id: int) -> DataSubjectRequest:
    """requested → in progress → done: build the export bundle, or erase through every domain."""
    req = get_request(session, corp_id=corp_id, request_id=request_id)
    if req.status != "requested":
        raise Conflict("the request is no longer open", field="request")
    req.status, req.started_at, req.handled_by = "in_progress", utcnow(), _label(actor)[0][:120]
    session.flush()
    _dsr_audit(session, req, actor=actor, action="started")
    if req.kind == "export":
        data = gather(session, corp_id=corp_id, external_userid=req.external_userid)
        bundle = {"customer": req.external_userid, "exported_at": utcnow().isoformat(), "request": req.id,
                  "data": data}
        req.bundle = json.dumps(bundle, ensure_ascii=False, default=str)
        req.bundle_expires_at = utcnow() + dt.timedelta(days=EXPORT_VALID_DAYS)
        req.result = {"exported": {dom: {kind: len(rows) for kind, rows in parts.items()}
                                   for dom, parts in data.items()}}
    else:
        erased: dict[str, Any] = {}
        kept: list[dict[str, Any]] = []
        for d in subject_domains():
            got = d.eraser(session, corp_id=corp_id, external_userid=req.external_userid)
            erased[d.name] = got.erased
            kept += [{"domain": d.name, **k} for k in got.kept]
            _dsr_audit(session, req, actor=actor, action="erased", domain=d.name, erased=got.erased,
                       kept=[{"record": k["record"], "count": k["count"]} for k in got.kept])
        req.result = {"erased": erased, "kept": kept}
    req.status, req.finished_at = "done", utcnow()
    session.flush()
    _dsr_audit(session, req, actor=actor, action="done")
    return req


def bundle_csv(bundle_json: str) -> str:
    """The bundle as CSV: one line per record field (domain, record kind, row number, field, value)."""
    from siyu import tabular

    bundle = json.loads(bundle_json)

    def lines():
        for dom, parts in bundle.get("data", {}).items():
            for kind, rows in parts.items():
                for n, row in enumerate(rows, start=1):
                    for key, value in row.items():
                        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
                        yield [dom, kind, n, key, text]

    return tabular.csv_text(["domain", "record", "row", "field", "value"], lines())


def download_bundle(session: Session, *, corp_id: int, actor: Principal | str, request_id: int, fmt: str = "json"
                    ) -> tuple[str, str]:
    """The export once: (filename, content); the bundle is cleared when it is read."""
    if fmt not in ("json", "csv"):
        raise InvalidInput("choose json or csv", field="format")
    req = get_request(session, corp_id=corp_id, request_id=request_id)
    if req.kind != "export" or req.status != "done":
        raise Conflict("there is no export to download", field="request")
    if req.downloaded_at is not None:
        raise Conflict("the export was downloaded already", field="request")
    if req.bundle is None or (req.bundle_expires_at and req.bundle_expires_at <= utcnow()):
        req.bundle = None
        session.flush()
        raise Conflict("the export has expired", field="request")
    content = req.bundle if fmt == "json" else bundle_csv(req.bundle)
    req.bundle, req.downloaded_at, req.downloaded_by = None, utcnow(), _label(actor)[0][:120]
    session.flush()
    _dsr_audit(session, req, actor=actor, action="downloaded", format=fmt)
    return f"siyu-export-{req.id}.{fmt}", content


def expire_bundles(session: Session, *, now: dt.datetime | None = None) -> int:
    now = now or utcnow()
    rows = list(session.scalars(select(DataSubjectRequest).where(
        DataSubjectRequest.bundle_expires_at <= now, DataSubjectRequest.bundle.is_not(None))))
    for r in rows:
        r.bundle = None
    session.flush()
    return len(rows)


# --- retention --------------------------------------------------------------------------------------------------


def policies(session: Session, *, corp_id: int) -> list[RetentionPolicy]:
    """The corp's policies, seeding the defaults of classes it has none for."""
    corp_id = _corp(corp_id)
    have = {p.record_class: p for p in session.scalars(
        select(RetentionPolicy).where(RetentionPolicy.corp_id == corp_id))}
    missing = [c for c in RECORD_CLASSES if c not in have]
    for c in missing:
        days, basis = RECORD_CLASSES[c]
        have[c] = RetentionPolicy(corp_id=corp_id, record_class=c, keep_days=days, legal_basis=basis,
                                  updated_by="default")
        session.add(have[c])
    if missing:
        session.flush()
    return [have[c] for c in RECORD_CLASSES]


def set_policy(session: Session, *, corp_id: int, actor: Principal | str, record_class: str, keep_days: object,
               legal_basis: str) -> RetentionPolicy:
    if record_class not in RECORD_CLASSES:
        raise InvalidInput("unknown record class", field="record_class")
    if record_class in NEVER_PURGED:
        raise InvalidInput("the audit log is kept for ever", field="keep_days")
    if isinstance(keep_days, str):
        keep_days = int(keep_days.strip()) if keep_days.strip().isdigit() else None
    if not isinstance(keep_days, int) or isinstance(keep_days, bool) or not 1 <= keep_days <= KEEP_DAYS_MAX:
        raise InvalidInput("a number of days from 1 to 36600", field="keep_days")
    basis = _note(legal_basis, field="legal_basis", required=True, message="state the legal basis")
    if len(basis) > 500:
        raise InvalidInput("the legal basis is too long (at most 500 characters)", field="legal_basis")
    policy = {p.record_class: p for p in policies(session, corp_id=corp_id)}[record_class]
    before = policy.keep_days
    policy.keep_days, policy.legal_basis = keep_days, basis
    policy.updated_by, policy.updated_at = _label(actor)[0][:120], utcnow()
    session.flush()
    audit.record(session, corp_id=corp_id, actor=actor, action="retention.changed", target_type="retention_policy",
                 target_id=policy.id, detail={"record_class": record_class, "keep_days": keep_days,
                                              "was": before})
    return policy


def purge_chunk(session: Session, *, corp_id: int, run: PurgeRun | None = None, now: dt.datetime | None = None,
                chunk: int | None = None) -> tuple[PurgeRun, bool]:
    """One bounded transaction's worth of purging: at most `chunk` rows per record class. Returns the
    run (counts added up) and whether rows may remain (the caller runs another chunk)."""
    now = now or utcnow()
    chunk = chunk or PURGE_CHUNK
    if run is None:
        run = PurgeRun(corp_id=corp_id, started_at=now, status="running", counts={}, chunks=0)
        session.add(run)
        session.flush()
    fns = purgers()
    counts = dict(run.counts or {})
    more = False
    for policy in policies(session, corp_id=corp_id):
        if policy.record_class in NEVER_PURGED or policy.keep_days is None:
            continue
        for fn in fns.get(policy.record_class, ()):
            n = fn(session, corp_id=corp_id, before=now - dt.timedelta(days=policy.keep_days), limit=chunk)
            counts[policy.record_class] = counts.get(policy.record_class, 0) + n
            more = more or n >= chunk
    run.counts, run.chunks = counts, run.chunks + 1
    if not more:
        run.status, run.finished_at = "done", utcnow()
    session.flush()
    return run, more


def finish_run_audit(session: Session, *, run: PurgeRun) -> None:
    audit.record(session, corp_id=run.corp_id, actor="system", action="retention.purged", target_type="purge_run",
                 target_id=run.id, detail={"counts": run.counts, "chunks": run.chunks})


def purge_runs(session: Session, *, corp_id: int, limit: int = 20) -> list[PurgeRun]:
    return list(session.scalars(select(PurgeRun).where(PurgeRun.corp_id == corp_id)
                                .order_by(PurgeRun.id.desc()).limit(limit)))


def registered_classes() -> set[str]:
    return set(purgers())
