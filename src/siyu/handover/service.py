"""Customer-asset handover (客户继承): when an advisor leaves (离职继承) or moves (在职继承), their
customers and groups are handed to one or more take-over advisors, and none may be silently lost.

A plan is checked before anything reaches WeCom, with a reason per customer that cannot go: at most
two in-service transfers per customer in 90 days (counted from Siyu's own records), never to the
advisor who has the customer already, take-over advisors must be active staff. An in-service
transfer's message to the customers is reviewed by compliance first.

Execution is durable (`handover.jobs`): calls of at most 100 customers, each through
`siyu.wecom.service.send_once`; each customer then goes pending → waiting (24 h) → done | refused |
failed | limit. A failure is retried, each time to the next take-over advisor, up to
`MAX_ATTEMPTS` calls, then escalated (shown on the handover page and counted on the dashboard).
When a customer is taken over, `customer.transferred` moves the follow relation in the customers
domain. Service functions take the session first and never commit."""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.db import utcnow
from siyu.errors import InvalidInput, NotFound
from siyu.handover.models import Handover, HandoverItem
from siyu.tenancy import audit
from siyu.tenancy.principal import Principal

log = logging.getLogger(__name__)

KINDS = ("resigned", "in_service")
WRITER_ROLES = ("administrator", "operations")
READER_ROLES = (*WRITER_ROLES, "compliance", "auditor")
BATCH_MAX = 100  # customers (or groups) per WeCom call
MAX_ATTEMPTS = 3  # calls per customer before it is escalated
WINDOW = dt.timedelta(days=90)
PER_WINDOW = 2  # in-service transfers per customer per window
TAKEOVER_DELAY = dt.timedelta(hours=24)
MESSAGE_MAX_CHARS = 200
MAX_TAKEOVERS = 20
MAX_TARGETS = 20_000
CUSTOMER_STATES = ("pending", "waiting", "done", "refused", "failed", "limit", "skipped")
GROUP_STATES = ("pending", "done", "failed", "skipped")
OPEN_STATES = ("pending", "waiting")
FAILED_STATES = ("refused", "failed", "limit")
USERID_RE = re.compile(r"^[A-Za-z0-9_.@\-]{1,64}$")
TARGET_RE = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")

# transfer_result status -> item state
RESULT_STATES = {1: "done", 2: "waiting", 3: "refused", 4: "limit", 5: "failed"}
ERRCODE_REASONS = {
    40096: "WeCom does not know this customer",
    40097: "the handing advisor has not resigned at WeCom",
    40128: "WeCom refused: transferred twice in the last 90 days",
    40129: "WeCom refused: the customer is being transferred already",
    84061: "not a customer of the handing advisor at WeCom",
    60111: "not an active member at WeCom",
    90500: "the group's owner has not resigned",
    90501: "not a customer group at WeCom",
    90502: "the group's owner has resigned",
    90503: "the new owner owns the group already",
}
# Failures a retry to another advisor cannot mend: escalated at once.
FINAL_ERRCODES = frozenset({40096, 40097, 84061, 60111, 90500, 90501, 90502})


@dataclass(frozen=True)
class Batch:
    """One WeCom call of a run: customers or groups to one take-over advisor, keyed for send-once."""

    key: str
    kind: str  # customer | group
    takeover_userid: str
    targets: tuple[str, ...]


@dataclass(frozen=True)
class HandoverCounts:
    total: int
    by_state: dict[str, int]
    escalated: int

    @property
    def finished(self) -> int:
        return self.total - self.by_state.get("pending", 0) - self.by_state.get("waiting", 0)

    @property
    def percent(self) -> int:
        return 100 if not self.total else self.finished * 100 // self.total


# --- input ----------------------------------------------------------------------------------------------


def _userid(value: object, *, field: str) -> str:
    text = str(value or "").strip()
    if not text:
        raise InvalidInput("choose an advisor", field=field)
    if not USERID_RE.fullmatch(text):
        raise InvalidInput("not a WeCom user id", field=field)
    return text


def parse_ids(value: str | Iterable[str] | None, *, field: str) -> list[str]:
    """Ids one per line (or comma-separated), each checked; duplicates dropped, order kept."""
    items = re.split(r"[\s,，、]+", value) if isinstance(value, str) else list(value or [])
    out: list[str] = []
    for n, raw in enumerate(items, start=1):
        item = str(raw).strip()
        if not item:
            continue
        if not TARGET_RE.fullmatch(item):
            raise InvalidInput("line %(n)s is not a WeCom id", field=field, params={"n": n})
        if item not in out:
            out.append(item)
    if len(out) > MAX_TARGETS:
        raise InvalidInput("at most %(n)s ids", field=field, params={"n": MAX_TARGETS})
    return out


def _active_staff(session: Session, corp_id: int, userid: str):
    from siyu.tenancy.service import get_staff_by_wecom_userid

    staff = get_staff_by_wecom_userid(session, corp_id=corp_id, wecom_userid=userid)
    return staff if staff is not None and staff.is_active else None


def check_message(session: Session, *, corp_id: int, message: str | None) -> str | None:
    """The in-service transfer message as WeCom will send it to each customer, reviewed: text that
    compliance blocks (or flags for approval: it goes out unattended) is refused, naming the findings,
    and so is a message that, with the risk disclosure it needs, is longer than WeCom takes."""
    text = (message or "").strip()
    if not text:
        return None
    if len(text) > MESSAGE_MAX_CHARS:
        raise InvalidInput("the message is at most %(n)s characters", field="message",
                           params={"n": MESSAGE_MAX_CHARS})
    verdict = guard_message(session, corp_id=corp_id, message=text)
    if verdict.verdict == "block":
        found = "、".join(dict.fromkeys(f.match for f in verdict.findings if f.severity == "block"))
        raise InvalidInput("compliance review blocks this text: %(found)s", field="message", params={"found": found})
    if verdict.verdict == "review":
        found = "、".join(dict.fromkeys(f.match for f in verdict.findings))
        raise InvalidInput("compliance review flags this text for approval: %(found)s", field="message",
                           params={"found": found})
    if len(verdict.text) > MESSAGE_MAX_CHARS:
        raise InvalidInput("with its risk disclosure the message is over %(n)s characters; shorten it",
                           field="message", params={"n": MESSAGE_MAX_CHARS})
    return text


def guard_message(session: Session, *, corp_id: int, message: str, recipients: Sequence[str] = ()):
    """Compliance's outbound guard on the transfer message (`compliance.service.prepare_outbound`,
    kind "handover"): the text to send, with the risk disclosure when it talks about a product."""
    from siyu.compliance.service import prepare_outbound

    return prepare_outbound(session, corp_id=corp_id, kind="handover", text=message, recipients=recipients)


def message_to_send(session: Session, *, handover: Handover, recipients: Sequence[str]) -> str | None:
    """At send time, in a transaction that commits before the call: the in-service transfer message
    to hand WeCom — the guard's final text —, or None. A message the guard holds (block, or review:
    it goes out unattended; or too long with its disclosure) is not sent: the customers are still
    transferred, with WeCom's own notice, and the message is recorded as blocked with the findings
    (outbound record `handover:<id>:message`, shown with the corp's WeCom sends)."""
    from siyu.compliance.content import content_for_send
    from siyu.wecom.service import record_outcome

    if handover.kind != "in_service" or not handover.message:
        return None
    content = content_for_send(session, corp_id=handover.corp_id, kind="handover", owner=("handover", handover.id))
    if content.held:  # the gate: the message is sent only in its approved version
        record_outcome(session, corp_id=handover.corp_id, effect_key=f"handover:{handover.id}:message",
                       endpoint="transfer_customer", state="held", detail=f"approval: {content.held_reason}")
        return None
    out = guard_message(session, corp_id=handover.corp_id, message=content.text, recipients=recipients)
    if content.held_by(out) or len(out.text) > MESSAGE_MAX_CHARS:
        detail = (out.summary() if content.held_by(out)
                  else f"with its risk disclosure over {MESSAGE_MAX_CHARS} characters")
        record_outcome(session, corp_id=handover.corp_id, effect_key=f"handover:{handover.id}:message",
                       endpoint="transfer_customer", state="blocked", detail=detail)
        log.warning("handover %s: its transfer message was held back (%s)", handover.id, out.verdict)
        return None
    return out.text


def recent_transfer_counts(session: Session, *, corp_id: int, external_userids: Sequence[str],
                           now: dt.datetime | None = None) -> dict[str, int]:
    """In-service transfers WeCom started for each customer in the last 90 days, from Siyu's records."""
    if not external_userids:
        return {}
    since = (now or utcnow()) - WINDOW
    out: dict[str, int] = {}
    ids = list(external_userids)
    for start in range(0, len(ids), 500):
        rows = session.execute(
            select(HandoverItem.target_id, func.sum(HandoverItem.accepted))
            .join(Handover, Handover.id == HandoverItem.handover_id)
            .where(HandoverItem.corp_id == corp_id, HandoverItem.kind == "customer",
                   HandoverItem.target_id.in_(ids[start:start + 500]), Handover.kind == "in_service",
                   HandoverItem.requested_at >= since, HandoverItem.accepted > 0)
            .group_by(HandoverItem.target_id)).all()
        out.update({ext: int(n or 0) for ext, n in rows})
    return out


def _in_progress(session: Session, corp_id: int, kind: str, targets: Sequence[str]) -> set[str]:
    found: set[str] = set()
    ids = list(targets)
    for start in range(0, len(ids), 500):
        found.update(session.scalars(select(HandoverItem.target_id).where(
            HandoverItem.corp_id == corp_id, HandoverItem.kind == kind,
            HandoverItem.target_id.in_(ids[start:start + 500]), HandoverItem.state.in_(OPEN_STATES))))
    return found


# --- plans ----------------------------------------------------------------------------------------------


def create_handover(
    session: Session,
    *,
    corp_id: int,
    actor: Principal | str,
    kind: str,
    handover_userid: str,
    takeover_userids: Sequence[str],
    external_userids: Sequence[str] | None = None,
    all_groups: bool = False,
    chat_ids: Sequence[str] = (),
    message: str | None = None,
    now: dt.datetime | None = None,
    ip: str | None = None,
) -> Handover:
    """Check a plan and store it with one item per customer and group; customers that may not go
    are stored as `skipped` with the reason. `external_userids` None: all the advisor's customers.
    Enqueues the run (`compliance.handover_run`) in the caller's transaction."""
    from siyu.customers.contacts import followers_of_advisor_customers
    from siyu.jobs.service import enqueue

    if kind not in KINDS:
        raise InvalidInput("choose resigned or in-service", field="kind")
    handover_userid = _userid(handover_userid, field="handover_userid")
    takeovers: list[str] = []
    for raw in takeover_userids:
        userid = _userid(raw, field="takeover_userids")
        if userid == handover_userid:
            raise InvalidInput("the take-over advisor cannot be the handing advisor (%(userid)s)",
                               field="takeover_userids", params={"userid": userid})
        if _active_staff(session, corp_id, userid) is None:
            raise InvalidInput("%(userid)s is not an active member of staff", field="takeover_userids",
                               params={"userid": userid})
        if userid not in takeovers:
            takeovers.append(userid)
    if not takeovers:
        raise InvalidInput("choose at least one take-over advisor", field="takeover_userids")
    if len(takeovers) > MAX_TAKEOVERS:
        raise InvalidInput("at most %(n)s take-over advisors", field="takeover_userids", params={"n": MAX_TAKEOVERS})
    if kind == "in_service":
        if _active_staff(session, corp_id, handover_userid) is None:
            raise InvalidInput("an in-service transfer is from an active member of staff", field="handover_userid")
        message = check_message(session, corp_id=corp_id, message=message)
    elif (message or "").strip():
        raise InvalidInput("only an in-service transfer sends a message", field="message")
    else:
        message = None
    chat_ids = parse_ids(chat_ids, field="chat_ids")

    followers = followers_of_advisor_customers(session, corp_id=corp_id, wecom_userid=handover_userid)
    wanted = sorted(followers) if external_userids is None else parse_ids(external_userids,
                                                                         field="external_userids")
    if not wanted and not chat_ids and not all_groups:
        raise InvalidInput("the advisor has no customers to hand over; choose groups or other customers",
                           field="external_userids")
    now = now or utcnow()
    recent = recent_transfer_counts(session, corp_id=corp_id, external_userids=wanted, now=now) \
        if kind == "in_service" else {}
    busy = _in_progress(session, corp_id, "customer", wanted)
    handover = Handover(corp_id=corp_id, kind=kind, handover_userid=handover_userid, takeover_userids=takeovers,
                        message=message, all_groups=all_groups, groups_resolved=not all_groups, status="running",
                        created_by=actor.label if isinstance(actor, Principal) else str(actor)[:120])
    session.add(handover)
    session.flush()
    spread = 0
    items = []
    for ext in wanted:
        reason = ""
        takeover = takeovers[spread % len(takeovers)]
        if ext not in followers:
            reason = "not a customer of the handing advisor"
        elif ext in busy:
            reason = "already in another handover that has not finished"
        elif recent.get(ext, 0) >= PER_WINDOW:
            reason = "transferred twice in the last 90 days"
        else:
            free = [t for t in takeovers if t not in followers[ext]]
            if not free:
                reason = "every take-over advisor has this customer already"
            else:
                # Spread evenly: the next advisor in turn who does not have the customer yet.
                takeover = next(t for t in takeovers[spread % len(takeovers):] + takeovers if t in free)
                spread += 1
        items.append(HandoverItem(corp_id=corp_id, handover_id=handover.id, kind="customer", target_id=ext,
                                  takeover_userid=takeover, state="skipped" if reason else "pending", reason=reason))
    for n, chat_id in enumerate(chat_ids):
        items.append(HandoverItem(corp_id=corp_id, handover_id=handover.id, kind="group", target_id=chat_id,
                                  takeover_userid=takeovers[n % len(takeovers)], state="pending"))
    session.add_all(items)
    session.flush()
    if message:
        # The message is content for compliance's gate (kind "handover"): by default a handover notice
        # needs no checker and goes in force at once; a corp that requires approval for it sends it
        # only once approved (until then the customers are transferred with WeCom's own notice).
        from siyu.compliance.content import submit_content

        submit_content(session, corp_id=corp_id, actor=actor, kind="handover", owner=("handover", handover.id),
                       body=message, title="继承消息", field="message")
    refresh_status(session, handover=handover)
    counts = Counter(i.state for i in items)
    audit.record(session, corp_id=corp_id, actor=actor, action="compliance.handover_created", target_type="handover",
                 target_id=handover.id, ip=ip,
                 detail={"kind": kind, "handover_userid": handover_userid, "takeover_userids": takeovers,
                         "customers": sum(1 for i in items if i.kind == "customer"), "skipped": counts["skipped"],
                         "groups": len(chat_ids), "all_groups": all_groups, "message_chars": len(message or "")})
    enqueue(session, name="compliance.handover_run", payload={"handover_id": handover.id}, corp_id=corp_id,
            idempotency_key=f"compliance.handover_run:{handover.id}:created")
    return handover


def get_handover(session: Session, *, corp_id: int, handover_id: int) -> Handover:
    handover = session.get(Handover, handover_id)
    if handover is None or handover.corp_id != corp_id:
        raise NotFound("no such handover", field="handover")
    return handover


def list_handovers(session: Session, *, corp_id: int, limit: int = 100) -> list[Handover]:
    return list(session.scalars(select(Handover).where(Handover.corp_id == corp_id)
                                .order_by(Handover.id.desc()).limit(limit)))


def list_items(session: Session, *, handover: Handover, kind: str | None = None) -> list[HandoverItem]:
    q = select(HandoverItem).where(HandoverItem.handover_id == handover.id)
    if kind:
        q = q.where(HandoverItem.kind == kind)
    return list(session.scalars(q.order_by(HandoverItem.kind, HandoverItem.id)))


def counts(session: Session, *, corp_id: int, handover_ids: Sequence[int]) -> dict[int, HandoverCounts]:
    """Items per state (and escalations) of each handover."""
    out: dict[int, dict[str, int]] = {hid: {} for hid in handover_ids}
    escalated: Counter[int] = Counter()
    if handover_ids:
        rows = session.execute(
            select(HandoverItem.handover_id, HandoverItem.state, HandoverItem.escalated, func.count())
            .where(HandoverItem.corp_id == corp_id, HandoverItem.handover_id.in_(list(handover_ids)))
            .group_by(HandoverItem.handover_id, HandoverItem.state, HandoverItem.escalated)).all()
        for hid, state, esc, n in rows:
            out[hid][state] = out[hid].get(state, 0) + n
            if esc:
                escalated[hid] += n
    return {hid: HandoverCounts(total=sum(c.values()), by_state=c, escalated=escalated[hid])
            for hid, c in out.items()}


def escalation_count(session: Session, *, corp_id: int) -> int:
    return session.scalar(select(func.count()).select_from(HandoverItem).where(
        HandoverItem.corp_id == corp_id, HandoverItem.escalated.is_(True))) or 0


def refresh_status(session: Session, *, handover: Handover) -> str:
    """running while anything is pending, waiting or due for a retry; then done, or attention when
    something was escalated."""
    session.flush()
    rows = session.execute(select(HandoverItem.state, HandoverItem.escalated, HandoverItem.attempts)
                           .where(HandoverItem.handover_id == handover.id)).all()
    open_ = any(s in OPEN_STATES or (s in FAILED_STATES and not e) for s, e, _ in rows)
    if not handover.groups_resolved:
        open_ = True
    status = "running" if open_ else ("attention" if any(e for _, e, _ in rows) else "done")
    if status != handover.status:
        handover.status = status
        handover.finished_at = None if status == "running" else utcnow()
    return status


# --- execution (called by the jobs) ---------------------------------------------------------------------


def add_groups(session: Session, *, handover: Handover, chat_ids: Sequence[str]) -> int:
    """The groups the handing advisor owns at WeCom (for "all groups"), added once."""
    have = set(session.scalars(select(HandoverItem.target_id).where(HandoverItem.handover_id == handover.id,
                                                                   HandoverItem.kind == "group")))
    takeovers = list(handover.takeover_userids)
    added = 0
    for chat_id in chat_ids:
        if chat_id in have:
            continue
        session.add(HandoverItem(corp_id=handover.corp_id, handover_id=handover.id, kind="group", target_id=chat_id,
                                 takeover_userid=takeovers[(len(have) + added) % len(takeovers)], state="pending"))
        added += 1
    handover.groups_resolved = True
    session.flush()
    return added


NOT_LISTED_MEMBER = "WeCom lists no customers of this member waiting for a handover (not resigned, or all assigned)"
NOT_LISTED_CUSTOMER = "WeCom does not list this customer as waiting for a handover"


def check_unassigned(session: Session, *, handover: Handover, listed: set[str]) -> int:
    """A resigned handover moves only what WeCom holds for one (get_unassigned_list): `listed` is the
    handing member's customers WeCom lists as waiting. Customers not yet tried who are not listed are
    not handed over, with the reason (no call is made for them); returns how many."""
    if handover.kind != "resigned":
        return 0
    reason = NOT_LISTED_CUSTOMER if listed else NOT_LISTED_MEMBER
    skipped = 0
    for item in list_items(session, handover=handover, kind="customer"):
        if item.state == "pending" and item.attempts == 0 and not item.batch_key and item.target_id not in listed:
            item.state, item.reason = "skipped", reason
            skipped += 1
    session.flush()
    return skipped


def _next_takeover(handover: Handover, current: str) -> str:
    takeovers = list(handover.takeover_userids)
    if current not in takeovers:
        return takeovers[0]
    return takeovers[(takeovers.index(current) + 1) % len(takeovers)]


def plan_batches(session: Session, *, handover: Handover) -> list[Batch]:
    """The calls a run makes: failed items due for a retry go to the next take-over advisor; pending
    items get a send-once key per call of at most 100 (kept, so a re-run finds the same keys)."""
    items = list_items(session, handover=handover)
    for item in items:
        if item.state in FAILED_STATES and not item.escalated and item.attempts < MAX_ATTEMPTS:
            item.takeover_userid = _next_takeover(handover, item.takeover_userid)
            item.state, item.batch_key = "pending", None
    unkeyed: dict[tuple[str, str], list[HandoverItem]] = {}
    keyed: dict[str, list[HandoverItem]] = {}
    for item in items:
        if item.state != "pending":
            continue
        if item.batch_key:
            keyed.setdefault(item.batch_key, []).append(item)
        else:
            unkeyed.setdefault((item.kind, item.takeover_userid), []).append(item)
    for (_kind, _takeover), group in unkeyed.items():
        for start in range(0, len(group), BATCH_MAX):
            chunk = group[start:start + BATCH_MAX]
            for item in chunk:
                item.attempts += 1
            # Unique for ever: an item's (id, attempt) is in one call only.
            key = f"handover:{handover.id}:i{chunk[0].id}:a{chunk[0].attempts}"
            for item in chunk:
                item.batch_key = key
            keyed[key] = chunk
    session.flush()
    return [Batch(key=key, kind=chunk[0].kind, takeover_userid=chunk[0].takeover_userid,
                  targets=tuple(i.target_id for i in chunk)) for key, chunk in keyed.items()]


def _fail(handover: Handover, item: HandoverItem, state: str, reason: str, *, final: bool = False) -> None:
    item.state, item.reason = state, reason[:200]
    if final or item.attempts >= MAX_ATTEMPTS or (state == "refused" and handover.kind == "in_service"):
        # A customer who declined an in-service transfer said no: asking again spends their 90-day quota.
        item.escalated = True


def record_batch(session: Session, *, handover: Handover, batch: Batch, outcome_state: str,
                 errcode: int | None = None, detail: str = "", customer_errcodes: dict[str, int] | None = None,
                 failed_chats: dict[str, tuple[int, str]] | None = None, now: dt.datetime | None = None) -> None:
    """What one call did to each of its items."""
    now = now or utcnow()
    items = list(session.scalars(select(HandoverItem).where(HandoverItem.handover_id == handover.id,
                                                            HandoverItem.batch_key == batch.key,
                                                            HandoverItem.state == "pending")))
    for item in items:
        if outcome_state != "sent":
            if outcome_state == "failed":
                reason = ERRCODE_REASONS.get(errcode or 0) or f"WeCom call failed: {detail}"[:200]
                _fail(handover, item, "failed", reason, final=errcode in FINAL_ERRCODES)
            elif item.kind == "customer":
                # The call may have reached WeCom: the result query decides.
                item.state, item.reason = "waiting", "the call's answer was lost; the result query decides"
            else:
                _fail(handover, item, "failed", "the call's answer was lost; check the group at WeCom", final=True)
            continue
        if item.kind == "group":
            code, msg = (failed_chats or {}).get(item.target_id, (0, ""))
            if code:
                _fail(handover, item, "failed", ERRCODE_REASONS.get(code) or f"{code} {msg}",
                      final=code in FINAL_ERRCODES)
            else:
                item.state, item.reason = "done", ""
            continue
        code = (customer_errcodes or {}).get(item.target_id, -1)
        if code == 0:
            item.state, item.reason = "waiting", ""
            item.accepted += 1
            item.requested_at, item.takeover_at = now, now + TAKEOVER_DELAY
        elif code == 40129:
            # Being transferred already (perhaps by a call of ours whose answer was lost): the result query decides.
            item.state, item.reason = "waiting", ERRCODE_REASONS[code]
            item.takeover_at = now + TAKEOVER_DELAY
        elif code == 40128:
            _fail(handover, item, "limit", ERRCODE_REASONS[code], final=True)
        else:
            _fail(handover, item, "failed", ERRCODE_REASONS.get(code) or f"WeCom answered {code}",
                  final=code in FINAL_ERRCODES)
    refresh_status(session, handover=handover)


def waiting_takeovers(session: Session, *, handover: Handover) -> list[str]:
    return sorted(set(session.scalars(select(HandoverItem.takeover_userid).where(
        HandoverItem.handover_id == handover.id, HandoverItem.kind == "customer", HandoverItem.state == "waiting"))))


def apply_results(session: Session, *, handover: Handover, takeover_userid: str,
                  statuses: dict[str, tuple[int, int]], asked_at: dt.datetime | None = None) -> int:
    """transfer_result's answer (external_userid -> (status, takeover_time)) applied to the waiting
    customers of one take-over advisor; each one taken over publishes `customer.transferred`.
    A customer whose transfer was requested after `asked_at` is left alone: the answer speaks of an
    earlier one. Returns how many are still waiting."""
    from siyu.jobs.events import publish

    still = 0
    items = session.scalars(select(HandoverItem).where(
        HandoverItem.handover_id == handover.id, HandoverItem.kind == "customer", HandoverItem.state == "waiting",
        HandoverItem.takeover_userid == takeover_userid))
    for item in items:
        requested = item.requested_at
        if asked_at is not None and requested is not None and \
                (requested if requested.tzinfo else requested.replace(tzinfo=dt.UTC)) > asked_at:
            still += 1
            continue
        status, takeover_time = statuses.get(item.target_id, (5, 0))
        state = RESULT_STATES.get(status, "failed")
        if state == "waiting":
            still += 1
            if takeover_time:
                item.takeover_at = dt.datetime.fromtimestamp(takeover_time, dt.UTC)
            continue
        if state == "done":
            item.state, item.reason = "done", ""
            at = dt.datetime.fromtimestamp(takeover_time, dt.UTC) if takeover_time else utcnow()
            item.takeover_at = at
            publish(session, "customer.transferred",
                    {"external_userid": item.target_id, "handover_userid": handover.handover_userid,
                     "takeover_userid": item.takeover_userid, "takeover_at": at.isoformat(),
                     "handover_id": handover.id},
                    corp_id=handover.corp_id, key=f"handover:{handover.id}:{item.id}:{item.attempts}")
        elif state == "refused":
            _fail(handover, item, "refused", "the customer refused the transfer")
        elif state == "limit":
            _fail(handover, item, "limit", "the take-over advisor has reached WeCom's customer limit")
        else:
            _fail(handover, item, "failed", "WeCom has no record of this transfer")
    refresh_status(session, handover=handover)
    return still


def is_taking_over(session: Session, *, corp_id: int, external_userid: str, takeover_userid: str) -> bool:
    """Whether Siyu asked WeCom to hand this customer to this advisor (the transfer is waiting, or
    completed in the last 7 days): WeCom's add_external_contact for that advisor is the handover
    completing, not a new add."""
    return session.scalar(select(HandoverItem.id).where(
        HandoverItem.corp_id == corp_id, HandoverItem.kind == "customer", HandoverItem.target_id == external_userid,
        HandoverItem.takeover_userid == takeover_userid, HandoverItem.state.in_(("waiting", "done")),
        HandoverItem.updated_at >= utcnow() - dt.timedelta(days=7)).limit(1)) is not None


def transfer_failed(session: Session, *, corp_id: int, external_userid: str, takeover_userid: str,
                    fail_reason: str) -> list[int]:
    """客户接替失败 (the transfer_fail callback): the waiting customer fails; the handovers concerned
    (to be run again for the retry) are returned."""
    items = session.scalars(select(HandoverItem).where(
        HandoverItem.corp_id == corp_id, HandoverItem.kind == "customer", HandoverItem.target_id == external_userid,
        HandoverItem.takeover_userid == takeover_userid, HandoverItem.state == "waiting"))
    touched = []
    for item in items:
        handover = session.get(Handover, item.handover_id)
        if fail_reason == "customer_refused":
            _fail(handover, item, "refused", "the customer refused the transfer")
        elif fail_reason == "customer_limit_exceed":
            _fail(handover, item, "limit", "the take-over advisor has reached WeCom's customer limit")
        else:
            _fail(handover, item, "failed", f"WeCom: {fail_reason or 'transfer failed'}"[:200])
        refresh_status(session, handover=handover)
        touched.append(handover.id)
    return touched


def calls_made(session: Session, *, handover: Handover) -> int:
    return session.scalar(select(func.coalesce(func.sum(HandoverItem.attempts), 0))
                          .where(HandoverItem.handover_id == handover.id)) or 0


def needs_run(session: Session, *, handover: Handover) -> bool:
    return bool(session.scalar(select(func.count()).select_from(HandoverItem).where(
        HandoverItem.handover_id == handover.id,
        (HandoverItem.state == "pending")
        | (HandoverItem.state.in_(FAILED_STATES) & HandoverItem.escalated.is_(False)
           & (HandoverItem.attempts < MAX_ATTEMPTS)))))


# --- console actions ------------------------------------------------------------------------------------


def _item(session: Session, handover: Handover, item_id: int) -> HandoverItem:
    item = session.get(HandoverItem, item_id)
    if item is None or item.handover_id != handover.id:
        raise NotFound("no such customer or group in this handover", field="item")
    return item


def retry_item(session: Session, *, corp_id: int, actor: Principal | str, handover_id: int, item_id: int,
               ip: str | None = None) -> HandoverItem:
    """Try a failed or escalated customer (or group) once more, to the next take-over advisor."""
    from siyu.jobs.service import enqueue

    handover = get_handover(session, corp_id=corp_id, handover_id=handover_id)
    item = _item(session, handover, item_id)
    if item.state not in FAILED_STATES and not (item.state == "skipped" and item.kind == "group"):
        raise InvalidInput("only a failed, refused or limited item can be retried", field="item")
    item.takeover_userid = _next_takeover(handover, item.takeover_userid)
    item.state, item.escalated, item.batch_key, item.reason = "pending", False, None, "retry requested"
    refresh_status(session, handover=handover)
    audit.record(session, corp_id=corp_id, actor=actor, action="compliance.handover_retried", target_type="handover",
                 target_id=handover.id, ip=ip, detail={"item_id": item.id, "kind": item.kind,
                                                       "takeover_userid": item.takeover_userid})
    enqueue(session, name="compliance.handover_run", payload={"handover_id": handover.id}, corp_id=corp_id,
            idempotency_key=f"compliance.handover_run:{handover.id}:retry:{item.id}:{item.attempts}")
    return item


def escalate_item(session: Session, *, corp_id: int, actor: Principal | str, handover_id: int, item_id: int,
                  ip: str | None = None) -> HandoverItem:
    """Stop retrying a customer or group and raise it for someone to handle."""
    handover = get_handover(session, corp_id=corp_id, handover_id=handover_id)
    item = _item(session, handover, item_id)
    if item.state not in FAILED_STATES or item.escalated:
        raise InvalidInput("only a failed, refused or limited item that is not escalated can be escalated",
                           field="item")
    item.escalated = True
    refresh_status(session, handover=handover)
    audit.record(session, corp_id=corp_id, actor=actor, action="compliance.handover_escalated",
                 target_type="handover", target_id=handover.id, ip=ip, detail={"item_id": item.id})
    return item



def _register() -> None:
    # Customers and acquisition ask "is this add a handover completing?" without importing this
    # higher layer (see siyu.customers.service.register_transfer_check).
    from siyu.customers.service import register_transfer_check

    register_transfer_check(is_taking_over)


_register()
