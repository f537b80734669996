"""Chat-archive monitoring (会话存档监控): ingest archived chats, scan advisors' messages, raise alerts.

Where the messages come from
- The corp's archive feed, polled by a recurring job with a stored cursor (`archive_cursor.seq`):
  `GET {origin of the corp's WeCom API base URL}/_emulator/corps/{wecom corp id}/archive?seq=N&limit=M`
  answering `{"errcode": 0, "chatdata": [{"seq", "msgid", "publickey_ver", "message": {…}}]}`.
  The WeCom emulator serves it (see `siyu.wecom.emulator.archive` for the record shape).
- Real WeCom's Finance SDK (`siyu.compliance.finance_sdk`): the native library loaded with ctypes
  (GetChatData by seq, each message's key opened with the corp's RSA private key of its version,
  DecryptData), answering the same items; used for a corp once its archive secret and keys are set
  and the installation names the library (SIYU_ARCHIVE_SDK_LIBRARY).
- A JSON-lines export of the same records (`siyu compliance archive-import FILE --corp SLUG`): one
  record per line, either the decrypted message itself or a feed item with `message` inside.
  A line that cannot be read is reported with its number and stores nothing; the others are stored.

Each message is stored once per corp (unique msgid), its text encrypted (`siyu.pii`); the text
kept is what a person saw: the content of a text, a link's title, description and URL, "[红包] wish",
"[转账] memo", "[图片]" for an image.

Scanning: messages sent by staff (the sender is a WeCom userid of the corp's staff, or any id that is
not an external contact's — those start with wm/wo/wb) go through `review_many(context="archive")`
with the corp's dictionary and the detectors. Customers' own messages are stored but raise no alert,
except red packets and transfers, which raise one in either direction, and, in group chats, what a
member solicits that the firm must stop (fundraising, stock tips, asking for codes, lending or
private-fund promotion: review.scan_many keeps only those kinds for a customer's words). Each message with findings
gets one alert: severity the worst finding's, evidence the finding spans (never the matched text in
clear outside the encrypted excerpt), the advisor, the customer and the time.

Alerts: open → resolved (with a note) or false_positive. A false positive counts against each
dictionary entry that produced a finding of the alert (`archive_false_positive`); an entry's count
is shown in the console with an action that takes the phrase out of the corp's dictionary: a corp's
own entry is deactivated through `dictionary.deactivate_entry`; an installation entry (shared by
every corp, so not the corp's to deactivate) is overridden for this corp only by an "allow" entry
of the corp (`dictionary.add_entry`). Both are versioned and audited by the dictionary.

Consent: `customer.archive_consented` (WeCom's msg_audit_approved) is recorded in the consent ledger
(`siyu.privacy`, purpose chat_archiving) and shown with each alert.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.compliance import dictionary as wording
from siyu.compliance.models import (
    ARCHIVE_TEXT_MAX,
    ArchiveAlert,
    ArchiveCursor,
    ArchiveFalsePositive,
    ArchiveMessage,
    WordingEntry,
)
from siyu.compliance.normalize import normalize
from siyu.compliance.review import review_many
from siyu.db import utcnow
from siyu.errors import Conflict, InvalidInput, NotFound
from siyu.privacy.models import ConsentRecord
from siyu.tenancy import audit
from siyu.tenancy.models import Staff, StaffRole
from siyu.tenancy.principal import Principal

FEED_PATH = "/_emulator/corps/{wecom_corp_id}/archive"
FEED_PAGE = 500
FEED_MAX_PAGES = 20  # per poll: a backlog is worked off over several polls
MSGID_MAX = 128
USERID_MAX = 64
EXTERNAL_PREFIXES = ("wm", "wo", "wb")
PAY_TYPES = frozenset({"redpacket", "external_redpacket", "transfer"})
STATUSES = ("open", "resolved", "false_positive")
SEVERITIES = ("block", "review")
WORKER_ROLES = ("compliance", "administrator")  # work alerts
READER_ROLES = (*WORKER_ROLES, "auditor")
EVIDENCE_ROLES = ("compliance",)  # see the messages' text
NOTE_MAX = 1000
EXCERPT_CONTEXT = 30
_MS_MIN = 946_684_800_000  # 2000-01-01: earlier msgtimes are not milliseconds
_MS_MAX = 4_102_444_800_000  # 2100-01-01


# --- records ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ArchiveRecord:
    """One archived message, read and checked."""

    msgid: str
    sender: str
    tolist: tuple[str, ...]
    roomid: str
    msgtype: str
    sent_at: dt.datetime
    text: str
    amount: int | None = None
    seq: int | None = None
    action: str = "send"


def _str(obj: dict, key: str, *, max_len: int, required: bool = True, prefix: str = "") -> str:
    value = obj.get(key)
    if value is None or value == "":
        if required:
            raise InvalidInput("%(field)s is missing", field=prefix + key, params={"field": prefix + key})
        return ""
    if not isinstance(value, str):
        raise InvalidInput("%(field)s must be a string", field=prefix + key, params={"field": prefix + key})
    if len(value) > max_len:
        raise InvalidInput("%(field)s is too long", field=prefix + key, params={"field": prefix + key})
    return value


def _int(obj: dict, key: str, *, prefix: str = "", required: bool = True) -> int | None:
    value = obj.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidInput("%(field)s must be an integer", field=prefix + key, params={"field": prefix + key})
    return value


def _section(msg: dict, key: str) -> dict:
    value = msg.get(key)
    if not isinstance(value, dict):
        raise InvalidInput("%(field)s is missing", field=key, params={"field": key})
    return value


def _content(msg: dict, msgtype: str) -> tuple[str, int | None]:
    """The text a person saw, and the amount (fen) of a red packet or transfer."""
    if msgtype == "text":
        return _str(_section(msg, "text"), "content", max_len=100_000, prefix="text."), None
    if msgtype == "link":
        link = _section(msg, "link")
        parts = [_str(link, k, max_len=2000, required=False, prefix="link.") for k in ("title", "description")]
        parts.append(_str(link, "link_url", max_len=2000, prefix="link."))
        return "\n".join(p for p in parts if p), None
    if msgtype in ("redpacket", "external_redpacket"):
        packet = _section(msg, msgtype)
        amount = _int(packet, "totalamount", prefix=msgtype + ".", required=False)
        return "[红包] " + _str(packet, "wish", max_len=500, required=False, prefix=msgtype + "."), amount
    if msgtype == "transfer":
        transfer = _section(msg, "transfer")
        amount = _int(transfer, "amount", prefix="transfer.", required=False)
        return "[转账] " + _str(transfer, "memo", max_len=500, required=False, prefix="transfer."), amount
    if msgtype == "image":
        return "[图片]", None
    if msgtype == "card":  # 名片: a person's contact card (an outsider's card in a group is an ad)
        card = _section(msg, "card")
        parts = [_str(card, k, max_len=200, required=False, prefix="card.") for k in ("corpname", "userid")]
        return "[名片] " + " ".join(p for p in parts if p), None
    if msgtype == "weapp":  # 小程序
        app = _section(msg, "weapp")
        parts = [_str(app, k, max_len=2000, required=False, prefix="weapp.")
                 for k in ("title", "description", "displayname")]
        return "[小程序] " + "\n".join(p for p in parts if p), None
    return f"[{msgtype}]", None


def parse_record(obj: object) -> ArchiveRecord:
    """Read one record (a decrypted archive message, or a feed item holding one under `message`);
    raises InvalidInput naming the field."""
    if not isinstance(obj, dict):
        raise InvalidInput("a record must be a JSON object", field="record")
    seq = None
    if isinstance(obj.get("message"), dict):
        seq = _int(obj, "seq", required=False)
        if seq is not None and seq < 0:
            raise InvalidInput("%(field)s must be an integer", field="seq", params={"field": "seq"})
        obj = obj["message"]
    msgid = _str(obj, "msgid", max_len=MSGID_MAX)
    action = _str(obj, "action", max_len=16, required=False) or "send"
    sender = _str(obj, "from", max_len=USERID_MAX, required=action == "send")
    tolist = obj.get("tolist", [])
    if not isinstance(tolist, list) or not all(isinstance(t, str) and 0 < len(t) <= USERID_MAX for t in tolist):
        raise InvalidInput("%(field)s must be a list of user ids", field="tolist", params={"field": "tolist"})
    if len(tolist) > 2000:
        raise InvalidInput("%(field)s is too long", field="tolist", params={"field": "tolist"})
    roomid = _str(obj, "roomid", max_len=USERID_MAX, required=False)
    msgtime = _int(obj, "msgtime")
    if not _MS_MIN <= msgtime <= _MS_MAX:
        raise InvalidInput("%(field)s must be milliseconds since 1970", field="msgtime", params={"field": "msgtime"})
    msgtype = _str(obj, "msgtype", max_len=32, required=action == "send")
    text, amount = _content(obj, msgtype) if action == "send" else ("", None)
    if amount is not None and not 0 <= amount <= 10**12:
        raise InvalidInput("%(field)s is out of range", field=f"{msgtype}.amount", params={"field": "amount"})
    return ArchiveRecord(
        msgid=msgid, sender=sender, tolist=tuple(tolist), roomid=roomid, msgtype=msgtype,
        sent_at=dt.datetime.fromtimestamp(msgtime / 1000, dt.UTC), text=text[:ARCHIVE_TEXT_MAX], amount=amount,
        seq=seq, action=action,
    )


# --- ingest ------------------------------------------------------------------------------------------


@dataclass
class IngestResult:
    stored: int = 0
    duplicates: int = 0
    skipped: int = 0  # recalls and other non-send actions
    alerts: int = 0
    rejected: int = 0  # feed items that could not be read
    seq: int | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        out = {"stored": self.stored, "duplicates": self.duplicates, "skipped": self.skipped, "alerts": self.alerts,
               "rejected": self.rejected}
        if self.seq is not None:
            out["seq"] = self.seq
        return out


def _corp_id(corp_id: object) -> int:
    if not isinstance(corp_id, int) or isinstance(corp_id, bool) or corp_id < 1:
        raise InvalidInput("invalid corp", field="corp_id")
    return corp_id


def staff_userids(session: Session, *, corp_id: int) -> set[str]:
    return {u for u in session.scalars(select(Staff.wecom_userid).where(Staff.corp_id == corp_id)) if u}


def _is_staff(userid: str, staff: set[str]) -> bool:
    return userid in staff or not userid.startswith(EXTERNAL_PREFIXES)


def ingest_records(session: Session, *, corp_id: int, records: Sequence[ArchiveRecord], source: str
                   ) -> IngestResult:
    """Store the records not stored before (by msgid) and scan them; alerts for the ones with findings."""
    corp_id = _corp_id(corp_id)
    result = IngestResult()
    fresh: dict[str, ArchiveRecord] = {}
    for r in records:
        if r.action != "send":
            result.skipped += 1
        elif r.msgid in fresh:
            result.duplicates += 1
        else:
            fresh[r.msgid] = r
    if not fresh:
        return result
    existing: set[str] = set()
    ids = list(fresh)
    for i in range(0, len(ids), 500):
        existing.update(session.scalars(select(ArchiveMessage.msgid).where(
            ArchiveMessage.corp_id == corp_id, ArchiveMessage.msgid.in_(ids[i:i + 500]))))
    result.duplicates += len(existing)
    staff = staff_userids(session, corp_id=corp_id)
    rows: list[ArchiveMessage] = []
    for r in fresh.values():
        if r.msgid in existing:
            continue
        sender_is_staff = _is_staff(r.sender, staff)
        parties = [r.sender, *r.tolist]
        staff_userid = r.sender if sender_is_staff else next((p for p in r.tolist if _is_staff(p, staff)), "")
        customer_userid = next((p for p in parties if not _is_staff(p, staff)), "")
        rows.append(ArchiveMessage(
            corp_id=corp_id, msgid=r.msgid, seq=r.seq, source=source, sender=r.sender,
            sender_is_staff=sender_is_staff, staff_userid=staff_userid, customer_userid=customer_userid,
            tolist=list(r.tolist), roomid=r.roomid, msgtype=r.msgtype, sent_at=r.sent_at, text=r.text,
            amount=r.amount,
        ))
    session.add_all(rows)
    session.flush()
    result.stored = len(rows)
    result.alerts = len(scan_messages(session, corp_id=corp_id, messages=rows))
    if source == "feed":
        publish_customer_messages(session, corp_id=corp_id, messages=rows)
    publish_group_messages(session, corp_id=corp_id, messages=rows)
    publish_direct_messages(session, corp_id=corp_id, messages=rows)
    if rows:
        _enqueue_quality_waits(session, corp_id=corp_id, first_id=min(r.id for r in rows),
                               last_id=max(r.id for r in rows))
    return result


# Service quality (`siyu.quality`, a domain above this one) recomputes the reply waits of the chats
# that got messages; each ingest enqueues its job by name, in the ingest's transaction.
QUALITY_WAITS_JOB = "compliance.quality_waits"


def _enqueue_quality_waits(session: Session, *, corp_id: int, first_id: int, last_id: int) -> None:
    from siyu.jobs.service import enqueue

    enqueue(session, name=QUALITY_WAITS_JOB, payload={"first_id": first_id, "last_id": last_id}, corp_id=corp_id,
            idempotency_key=f"{QUALITY_WAITS_JOB}:{corp_id}:{first_id}:{last_id}")


CUSTOMER_MESSAGE_EVENT = "chat.customer_message"


def publish_customer_messages(session: Session, *, corp_id: int, messages: Sequence[ArchiveMessage]) -> int:
    """Announce each new 1-on-1 message a customer sent to a member of staff (`chat.customer_message`,
    keyed by msgid, so a message read again publishes nothing new). Only the feed's messages: an
    imported export is history, nobody should be answered for it now. The payload carries ids and
    the time, never the text: it stays encrypted in `archive_message` and subscribers read it with
    `customer_message_text`, so job rows (kept, shown in the job console) hold no chat content."""
    from siyu.jobs.events import publish_ids

    n = 0
    for m in messages:
        if m.sender_is_staff or m.roomid or not m.customer_userid or not m.staff_userid:
            continue
        publish_ids(session, CUSTOMER_MESSAGE_EVENT,
                    {"msgid": m.msgid, "staff_userid": m.staff_userid, "customer_userid": m.customer_userid,
                     "msgtype": m.msgtype, "sent_at": m.sent_at.isoformat()},
                    corp_id=corp_id, key=f"{corp_id}:{m.msgid}", returning=False)
        n += 1
    return n


GROUP_MESSAGES_EVENT = "chat.group_messages"


def publish_group_messages(session: Session, *, corp_id: int, messages: Sequence[ArchiveMessage]) -> bool:
    """Announce that group-chat messages were stored (`chat.group_messages`, one event per ingest with
    the range of stored row ids, keyed by it): communities moderates them and counts them for group
    health. Only new rows are announced (a redelivered msgid is not stored again); the payload holds
    ids, never text (read it with `group_messages`)."""
    from siyu.jobs.events import publish

    ids = [m.id for m in messages if m.roomid]
    if not ids:
        return False
    first, last = min(ids), max(ids)
    publish(session, GROUP_MESSAGES_EVENT, {"first_id": first, "last_id": last}, corp_id=corp_id,
            key=f"{corp_id}:{first}:{last}")
    return True


DIRECT_MESSAGES_EVENT = "chat.direct_messages"


def publish_direct_messages(session: Session, *, corp_id: int, messages: Sequence[ArchiveMessage]) -> bool:
    """Announce that 1-on-1 messages between an advisor and a customer were stored
    (`chat.direct_messages`, one event per ingest with the range of stored row ids, keyed by it):
    analytics counts them (message.sent / message.received). Ids only, never text."""
    from siyu.jobs.events import publish

    ids = [m.id for m in messages if not m.roomid and m.staff_userid and m.customer_userid]
    if not ids:
        return False
    first, last = min(ids), max(ids)
    publish(session, DIRECT_MESSAGES_EVENT, {"first_id": first, "last_id": last}, corp_id=corp_id,
            key=f"{corp_id}:{first}:{last}")
    return True


@dataclass(frozen=True)
class DirectMessage:
    """One archived 1-on-1 message as other domains read it: who, which way, when (never the text)."""

    id: int
    msgid: str
    staff_userid: str
    customer_userid: str
    sender_is_staff: bool
    sent_at: dt.datetime


def direct_messages(session: Session, *, corp_id: int, first_id: int, last_id: int) -> list[DirectMessage]:
    """The corp's 1-on-1 messages with ids in [first_id, last_id] (one ingest), in id order."""
    rows = session.execute(
        select(ArchiveMessage.id, ArchiveMessage.msgid, ArchiveMessage.staff_userid, ArchiveMessage.customer_userid,
               ArchiveMessage.sender_is_staff, ArchiveMessage.sent_at)
        .where(ArchiveMessage.corp_id == corp_id, ArchiveMessage.id >= first_id, ArchiveMessage.id <= last_id,
               ArchiveMessage.roomid == "", ArchiveMessage.staff_userid != "", ArchiveMessage.customer_userid != "")
        .order_by(ArchiveMessage.id)).all()
    return [DirectMessage(*row) for row in rows]


@dataclass(frozen=True)
class GroupMessage:
    """One archived group-chat message, as other domains read it (the text only when asked for)."""

    id: int
    msgid: str
    roomid: str
    sender: str
    sender_is_staff: bool
    msgtype: str
    sent_at: dt.datetime
    text: str = ""


def group_messages(session: Session, *, corp_id: int, first_id: int, last_id: int) -> list[GroupMessage]:
    """The group-chat messages stored with row ids first_id..last_id (a `chat.group_messages` range),
    with their text, oldest first."""
    rows = session.scalars(select(ArchiveMessage).where(
        ArchiveMessage.corp_id == _corp_id(corp_id), ArchiveMessage.id >= first_id, ArchiveMessage.id <= last_id,
        ArchiveMessage.roomid != "").order_by(ArchiveMessage.sent_at, ArchiveMessage.id))
    return [GroupMessage(id=m.id, msgid=m.msgid, roomid=m.roomid, sender=m.sender, sender_is_staff=m.sender_is_staff,
                         msgtype=m.msgtype, sent_at=m.sent_at, text=m.text) for m in rows]


def group_activity(session: Session, *, corp_id: int, roomids: Sequence[str], since: dt.datetime,
                   until: dt.datetime | None = None) -> list[GroupMessage]:
    """Who said something when in these group chats (no text), oldest first: the figures of group health."""
    if not roomids:
        return []
    out: list[GroupMessage] = []
    ids = sorted(set(roomids))
    for i in range(0, len(ids), 500):
        q = select(ArchiveMessage.id, ArchiveMessage.msgid, ArchiveMessage.roomid, ArchiveMessage.sender,
                   ArchiveMessage.sender_is_staff, ArchiveMessage.msgtype, ArchiveMessage.sent_at).where(
            ArchiveMessage.corp_id == _corp_id(corp_id), ArchiveMessage.roomid.in_(ids[i:i + 500]),
            ArchiveMessage.sent_at >= since)
        if until is not None:
            q = q.where(ArchiveMessage.sent_at < until)
        out.extend(GroupMessage(*row) for row in session.execute(q))
    out.sort(key=lambda m: (m.sent_at, m.id))
    return out


def last_group_messages(session: Session, *, corp_id: int, roomids: Sequence[str], staff: bool
                        ) -> dict[str, dt.datetime]:
    """Per group chat, when staff (or, with staff=False, a customer) last wrote in it."""
    out: dict[str, dt.datetime] = {}
    ids = sorted(set(roomids))
    for i in range(0, len(ids), 500):
        out.update(session.execute(
            select(ArchiveMessage.roomid, func.max(ArchiveMessage.sent_at)).where(
                ArchiveMessage.corp_id == _corp_id(corp_id), ArchiveMessage.roomid.in_(ids[i:i + 500]),
                ArchiveMessage.sender_is_staff.is_(staff)).group_by(ArchiveMessage.roomid)).all())
    return out


def customer_message_text(session: Session, *, corp_id: int, msgid: str) -> str | None:
    """The text of a customer's archived message (for subscribers of `chat.customer_message`), or None."""
    if not isinstance(msgid, str) or not 0 < len(msgid) <= MSGID_MAX:
        return None
    return session.scalar(select(ArchiveMessage.text).where(
        ArchiveMessage.corp_id == _corp_id(corp_id), ArchiveMessage.msgid == msgid,
        ArchiveMessage.sender_is_staff.is_(False)))


def _excerpt(text: str, start: int, end: int) -> str:
    a, b = max(0, start - EXCERPT_CONTEXT), min(len(text), end + EXCERPT_CONTEXT)
    return ("…" if a else "") + text[a:b] + ("…" if b < len(text) else "")


def scan_messages(session: Session, *, corp_id: int, messages: Sequence[ArchiveMessage]) -> list[ArchiveAlert]:
    """Review the messages in bulk; an alert for each message whose findings count (see the module)."""
    if not messages:
        return []
    dictionary = wording.load_dictionary(session, corp_id=corp_id)
    entry_ids: dict[tuple[str, str], int | None] = {}
    for e in dictionary.entries:  # later entries (the corp's own) override, as in the automaton
        entry_ids[(e.phrase, e.category)] = e.entry_id
    verdicts = review_many([m.text for m in messages], context="archive", dictionary=dictionary,
                           speakers=["advisor" if m.sender_is_staff else "customer" for m in messages],
                           lexicons=wording.corp_lexicons(session, corp_id=corp_id))
    alerts = []
    for m, verdict in zip(messages, verdicts, strict=True):
        findings = list(verdict.findings)
        if not m.sender_is_staff:
            if m.msgtype in PAY_TYPES:
                findings = [f for f in findings if f.category == "red_packet"]
            elif m.roomid:
                # In a group, what a member solicits (fundraising, stock tips, asking for codes) is the
                # firm's risk too; review only kept those kinds for a customer's words.
                findings = [f for f in findings if f.source != "detector"]
            else:
                findings = []
        if not findings:
            continue
        first = min(findings, key=lambda f: f.start)
        alert = ArchiveAlert(
            corp_id=corp_id, message_id=m.id,
            severity="block" if any(f.severity == "block" for f in findings) else "review",
            categories=sorted({f.category for f in findings}),
            findings=[{"category": f.category, "rule": f.rule, "start": f.start, "end": f.end,
                       "severity": f.severity, "source": f.source, "phrase": f.phrase,
                       "entry_id": entry_ids.get((f.phrase, f.category)) if f.source == "dictionary" else None}
                      for f in findings],
            excerpt=_excerpt(m.text, first.start, first.end), staff_userid=m.staff_userid,
            customer_userid=m.customer_userid, sent_at=m.sent_at, status="open",
        )
        alerts.append(alert)
    session.add_all(alerts)
    session.flush()
    return alerts


def import_lines(session: Session, *, corp_id: int, lines: Iterable[bytes | str]) -> IngestResult:
    """Import a JSON-lines export: bad lines are reported by number (nothing of them stored)."""
    records: list[ArchiveRecord] = []
    errors: list[dict[str, Any]] = []
    for n, raw in enumerate(lines, start=1):
        try:
            line = raw.decode("utf-8") if isinstance(raw, bytes) else raw
            if not line.strip():
                continue
            obj = json.loads(line)
            records.append(parse_record(obj))
        except UnicodeDecodeError:
            errors.append({"line": n, "field": None, "error": "not UTF-8"})
        except json.JSONDecodeError as exc:
            errors.append({"line": n, "field": None, "error": f"not JSON: {exc.msg}"})
        except InvalidInput as exc:
            errors.append({"line": n, "field": exc.field, "error": exc.message})
    result = ingest_records(session, corp_id=corp_id, records=records, source="file")
    result.errors = errors
    result.rejected = len(errors)
    return result


# --- the feed ----------------------------------------------------------------------------------------


FeedFetch = Callable[[int, int], dict[str, Any]]


class FeedError(Exception):
    """The feed answered something other than chat data (the poll is retried later)."""


def feed_url(base_url: str, wecom_corp_id: str) -> str:
    parts = urlsplit(base_url)
    return f"{parts.scheme}://{parts.netloc}" + FEED_PATH.format(wecom_corp_id=wecom_corp_id)


def http_fetcher(*, corp_id: int, timeout: float = 15.0) -> FeedFetch:
    """A fetch over HTTP with the corp's WeCom connection (base URL and access token).

    Call it before the poll's own transaction begins: it reads the connection in a short transaction
    of its own and takes the access token outside any (the token store writes in a transaction of
    its own, which on SQLite waits for any other). A token lives far longer than one poll."""
    import httpx

    from siyu import netguard
    from siyu.db import session_scope
    from siyu.wecom.errors import WeComError
    from siyu.wecom.service import client_for_corp

    with session_scope() as session:
        client = client_for_corp(session, corp_id=corp_id)
    url = feed_url(client.base_url, client.corp_id)
    try:
        token = client.access_token()
    except WeComError as exc:
        raise FeedError(f"no access token: errcode {exc.errcode}") from None
    except httpx.HTTPError as exc:
        raise FeedError(f"WeCom unreachable: {exc.__class__.__name__}") from None

    def fetch(seq: int, limit: int) -> dict[str, Any]:
        try:
            response = netguard.get(url, params={"seq": seq, "limit": limit, "access_token": token},
                                    timeout=timeout)
        except httpx.HTTPError as exc:
            raise FeedError(f"archive feed unreachable: {exc.__class__.__name__}") from None
        if response.status_code != 200:
            raise FeedError(f"archive feed answered HTTP {response.status_code}")
        try:
            return response.json()
        except ValueError:
            raise FeedError("archive feed answered something other than JSON") from None

    return fetch


def record_poll_failure(session: Session, *, corp_id: int, error: str) -> None:
    """A poll that failed (feed or WeCom unreachable, no token): on the cursor, for the console and for
    `poll_all`, which leaves the corp alone for a while."""
    cursor = get_cursor(session, corp_id=corp_id)
    cursor.last_error, cursor.polled_at = error[:300], utcnow()
    session.flush()


def get_cursor(session: Session, *, corp_id: int) -> ArchiveCursor:
    cursor = session.get(ArchiveCursor, corp_id)
    if cursor is None:
        cursor = ArchiveCursor(corp_id=corp_id, seq=0, last_error="")
        session.add(cursor)
        session.flush()
    return cursor


def poll_feed(session: Session, *, corp_id: int, fetch: FeedFetch, page: int = FEED_PAGE,
              max_pages: int = FEED_MAX_PAGES) -> IngestResult:
    """Read the feed from the stored cursor, store and scan what is new, move the cursor."""
    corp_id = _corp_id(corp_id)
    cursor = get_cursor(session, corp_id=corp_id)
    total = IngestResult()
    try:
        for _ in range(max_pages):
            data = fetch(cursor.seq, page)
            if not isinstance(data, dict) or data.get("errcode", 0) != 0:
                errcode = data.get("errcode") if isinstance(data, dict) else None
                raise FeedError(f"archive feed answered errcode {errcode}")
            items = data.get("chatdata")
            if not isinstance(items, list):
                raise FeedError("archive feed answered no chatdata")
            if not items:
                break
            records, top = [], cursor.seq
            for item in items:
                seq = item.get("seq") if isinstance(item, dict) else None
                if isinstance(seq, int) and not isinstance(seq, bool):
                    top = max(top, seq)
                try:
                    records.append(parse_record(item))
                except InvalidInput:
                    total.rejected += 1  # never blocks the cursor: counted, and the rest goes on
            got = ingest_records(session, corp_id=corp_id, records=records, source="feed")
            for name in ("stored", "duplicates", "skipped", "alerts"):
                setattr(total, name, getattr(total, name) + getattr(got, name))
            if top <= cursor.seq:
                break  # a feed that does not move on would loop
            cursor.seq = top
            if len(items) < page:
                break
    except FeedError as exc:
        record_poll_failure(session, corp_id=corp_id, error=str(exc))
        raise
    cursor.last_error = ""
    cursor.polled_at = utcnow()
    session.flush()
    total.seq = cursor.seq
    return total


# --- consent -----------------------------------------------------------------------------------------


def record_consent(session: Session, *, corp_id: int, external_userid: str, staff_userid: str = "",
                   at: dt.datetime | None = None) -> ConsentRecord:
    """Record a customer's consent to archiving in the consent ledger (purpose chat_archiving), unless
    it is already granted: a redelivered event records nothing new."""
    from siyu.privacy import service as privacy

    corp_id = _corp_id(corp_id)
    if not isinstance(external_userid, str) or not 0 < len(external_userid) <= USERID_MAX:
        raise InvalidInput("invalid external userid", field="external_userid")
    current = consents(session, corp_id=corp_id, external_userids=[external_userid]).get(external_userid)
    if current is not None:
        return current
    return privacy.record_consent(session, corp_id=corp_id, actor="wecom (msg_audit_approved)",
                                  external_userid=external_userid, purpose="chat_archiving", granted=True,
                                  source="wecom", staff_userid=(staff_userid or "")[:USERID_MAX], at=at)


def consents(session: Session, *, corp_id: int, external_userids: Iterable[str]) -> dict[str, ConsentRecord]:
    """The ledger's chat-archiving record in force of each of the customers whose consent stands."""
    from siyu.privacy import service as privacy

    got = privacy.current_records(session, corp_id=corp_id, external_userids=external_userids,
                                  purposes=("chat_archiving",))
    return {uid: row for (uid, _), row in got.items() if row.granted}


def consent_count(session: Session, *, corp_id: int) -> int:
    """Customers whose chat-archiving consent stands (latest ledger record is a grant)."""
    from siyu.privacy import service as privacy

    return privacy.granted_count(session, corp_id=corp_id, purpose="chat_archiving")


# --- alerts ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AlertFilter:
    status: str | None = None
    severity: str | None = None
    advisor: str | None = None  # a staff userid
    category: str | None = None
    since: dt.date | None = None  # China calendar days, inclusive
    until: dt.date | None = None


def check_filter(*, status: str | None = None, severity: str | None = None, advisor: str | None = None,
                 category: str | None = None, since: dt.date | None = None, until: dt.date | None = None
                 ) -> AlertFilter:
    if status and status not in STATUSES:
        raise InvalidInput("unknown status", field="status")
    if severity and severity not in SEVERITIES:
        raise InvalidInput("unknown severity", field="severity")
    if advisor and len(advisor) > USERID_MAX:
        raise InvalidInput("invalid advisor", field="advisor")
    if category and len(category) > 32:
        raise InvalidInput("unknown category", field="category")
    for name, day in (("since", since), ("until", until)):
        if day is not None and not dt.date(2000, 1, 1) <= day <= dt.date(2100, 12, 31):
            raise InvalidInput("not a date (YYYY-MM-DD)", field=name)
    if since and until and since > until:
        raise InvalidInput("the start date is after the end date", field="since")
    return AlertFilter(status=status or None, severity=severity or None, advisor=advisor or None,
                       category=category or None, since=since, until=until)


def _day_start(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), audit.CALENDAR_ZONE).astimezone(dt.UTC)


def _filtered(q, corp_id: int, f: AlertFilter):
    q = q.where(ArchiveAlert.corp_id == corp_id)
    if f.status:
        q = q.where(ArchiveAlert.status == f.status)
    if f.severity:
        q = q.where(ArchiveAlert.severity == f.severity)
    if f.advisor:
        q = q.where(ArchiveAlert.staff_userid == f.advisor)
    if f.since:
        q = q.where(ArchiveAlert.sent_at >= _day_start(f.since))
    if f.until:
        q = q.where(ArchiveAlert.sent_at < _day_start(f.until + dt.timedelta(days=1)))
    return q


def list_alerts(session: Session, *, corp_id: int, filters: AlertFilter = AlertFilter(), limit: int = 200
                ) -> list[ArchiveAlert]:
    q = _filtered(select(ArchiveAlert), corp_id, filters).order_by(ArchiveAlert.sent_at.desc(), ArchiveAlert.id.desc())
    alerts = list(session.scalars(q.limit(limit if not filters.category else limit * 10)))
    if filters.category:  # categories is a JSON list: filtered here, portable across databases
        alerts = [a for a in alerts if filters.category in a.categories][:limit]
    return alerts


def counts_by_category(session: Session, *, corp_id: int, filters: AlertFilter = AlertFilter()) -> dict[str, int]:
    counter: Counter[str] = Counter()
    for cats in session.scalars(_filtered(select(ArchiveAlert.categories), corp_id,
                                          AlertFilter(**{**filters.__dict__, "category": None}))):
        counter.update(cats or [])
    return dict(counter.most_common())


def counts_by_status(session: Session, *, corp_id: int) -> dict[str, int]:
    rows = session.execute(select(ArchiveAlert.status, func.count()).where(ArchiveAlert.corp_id == corp_id)
                           .group_by(ArchiveAlert.status))
    return {s: 0 for s in STATUSES} | {s: n for s, n in rows}


def advisors(session: Session, *, corp_id: int) -> list[str]:
    return sorted(u for u in session.scalars(select(ArchiveAlert.staff_userid).where(ArchiveAlert.corp_id == corp_id)
                                             .distinct()) if u)


def get_alert(session: Session, *, corp_id: int, alert_id: int) -> ArchiveAlert:
    alert = session.get(ArchiveAlert, alert_id) if isinstance(alert_id, int) and 0 < alert_id < 2**63 else None
    if alert is None or alert.corp_id != corp_id:
        raise NotFound("no such alert", field="alert")
    return alert


def alert_message(session: Session, *, alert: ArchiveAlert) -> ArchiveMessage:
    return session.get(ArchiveMessage, alert.message_id)


def assignable_staff(session: Session, *, corp_id: int) -> list[Staff]:
    q = (select(Staff).where(Staff.corp_id == corp_id, Staff.is_active.is_(True),
                             Staff.id.in_(select(StaffRole.staff_id).where(StaffRole.role.in_(WORKER_ROLES))))
         .order_by(Staff.name))
    return list(session.scalars(q))


def _audit(session: Session, alert: ArchiveAlert, *, actor: Principal | str, action: str, **detail: Any) -> None:
    audit.record(session, corp_id=alert.corp_id, actor=actor, action=f"archive_alert.{action}",
                 target_type="archive_alert", target_id=alert.id,
                 detail={"severity": alert.severity, "categories": alert.categories, **detail})


def assign_alert(session: Session, *, corp_id: int, actor: Principal | str, alert_id: int,
                 assignee_staff_id: int | None) -> ArchiveAlert:
    alert = get_alert(session, corp_id=corp_id, alert_id=alert_id)
    if assignee_staff_id is not None:
        if not any(s.id == assignee_staff_id for s in assignable_staff(session, corp_id=corp_id)):
            raise InvalidInput("choose a compliance officer or an administrator of this corp", field="assignee")
    if alert.assignee_staff_id == assignee_staff_id:
        return alert
    alert.assignee_staff_id = assignee_staff_id
    session.flush()
    _audit(session, alert, actor=actor, action="assigned", assignee_staff_id=assignee_staff_id)
    return alert


def _note(note: object, *, required: bool) -> str:
    text = note.strip() if isinstance(note, str) else ""
    if required and not text:
        raise InvalidInput("write what was done about it", field="note")
    if len(text) > NOTE_MAX:
        raise InvalidInput("the note is too long (at most 1000 characters)", field="note")
    return text


def _close(session: Session, alert: ArchiveAlert, *, actor: Principal | str, status: str, note: str) -> None:
    if alert.status != "open":
        raise Conflict("the alert is already closed", field="alert")
    alert.status = status
    alert.resolution_note = note
    alert.closed_by = actor.label if isinstance(actor, Principal) else str(actor)
    alert.closed_at = utcnow()
    session.flush()


def resolve_alert(session: Session, *, corp_id: int, actor: Principal | str, alert_id: int, note: str
                  ) -> ArchiveAlert:
    alert = get_alert(session, corp_id=corp_id, alert_id=alert_id)
    note = _note(note, required=True)
    _close(session, alert, actor=actor, status="resolved", note=note)
    _audit(session, alert, actor=actor, action="resolved")
    return alert


def mark_false_positive(session: Session, *, corp_id: int, actor: Principal | str, alert_id: int, note: str = ""
                        ) -> ArchiveAlert:
    """Close the alert as a false positive; each dictionary finding counts against its entry."""
    alert = get_alert(session, corp_id=corp_id, alert_id=alert_id)
    note = _note(note, required=False)
    _close(session, alert, actor=actor, status="false_positive", note=note)
    label = actor.label if isinstance(actor, Principal) else str(actor)
    seen = set()
    for f in alert.findings:
        if f.get("source") != "dictionary" or not f.get("phrase") or f["phrase"] in seen:
            continue
        seen.add(f["phrase"])
        session.add(ArchiveFalsePositive(corp_id=corp_id, alert_id=alert.id, entry_id=f.get("entry_id"),
                                         category=f["category"], phrase=f["phrase"], actor=label))
    session.flush()
    _audit(session, alert, actor=actor, action="false_positive", phrases=len(seen))
    return alert


@dataclass(frozen=True)
class FalsePositiveCount:
    phrase: str
    category: str
    count: int
    in_force: bool  # the phrase still raises findings for this corp
    own_entry: bool  # the corp's own entry (else the installation's)


def false_positive_counts(session: Session, *, corp_id: int) -> list[FalsePositiveCount]:
    rows = session.execute(
        select(ArchiveFalsePositive.phrase, ArchiveFalsePositive.category, func.count())
        .where(ArchiveFalsePositive.corp_id == corp_id)
        .group_by(ArchiveFalsePositive.phrase, ArchiveFalsePositive.category)
    ).all()
    if not rows:
        return []
    dictionary = wording.load_dictionary(session, corp_id=corp_id)
    in_force = {normalize(e.phrase): e for e in dictionary.entries}  # later (the corp's own) win
    out = []
    for phrase, category, n in rows:
        entry = in_force.get(normalize(phrase))
        out.append(FalsePositiveCount(phrase=phrase, category=category, count=n,
                                      in_force=entry is not None and entry.severity != "allow",
                                      own_entry=entry is not None and entry.corp_id == corp_id))
    return sorted(out, key=lambda c: (-c.count, c.phrase))


def retire_phrase(session: Session, *, corp_id: int, actor: Principal | str, phrase: str) -> WordingEntry:
    """Take a phrase with false positives out of the corp's dictionary (see the module docstring)."""
    corp_id = _corp_id(corp_id)
    if not isinstance(phrase, str) or not phrase.strip():
        raise InvalidInput("choose a phrase", field="phrase")
    counts = {c.phrase: c for c in false_positive_counts(session, corp_id=corp_id)}
    count = counts.get(phrase)
    if count is None:
        raise NotFound("no false positives were recorded for this phrase", field="phrase")
    if not count.in_force:
        raise Conflict("the phrase is no longer in the dictionary", field="phrase")
    reason = f"chat archive: {count.count} false positive(s)"
    key = normalize(phrase)
    own = session.scalar(select(WordingEntry).where(WordingEntry.scope_id == corp_id, WordingEntry.phrase_key == key))
    if own is not None and own.is_active:
        entry = wording.deactivate_entry(session, corp_id=corp_id, actor=actor, entry_id=own.id, reason=reason)
    elif own is not None:
        raise Conflict("the phrase is no longer in the dictionary", field="phrase")
    else:
        entry = wording.add_entry(session, corp_id=corp_id, actor=actor, category=count.category, phrase=phrase,
                                  severity="allow", rule=reason, notes="Taken out of this corp's dictionary after "
                                                                       "false positives in the chat archive.")
    audit.record(session, corp_id=corp_id, actor=actor, action="archive_alert.phrase_retired",
                 target_type="wording_entry", target_id=entry.id,
                 detail={"category": count.category, "false_positives": count.count,
                         "how": "deactivated" if own is not None else "allowed_for_corp"})
    return entry
