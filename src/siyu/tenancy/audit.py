"""The audit log: append-only, one hash chain per corp (chain 0 is the installation)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from siyu.db import utcnow
from siyu.tenancy.models import AuditEntry
from siyu.tenancy.principal import Principal

GENESIS = "0" * 64
# Calendars (the dashboard's days) are in China Standard Time; timestamps stay in UTC.
CALENDAR_ZONE = ZoneInfo("Asia/Shanghai")
ACTION_RE = re.compile(r"[a-z0-9_.:-]{1,80}")
PAGE_SIZE = 50


def _entry_hash(entry: AuditEntry) -> str:
    body = {
        "chain_id": entry.chain_id,
        "seq": entry.seq,
        "at": entry.at.astimezone(dt.UTC).isoformat(timespec="microseconds"),
        "actor_staff_id": entry.actor_staff_id,
        "actor": entry.actor,
        "action": entry.action,
        "target_type": entry.target_type,
        "target_id": entry.target_id,
        "detail": entry.detail,
        "ip": entry.ip,
        "prev_hash": entry.prev_hash,
    }
    canonical = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def record(
    session: Session,
    *,
    corp_id: int | None,
    actor: Principal | str,
    action: str,
    target_type: str | None = None,
    target_id: object = None,
    detail: dict | None = None,
    ip: str | None = None,
) -> AuditEntry:
    """Append an entry in the caller's transaction (so the audited change and its entry commit together).

    `detail` must never hold secrets or unmasked personal data."""
    chain_id = corp_id or 0
    if session.get_bind().dialect.name == "postgresql":
        # Appends to one chain are serialised; the unique (chain_id, seq) is the backstop.
        session.execute(text("SELECT pg_advisory_xact_lock(7311, :c)"), {"c": chain_id})
    last = session.execute(
        select(AuditEntry.seq, AuditEntry.hash)
        .where(AuditEntry.chain_id == chain_id)
        .order_by(AuditEntry.seq.desc())
        .limit(1)
    ).first()
    if isinstance(actor, Principal):
        actor_label, actor_staff_id = actor.label, actor.staff_id
    else:
        actor_label, actor_staff_id = actor, None
    # Microsecond precision is what both databases keep, so the hash survives a round trip.
    at = utcnow()
    entry = AuditEntry(
        chain_id=chain_id,
        seq=(last.seq + 1) if last else 1,
        at=at,
        actor_staff_id=actor_staff_id,
        actor=actor_label,
        action=action,
        target_type=target_type,
        target_id=None if target_id is None else str(target_id),
        detail=detail or {},
        ip=ip,
        prev_hash=last.hash if last else GENESIS,
    )
    entry.hash = _entry_hash(entry)
    session.add(entry)
    session.flush()
    return entry


def verify_chain(session: Session, *, chain_id: int | None = None) -> dict:
    """Walk every chain (or one) and report the first broken link of each."""
    chains = (
        [chain_id]
        if chain_id is not None
        else list(session.scalars(select(AuditEntry.chain_id).distinct().order_by(AuditEntry.chain_id)))
    )
    problems: list[dict] = []
    checked = 0
    for cid in chains:
        expected_seq, prev = 1, GENESIS
        for entry in session.scalars(
            # populate_existing: check what the database holds, not entries this session loaded earlier.
            select(AuditEntry).where(AuditEntry.chain_id == cid).order_by(AuditEntry.seq).execution_options(
                yield_per=1000, populate_existing=True
            )
        ):
            checked += 1
            if entry.seq != expected_seq:
                problems.append({"chain_id": cid, "seq": expected_seq, "problem": "missing entry"})
                break
            if entry.prev_hash != prev:
                problems.append({"chain_id": cid, "seq": entry.seq, "problem": "link broken"})
                break
            if _entry_hash(entry) != entry.hash:
                problems.append({"chain_id": cid, "seq": entry.seq, "problem": "entry changed"})
                break
            expected_seq, prev = entry.seq + 1, entry.hash
    return {"ok": not problems, "chains": len(chains), "entries_checked": checked, "problems": problems}


def list_entries(
    session: Session, *, corp_id: int, action: str | None = None, limit: int = 100, before_seq: int | None = None
) -> list[AuditEntry]:
    """A corp's entries, newest first. An action that cannot exist matches nothing."""
    if action and not ACTION_RE.fullmatch(action):
        return []
    q = select(AuditEntry).where(AuditEntry.chain_id == corp_id)
    if action:
        q = q.where(AuditEntry.action == action)
    if before_seq is not None:
        if before_seq < 1:
            return []
        q = q.where(AuditEntry.seq < min(before_seq, 2**63 - 1))
    return list(session.scalars(q.order_by(AuditEntry.seq.desc()).limit(max(1, min(limit, 500)))))


@dataclass(frozen=True)
class AuditPage:
    entries: list[AuditEntry]
    # Pass as `before_seq` for the next (older) page; None on the last page.
    next_before_seq: int | None


def page_entries(
    session: Session, *, corp_id: int, action: str | None = None, before_seq: int | None = None,
    limit: int = PAGE_SIZE,
) -> AuditPage:
    """One page of the audit viewer, keyset-paginated by `seq` (stable while entries are added)."""
    rows = list_entries(session, corp_id=corp_id, action=action, before_seq=before_seq, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return AuditPage(entries=rows, next_before_seq=rows[-1].seq if more and rows else None)


def distinct_actions(session: Session, *, corp_id: int) -> list[str]:
    return list(session.scalars(
        select(AuditEntry.action).where(AuditEntry.chain_id == corp_id).distinct().order_by(AuditEntry.action)
    ))


def daily_counts(
    session: Session, *, corp_id: int, actions: Iterable[str], days: int = 14, today: dt.date | None = None
) -> dict[dt.date, dict[str, int]]:
    """Entries per calendar day (Asia/Shanghai) and action over the last `days` days, oldest first;
    days without entries are present with no counts."""
    today = today or utcnow().astimezone(CALENDAR_ZONE).date()
    first = today - dt.timedelta(days=days - 1)
    since = dt.datetime.combine(first, dt.time(), tzinfo=CALENDAR_ZONE).astimezone(dt.UTC)
    out: dict[dt.date, dict[str, int]] = {first + dt.timedelta(days=i): {} for i in range(days)}
    rows = session.execute(
        select(AuditEntry.at, AuditEntry.action).where(
            AuditEntry.chain_id == corp_id, AuditEntry.action.in_(list(actions)), AuditEntry.at >= since
        )
    )
    for at, action in rows:
        day = at.astimezone(CALENDAR_ZONE).date()
        if day in out:
            out[day][action] = out[day].get(action, 0) + 1
    return out


def count_entries(session: Session, *, corp_id: int) -> int:
    return session.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.chain_id == corp_id)) or 0
