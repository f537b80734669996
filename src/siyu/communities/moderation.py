"""Red-line moderation in customer groups (群红线): what members post in a group, scanned for what a
bank must not let stand in a group it runs — outsiders' ads and the contacts they leave (phone
numbers, WeChat ids, contact cards, QR codes, links, mini-programs), competitors, scams and
illegal fund-raising, forbidden topics.

Where the messages come from: the chat-archive feed (`siyu.compliance.archive`) stores each group
message once per msgid and announces each batch of new ones (`chat.group_messages`, ids only);
`moderate_range` reads them with their text and scans the members' (not staff's) messages. Staff
messages are not moderated here: outbound content goes through the wording review and the archive
alerts. A message is judged once: a hit is unique per msgid, so a redelivered message or a re-run
job changes nothing.

How it matches: the corp's red-line list (`ModerationTerm`, editable by category, imported and
exported like the wording dictionary) is compiled into the compliance matcher's automaton
(`siyu.compliance.matcher.Dictionary`) and run through `siyu.compliance.review.scan_many` with the
detectors (phone, WeChat/QQ id, QR code, external link) and the rule families for what third
parties solicit (fund-raising, asking for codes, stock tips, lending...). No second matcher. A
phrase negated in the message ("谨防刷单诈骗") does not count, as in the wording review. A link
whose domain is on the list as `allowed_link` (the firm's own site) is not flagged. The archive's
card (名片) and mini-program (小程序) messages are a contact left in the group; an image cannot be
decoded from the archive feed, so an image counts as a possible QR code only from a member who
joined in the last `NEW_MEMBER_HOURS` hours (the typical outsider: join, post, leave).

Severity and suggested action: a hit is "block" when a term of severity block matched, or when a
contact (phone, WeChat id, card, QR, link, mini-program) comes with an ad, scam or fund-raising
finding (an outsider's ad); otherwise "review". The owner is told to remove the member (a task for
the owner: WeCom has no API to remove a member from a customer group) when the hit blocks, when the
member crossed a red line before in this group, or when they did in another group too (a repeat
offender: the same external_userid, the corp's id for one WeChat user, in several groups);
otherwise to warn them in the group. When the sync later sees the member removed by the owner
(`group.left` with quit scene 1) the open hits of that member in that group close as removed.

Who sees what: the group's owner sees the hits of their groups (an advisor who `sees_department`,
those of the department's groups); operations, compliance, administrators and auditors all. The
owner, operations, compliance and administrators handle them (audited). The member is shown by
their masked name; the excerpt is kept encrypted."""

from __future__ import annotations

import datetime as dt
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu import pii, tabular
from siyu.communities.models import GroupChat, GroupMember, ModerationHit, ModerationTerm
from siyu.console.i18n import N_
from siyu.db import utcnow
from siyu.errors import Conflict, Forbidden, InvalidInput, NotFound
from siyu.tenancy import audit
from siyu.tenancy.models import Role, Staff
from siyu.tenancy.principal import Principal
from siyu.tenancy.service import valid_id, visible_staff_ids

# The list's own categories (editable); `allowed_link` holds domains whose links pass.
TERM_CATEGORIES: dict[str, str] = {
    "outsider_ad": N_("Outsiders' ads and solicitation"),
    "competitor": N_("Competitors"),
    "scam": N_("Scams"),
    "illegal_fundraising": N_("Illegal fund-raising"),
    "forbidden_topic": N_("Forbidden topics"),
    "allowed_link": N_("Allowed link domain"),
}
# What the detectors and the message types add, and the rule families' categories for what a third
# party solicits in a group (siyu.compliance.rules.CUSTOMER_CATEGORIES).
FINDING_CATEGORIES: dict[str, str] = {
    **{k: v for k, v in TERM_CATEGORIES.items() if k != "allowed_link"},
    "phone": N_("Phone number"),
    "wechat_id": N_("WeChat or QQ id"),
    "qr_code": N_("QR code"),
    "external_link": N_("Outside link"),
    "contact_card": N_("Contact card"),
    "mini_program": N_("Mini-program"),
    "anti_fraud": N_("Asking for codes or passwords"),
    "securities_advice": N_("Stock tips"),
    "loan_promise": N_("Lending offers"),
    "private_fund_promotion": N_("Private-fund promotion"),
    "unlicensed": N_("Unlicensed business"),
    "off_platform": N_("Leading off the platform"),
}
CONTACT = frozenset({"phone", "wechat_id", "qr_code", "external_link", "contact_card", "mini_program"})
AD_LIKE = frozenset({"outsider_ad", "competitor", "scam", "illegal_fundraising", "anti_fraud", "securities_advice",
                     "loan_promise", "private_fund_promotion", "unlicensed", "off_platform"})
DETECTED = frozenset({"phone", "wechat_id", "qr_code", "external_link"})
SEVERITIES = ("block", "review")
SEVERITY_LABELS = {"block": N_("Serious"), "review": N_("To check")}
ACTIONS = {"warn": N_("Warn the member in the group"), "remove": N_("Remove the member from the group")}
STATUSES = {"open": N_("Open"), "warned": N_("Warned"), "removed": N_("Removed"), "dismissed": N_("Not a violation")}
CLOSING = ("warned", "removed", "dismissed")
EDITORS = (Role.ADMINISTRATOR, Role.OPERATIONS, Role.COMPLIANCE)
NEW_MEMBER_HOURS = 72
EXCERPT_CONTEXT = 40
PHRASE_MAX = 100
NOTE_MAX = 300
HANDLE_NOTE_MAX = 500
MAX_ROWS = 5000
MAX_REPORTED = 20
EXPORT_HEADER = ["category", "phrase", "severity", "note", "active"]
IMPORT_COLUMNS = {
    "category": ("类别", "分类"),
    "phrase": ("词语", "短语", "关键词"),
    "severity": ("严重程度", "级别"),
    "note": ("备注", "说明", "notes"),
    "active": ("启用", "有效"),
}

# The list a corp starts with (its own to change): generic wording of the field, no names.
DEFAULT_TERMS: tuple[tuple[str, str, str], ...] = (
    *(("outsider_ad", p, "review") for p in (
        "加我微信", "加微信", "加我好友", "私聊我", "私信我", "免费领取", "扫码进群", "进群领", "点击链接领取",
        "招代理", "代理招募", "兼职日结", "日结工资", "低价出售", "优惠代购", "长按识别")),
    *(("outsider_ad", p, "block") for p in ("刷单", "日赚", "躺赚", "带你赚钱")),
    *(("scam", p, "block") for p in (
        "验证码发我", "把验证码", "安全账户", "屏幕共享", "解冻费", "提现手续费", "刷流水", "内幕消息",
        "稳赚不赔", "百分百中奖", "中奖领取", "退款理赔")),
    *(("illegal_fundraising", p, "block") for p in (
        "高息揽储", "原始股", "拉人头", "资金盘", "虚拟币投资", "挖矿收益", "区块链投资", "养老项目投资",
        "入会返本", "保本高息")),
    *(("forbidden_topic", p, "block") for p in (
        "赌博", "博彩", "赌球", "六合彩", "代开发票", "信用卡套现", "办证", "枪支", "毒品")),
)

_CACHE_SIZE = 64
_cache: OrderedDict[tuple, object] = OrderedDict()
_cache_lock = threading.Lock()


# --- the red-line list ---------------------------------------------------------------------------------------------


def _key(phrase: str) -> str:
    from siyu.compliance.normalize import BARRIER, normalize

    if BARRIER in phrase:
        raise InvalidInput("the phrase contains a character that cannot be matched", field="phrase")
    key = normalize(phrase)
    if not key:
        raise InvalidInput("the phrase has no letters or characters once spaces and symbols are removed",
                           field="phrase")
    return key[:PHRASE_MAX]


def _valid_term(category: object, phrase: object, severity: object, note: object) -> tuple[str, str, str, str]:
    if not isinstance(category, str) or category not in TERM_CATEGORIES:
        raise InvalidInput("category is one of %(values)s", field="category",
                           params={"values": ", ".join(TERM_CATEGORIES)})
    if not isinstance(phrase, str) or not phrase.strip() or len(phrase.strip()) > PHRASE_MAX:
        raise InvalidInput("a phrase is 1–%(n)s characters", field="phrase", params={"n": PHRASE_MAX})
    phrase = phrase.strip()
    if any(ord(c) < 32 for c in phrase):
        raise InvalidInput("a phrase is 1–%(n)s characters", field="phrase", params={"n": PHRASE_MAX})
    if category == "allowed_link":
        from siyu.compliance.detectors import url_host

        phrase = url_host(phrase.lower())
        if "." not in phrase or any(c.isspace() for c in phrase):
            raise InvalidInput("an allowed link is a domain such as bank.example.cn", field="phrase")
        severity = "review"
    if severity not in SEVERITIES:
        raise InvalidInput("severity is block or review", field="severity")
    note = (note or "").strip() if isinstance(note, str | None) else ""
    if len(note) > NOTE_MAX:
        raise InvalidInput("the note is at most %(n)s characters", field="note", params={"n": NOTE_MAX})
    return category, phrase, str(severity), note


def _require_editor(principal: Principal) -> None:
    if principal.kind == "staff" and not principal.has_role(*EDITORS):
        raise Forbidden("your role does not allow this")


def ensure_defaults(session: Session, *, corp_id: int) -> int:
    """Give a corp that never had a red-line list the default one (its own to change from then on:
    terms are deactivated, never deleted, so this happens once). Returns how many were added."""
    if session.scalar(select(ModerationTerm.id).where(ModerationTerm.corp_id == corp_id).limit(1)) is not None:
        return 0
    for category, phrase, severity in DEFAULT_TERMS:
        session.add(ModerationTerm(corp_id=corp_id, category=category, phrase=phrase, phrase_key=_key(phrase),
                                   severity=severity, updated_by="default list"))
    session.flush()
    return len(DEFAULT_TERMS)


def list_terms(session: Session, *, corp_id: int, category: str | None = None) -> list[ModerationTerm]:
    """The corp's red-line list (active and deactivated), by category and phrase."""
    ensure_defaults(session, corp_id=corp_id)
    q = select(ModerationTerm).where(ModerationTerm.corp_id == corp_id)
    if category:
        q = q.where(ModerationTerm.category == category)
    return list(session.scalars(q.order_by(ModerationTerm.category, ModerationTerm.phrase_key)))


def _term(session: Session, corp_id: int, term_id: int) -> ModerationTerm:
    term = session.get(ModerationTerm, term_id) if valid_id(term_id) else None
    if term is None or term.corp_id != corp_id:
        raise NotFound("no such term", field="term_id")
    return term


def _audit_term(session: Session, term: ModerationTerm, principal: Principal | str, action: str, **extra) -> None:
    audit.record(session, corp_id=term.corp_id, actor=principal, action=f"moderation_term.{action}",
                 target_type="moderation_term", target_id=term.id,
                 detail={"category": term.category, "phrase": term.phrase, "severity": term.severity, **extra})


def add_term(session: Session, *, principal: Principal, category: str, phrase: str, severity: str = "review",
             note: str = "") -> ModerationTerm:
    """Add a phrase to the corp's red-line list (audited); a phrase already there is a conflict."""
    _require_editor(principal)
    ensure_defaults(session, corp_id=principal.corp_id)
    category, phrase, severity, note = _valid_term(category, phrase, severity, note)
    key = _key(phrase)
    other = session.scalar(select(ModerationTerm).where(ModerationTerm.corp_id == principal.corp_id,
                                                        ModerationTerm.phrase_key == key))
    if other is not None:
        raise Conflict("the list already has this phrase (as %(phrase)s)", field="phrase",
                       params={"phrase": other.phrase})
    term = ModerationTerm(corp_id=principal.corp_id, category=category, phrase=phrase, phrase_key=key,
                          severity=severity, note=note, updated_by=principal.label[:120])
    session.add(term)
    session.flush()
    _audit_term(session, term, principal, "added")
    return term


def set_term_active(session: Session, *, principal: Principal, term_id: int, active: bool) -> ModerationTerm:
    """Deactivate a term (it stops matching) or bring it back; audited."""
    _require_editor(principal)
    term = _term(session, principal.corp_id, term_id)
    if term.is_active != active:
        term.is_active = active
        term.updated_by = principal.label[:120]
        term.updated_at = utcnow()
        session.flush()
        _audit_term(session, term, principal, "activated" if active else "deactivated")
    return term


def import_terms(session: Session, *, principal: Principal, path: Path | str, filename: str = "") -> dict[str, int]:
    """Import terms from CSV or XLSX (columns category, phrase, severity, note, active): all or nothing —
    a file with a bad row is refused naming each bad row and column. A phrase the list has (compared
    normalised) is updated, any other added."""
    _require_editor(principal)
    ensure_defaults(session, corp_id=principal.corp_id)
    with tabular.open_table(path, filename=filename) as table:
        columns = tabular.map_header(table.header, IMPORT_COLUMNS, required=("category", "phrase"))
        names = {name: table.header[i] for name, i in columns.items()}
        problems: list[str] = []
        rows: list[tuple[str, str, str, str, bool, str]] = []
        seen: dict[str, int] = {}
        for number, cells in table.rows():
            values = {name: (cells[i].strip() if i < len(cells) else "") for name, i in columns.items()}
            if len(rows) + len(problems) >= MAX_ROWS:
                raise InvalidInput("at most %(n)s rows per file", field="file", params={"n": MAX_ROWS})
            try:
                category, phrase, severity, note = _valid_term(values.get("category", ""), values.get("phrase", ""),
                                                               values.get("severity") or "review", values.get("note"))
                key = _key(phrase)
            except InvalidInput as exc:
                problems.append(f"row {number}, column {names.get(exc.field or '', exc.field)}: {exc.message}")
                continue
            active = values.get("active", "").lower() not in ("no", "false", "0", "否", "停用")
            if key in seen:
                problems.append(f"row {number}, column {names['phrase']}: the same phrase as row {seen[key]}")
                continue
            seen[key] = number
            rows.append((category, phrase, severity, note, active, key))
    if problems:
        shown = problems[:MAX_REPORTED]
        more = len(problems) - len(shown)
        raise InvalidInput("nothing was imported: %(problems)s", field="file",
                           params={"problems": "; ".join(shown) + (f"; and {more} more" if more else "")})
    if not rows:
        raise InvalidInput("the file has no entries", field="file")
    own = {t.phrase_key: t for t in session.scalars(select(ModerationTerm).where(
        ModerationTerm.corp_id == principal.corp_id))}
    added = changed = unchanged = 0
    label = principal.label[:120]
    for category, phrase, severity, note, active, key in rows:
        term = own.get(key)
        if term is None:
            session.add(ModerationTerm(corp_id=principal.corp_id, category=category, phrase=phrase, phrase_key=key,
                                       severity=severity, note=note, is_active=active, updated_by=label))
            added += 1
            continue
        new = (category, phrase, severity, note, active)
        if (term.category, term.phrase, term.severity, term.note, term.is_active) == new:
            unchanged += 1
            continue
        term.category, term.phrase, term.severity, term.note, term.is_active = new
        term.updated_by, term.updated_at = label, utcnow()
        changed += 1
    session.flush()
    result = {"added": added, "changed": changed, "unchanged": unchanged}
    audit.record(session, corp_id=principal.corp_id, actor=principal, action="moderation_terms.imported",
                 target_type="corp", target_id=principal.corp_id,
                 detail={"file": (filename or Path(path).name)[:120], **result})
    return result


def export_terms(session: Session, *, principal: Principal, fmt: str, out: IO[bytes]) -> int:
    """The corp's list (active and deactivated) as CSV or XLSX, in the import's columns; audited."""
    _require_editor(principal)
    terms = list_terms(session, corp_id=principal.corp_id)
    count = tabular.write_table(out, fmt, EXPORT_HEADER, ([t.category, t.phrase, t.severity, t.note,
                                                          "yes" if t.is_active else "no"] for t in terms))
    audit.record(session, corp_id=principal.corp_id, actor=principal, action="moderation_terms.exported",
                 target_type="corp", target_id=principal.corp_id, detail={"format": fmt, "rows": count})
    return count


@dataclass(frozen=True)
class CompiledList:
    dictionary: object  # siyu.compliance.matcher.Dictionary
    allowed_domains: tuple[str, ...]


def compiled_list(session: Session, *, corp_id: int) -> CompiledList:
    """The corp's active terms compiled into the compliance matcher, cached per process by the list's
    state (count and last change), so an edit is seen by every process at its next scan."""
    from siyu.compliance.matcher import DictEntry, Dictionary

    ensure_defaults(session, corp_id=corp_id)
    count, changed, top = session.execute(select(func.count(), func.max(ModerationTerm.updated_at),
                                                 func.max(ModerationTerm.id))
                                          .where(ModerationTerm.corp_id == corp_id)).one()
    stamp = (corp_id, count, str(changed), top)
    with _cache_lock:
        hit = _cache.get(stamp)
        if hit is not None:
            _cache.move_to_end(stamp)
            return hit  # type: ignore[return-value]
    terms = list(session.scalars(select(ModerationTerm).where(ModerationTerm.corp_id == corp_id,
                                                              ModerationTerm.is_active.is_(True))))
    entries = [DictEntry(phrase=t.phrase, category=t.category, severity=t.severity,
                         rule=str(TERM_CATEGORIES[t.category]), notes=t.note, entry_id=t.id, corp_id=corp_id)
               for t in terms if t.category != "allowed_link"]
    compiled = CompiledList(Dictionary(entries, version=f"moderation-{corp_id}-{count}-{changed}"),
                            tuple(t.phrase for t in terms if t.category == "allowed_link"))
    with _cache_lock:
        _cache[stamp] = compiled
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return compiled


# --- scanning -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    category: str
    severity: str
    source: str  # dictionary | detector | rule | message_type
    start: int
    end: int
    phrase: str | None = None

    def as_dict(self) -> dict:
        return {"category": self.category, "severity": self.severity, "source": self.source, "start": self.start,
                "end": self.end, "phrase": self.phrase}


def scan_texts(texts: Sequence[str], msgtypes: Sequence[str], *, listing: CompiledList,
               new_member: Sequence[bool] | None = None) -> list[list[Finding]]:
    """The red-line findings of each member message (pure: no database)."""
    from siyu.compliance.review import scan_many

    moderated = set(FINDING_CATEGORIES)
    raw = scan_many(texts, context="archive", dictionary=listing.dictionary,  # type: ignore[arg-type]
                    allowed_domains=listing.allowed_domains, detectors=True)
    out: list[list[Finding]] = []
    for i, (found, msgtype) in enumerate(zip(raw, msgtypes, strict=True)):
        findings = []
        for f in found:
            if f.source == "phonetic" or f.category not in moderated:
                continue
            if f.category == "qr_code" and texts[i].startswith("[图片]") and msgtype == "image":
                continue  # judged below, by who posted it
            findings.append(Finding(f.category, "review" if f.source == "detector" else f.severity, f.source,
                                    f.start, f.end, f.phrase))
        if msgtype == "card":
            findings.append(Finding("contact_card", "review", "message_type", 0, len(texts[i])))
        elif msgtype == "weapp":
            findings.append(Finding("mini_program", "review", "message_type", 0, len(texts[i])))
        elif msgtype == "image" and new_member is not None and new_member[i]:
            findings.append(Finding("qr_code", "review", "message_type", 0, len(texts[i])))
        out.append(sorted(findings, key=lambda f: (f.start, f.end, f.category)))
    return out


def try_text(session: Session, *, corp_id: int, text: str) -> tuple[str | None, list[Finding]]:
    """The corp's red-line list on one text as a member's group message: the severity (None: no red
    line) and the findings with spans into `text`."""
    text = (text or "").replace("\r\n", "\n")
    if not text.strip():
        raise InvalidInput("write a text to test", field="text")
    if len(text) > 4000:
        raise InvalidInput("the text is at most %(max)s characters", field="text", params={"max": 4000})
    findings = scan_texts([text], ["text"], listing=compiled_list(session, corp_id=corp_id))[0]
    return (severity_of(findings) if findings else None), findings


def severity_of(findings: Iterable[Finding]) -> str:
    """block when a blocking term matched or a contact comes with an ad (see the module)."""
    findings = list(findings)
    cats = {f.category for f in findings}
    if any(f.severity == "block" for f in findings) or (cats & CONTACT and cats & AD_LIKE):
        return "block"
    return "review"


def _excerpt(text: str, findings: Sequence[Finding]) -> str:
    start, end = min(f.start for f in findings), max(f.end for f in findings)
    a, b = max(0, start - EXCERPT_CONTEXT), min(len(text), end + EXCERPT_CONTEXT)
    return ("…" if a else "") + text[a:b] + ("…" if b < len(text) else "")


def moderate_range(session: Session, *, corp_id: int, first_id: int, last_id: int) -> list[ModerationHit]:
    """Moderate the group messages the archive stored with ids first_id..last_id (`chat.group_messages`)."""
    from siyu.compliance.archive import group_messages

    return moderate_messages(session, corp_id=corp_id,
                             messages=group_messages(session, corp_id=corp_id, first_id=first_id, last_id=last_id))


def moderate_messages(session: Session, *, corp_id: int, messages: Sequence) -> list[ModerationHit]:
    """Scan the members' messages among `messages` (archive GroupMessage records) and raise one hit per
    message with findings; a message judged before is skipped (unique msgid)."""
    members = [m for m in messages if m.roomid and not m.sender_is_staff and m.sender]
    if not members:
        return []
    msgids = [m.msgid for m in members]
    seen: set[str] = set()
    for i in range(0, len(msgids), 500):
        seen.update(session.scalars(select(ModerationHit.msgid).where(ModerationHit.corp_id == corp_id,
                                                                      ModerationHit.msgid.in_(msgids[i:i + 500]))))
    members = [m for m in dict((m.msgid, m) for m in members).values() if m.msgid not in seen]
    if not members:
        return []
    groups = {g.chat_id: g for g in session.scalars(select(GroupChat).where(
        GroupChat.corp_id == corp_id, GroupChat.chat_id.in_(sorted({m.roomid for m in members}))))}
    stays: dict[tuple[int, str], GroupMember] = {}
    if groups:
        for stay in session.scalars(select(GroupMember).where(
                GroupMember.group_id.in_([g.id for g in groups.values()]),
                GroupMember.member_id.in_(sorted({m.sender for m in members}))).order_by(GroupMember.joined_at)):
            stays[(stay.group_id, stay.member_id)] = stay  # the latest stay wins

    def stay_of(m) -> GroupMember | None:
        group = groups.get(m.roomid)
        return stays.get((group.id, m.sender)) if group is not None else None

    def is_new(m) -> bool:
        stay = stay_of(m)
        return stay is not None and m.sent_at - stay.joined_at <= dt.timedelta(hours=NEW_MEMBER_HOURS)

    listing = compiled_list(session, corp_id=corp_id)
    results = scan_texts([m.text for m in members], [m.msgtype for m in members], listing=listing,
                         new_member=[is_new(m) for m in members])
    flagged = [(m, f) for m, f in zip(members, results, strict=True) if f]
    if not flagged:
        return []
    senders = sorted({m.sender for m, _ in flagged})
    before: dict[str, list[tuple[str, int]]] = {}
    for sender, chat_id, n in session.execute(
            select(ModerationHit.member_id, ModerationHit.chat_id, func.count())
            .where(ModerationHit.corp_id == corp_id, ModerationHit.member_id.in_(senders))
            .group_by(ModerationHit.member_id, ModerationHit.chat_id)):
        before.setdefault(sender, []).append((chat_id, n))
    from siyu.customers.service import customer_refs

    refs = customer_refs(session, corp_id=corp_id, external_userids=senders)
    hits: list[ModerationHit] = []
    for m, findings in flagged:
        group = groups.get(m.roomid)
        history = before.setdefault(m.sender, [])
        chats = {c for c, _ in history} | {m.roomid}
        earlier_here = sum(n for c, n in history if c == m.roomid)
        severity = severity_of(findings)
        action = "remove" if severity == "block" or earlier_here or len(chats) > 1 else "warn"
        stay = stay_of(m)
        ref = refs.get(m.sender)
        hit = ModerationHit(
            corp_id=corp_id, msgid=m.msgid, group_id=group.id if group else None, chat_id=m.roomid,
            member_id=m.sender, customer_id=ref.id if ref else (stay.customer_id if stay else None),
            member_name=stay.name if stay else None, owner_userid=group.owner_userid if group else "",
            owner_staff_id=group.owner_staff_id if group else None, msgtype=m.msgtype, sent_at=m.sent_at,
            severity=severity, categories=sorted({f.category for f in findings}),
            findings=[f.as_dict() for f in findings], excerpt=_excerpt(m.text, findings), suggested_action=action,
            offender_groups=len(chats), status="open")
        hits.append(hit)
        history.append((m.roomid, 1))
    session.add_all(hits)
    session.flush()
    from siyu.jobs.events import publish

    for hit in hits:  # ids only: notifications and analytics subscribe
        publish(session, "group.red_line", {"hit_id": hit.id, "chat_id": hit.chat_id, "group_id": hit.group_id,
                                            "external_userid": hit.member_id, "severity": hit.severity,
                                            "categories": hit.categories, "owner_userid": hit.owner_userid,
                                            "suggested_action": hit.suggested_action,
                                            "offender_groups": hit.offender_groups},
                corp_id=corp_id, key=f"{corp_id}:{hit.msgid}")
    return hits


def close_removed(session: Session, *, corp_id: int, chat_id: str, external_userid: str, at: dt.datetime | None = None
                  ) -> int:
    """The owner removed the member from the group (seen by the sync): their open hits there close as removed."""
    n = 0
    for hit in session.scalars(select(ModerationHit).where(
            ModerationHit.corp_id == corp_id, ModerationHit.chat_id == chat_id,
            ModerationHit.member_id == external_userid, ModerationHit.status == "open")):
        hit.status, hit.handled_by, hit.handled_at = "removed", "WeCom (removed by the owner)", at or utcnow()
        n += 1
    session.flush()
    return n


# --- the owner's and operations' view -------------------------------------------------------------------------------


def _visible(session: Session, principal: Principal) -> list:
    conditions = [ModerationHit.corp_id == principal.corp_id]
    visible = visible_staff_ids(session, principal=principal)
    if visible is not None:
        conditions.append(ModerationHit.owner_staff_id.in_(sorted(visible)) if visible
                          else ModerationHit.id.is_(None))
    return conditions


@dataclass
class HitRow:
    id: int
    group_id: int | None
    group_name: str
    owner_name: str
    member_name: str  # masked
    customer_id: int | None
    sent_at: dt.datetime
    msgtype: str
    severity: str
    categories: list[str]
    excerpt: str
    suggested_action: str
    offender_groups: int
    status: str
    handled_by: str
    handled_at: dt.datetime | None
    note: str
    may_handle: bool


@dataclass
class Offender:
    member_name: str
    customer_id: int | None
    groups: list[tuple[int | None, str]]
    hits: int
    last_at: dt.datetime


def _may_handle(principal: Principal, hit: ModerationHit) -> bool:
    if principal.kind != "staff":
        return False
    return principal.has_role(*EDITORS) or (hit.owner_staff_id is not None and hit.owner_staff_id == principal.staff_id)


def _member_names(session: Session, corp_id: int, hits: Sequence[ModerationHit]) -> dict[str, str]:
    from siyu.customers.service import customer_refs

    refs = customer_refs(session, corp_id=corp_id, external_userids=[h.member_id for h in hits])
    out = {}
    for h in hits:
        ref = refs.get(h.member_id)
        out[h.member_id] = (ref.name_masked if ref and ref.name_masked else pii.mask_name(h.member_name)) or "—"
    return out


def list_hits(session: Session, *, principal: Principal, status: str | None = "open", category: str | None = None,
              group_id: int | None = None, limit: int = 200) -> list[HitRow]:
    """The red-line hits the caller may see, newest first."""
    if status and status not in STATUSES:
        raise InvalidInput("unknown status", field="status")
    if category and category not in FINDING_CATEGORIES:
        raise InvalidInput("unknown category", field="category")
    conditions = _visible(session, principal)
    if status:
        conditions.append(ModerationHit.status == status)
    if group_id is not None:
        conditions.append(ModerationHit.group_id == group_id)
    hits = list(session.scalars(select(ModerationHit).where(*conditions)
                                .order_by(ModerationHit.sent_at.desc(), ModerationHit.id.desc())
                                .limit(limit * 10 if category else limit)))
    if category:  # a JSON list: filtered here, the same on every database
        hits = [h for h in hits if category in (h.categories or [])][:limit]
    groups = {g.id: g.name for g in session.scalars(select(GroupChat).where(
        GroupChat.id.in_({h.group_id for h in hits if h.group_id})))}
    owners = {s.id: s.name for s in session.scalars(select(Staff).where(
        Staff.id.in_({h.owner_staff_id for h in hits if h.owner_staff_id})))}
    names = _member_names(session, principal.corp_id, hits)
    return [HitRow(id=h.id, group_id=h.group_id, group_name=groups.get(h.group_id or 0, h.chat_id),
                   owner_name=owners.get(h.owner_staff_id or 0, h.owner_userid), member_name=names[h.member_id],
                   customer_id=h.customer_id, sent_at=h.sent_at, msgtype=h.msgtype, severity=h.severity,
                   categories=list(h.categories or []), excerpt=h.excerpt, suggested_action=h.suggested_action,
                   offender_groups=h.offender_groups, status=h.status, handled_by=h.handled_by,
                   handled_at=h.handled_at, note=h.note, may_handle=_may_handle(principal, h)) for h in hits]


def counts(session: Session, *, principal: Principal) -> dict[str, int]:
    """Hits the caller may see, by status."""
    rows = session.execute(select(ModerationHit.status, func.count()).where(*_visible(session, principal))
                           .group_by(ModerationHit.status))
    return dict.fromkeys(STATUSES, 0) | dict(rows.all())


def repeat_offenders(session: Session, *, principal: Principal, limit: int = 50) -> list[Offender]:
    """Members who crossed a red line in more than one group (of the groups the caller may see)."""
    rows = session.execute(select(ModerationHit.member_id).where(*_visible(session, principal))
                           .group_by(ModerationHit.member_id)
                           .having(func.count(func.distinct(ModerationHit.chat_id)) > 1)
                           .order_by(func.max(ModerationHit.sent_at).desc()).limit(limit)).scalars().all()
    if not rows:
        return []
    hits = list(session.scalars(select(ModerationHit).where(*_visible(session, principal),
                                                            ModerationHit.member_id.in_(rows))
                                .order_by(ModerationHit.sent_at)))
    groups = {g.id: g.name for g in session.scalars(select(GroupChat).where(
        GroupChat.id.in_({h.group_id for h in hits if h.group_id})))}
    names = _member_names(session, principal.corp_id, hits)
    out: dict[str, Offender] = {}
    for h in hits:
        o = out.setdefault(h.member_id, Offender(member_name=names[h.member_id], customer_id=h.customer_id,
                                                 groups=[], hits=0, last_at=h.sent_at))
        o.hits += 1
        o.last_at = max(o.last_at, h.sent_at)
        entry = (h.group_id, groups.get(h.group_id or 0, h.chat_id))
        if entry not in o.groups:
            o.groups.append(entry)
    return sorted(out.values(), key=lambda o: o.last_at, reverse=True)


def handle_hit(session: Session, *, principal: Principal, hit_id: int, status: str, note: str = "",
               ip: str | None = None) -> ModerationHit:
    """The owner (or operations, compliance, an administrator) records what was done: warned the member,
    removed them from the group in WeCom, or found it was not a violation (a note is required then)."""
    if status not in CLOSING:
        raise InvalidInput("choose warned, removed or not a violation", field="status")
    hit = session.get(ModerationHit, hit_id) if valid_id(hit_id) else None
    if hit is None or session.scalar(select(ModerationHit.id).where(ModerationHit.id == hit.id,
                                                                   *_visible(session, principal))) is None:
        raise NotFound("no such red-line alert", field="hit_id")
    if not _may_handle(principal, hit):
        raise Forbidden("only the group owner, operations or compliance handle this alert")
    if hit.status != "open":
        raise Conflict("the alert was already handled", field="status")
    note = (note or "").strip()
    if status == "dismissed" and not note:
        raise InvalidInput("say why this is not a violation", field="note")
    if len(note) > HANDLE_NOTE_MAX:
        raise InvalidInput("the note is at most %(n)s characters", field="note", params={"n": HANDLE_NOTE_MAX})
    hit.status, hit.note, hit.handled_by, hit.handled_at = status, note, principal.label[:120], utcnow()
    session.flush()
    audit.record(session, corp_id=hit.corp_id, actor=principal, action=f"moderation_hit.{status}",
                 target_type="moderation_hit", target_id=hit.id,
                 detail={"group_id": hit.group_id, "categories": hit.categories, "severity": hit.severity}, ip=ip)
    return hit


def open_count_for_owner(session: Session, *, principal: Principal) -> int:
    """Open hits in the caller's own groups (the advisor's home tile)."""
    if principal.staff_id is None:
        return 0
    return session.scalar(select(func.count()).select_from(ModerationHit).where(
        ModerationHit.corp_id == principal.corp_id, ModerationHit.owner_staff_id == principal.staff_id,
        ModerationHit.status == "open")) or 0
