"""Keyword replies (关键词回复): a customer writes to an advisor in a 1-on-1 chat (read from the chat
archive, event `chat.customer_message`), a rule whose keyword matches answers them — text, a group QR
image, a link — from that advisor through WeCom's add_msg_template, or puts a prepared reply on the
advisor's task list to send with one click.

Matching: the keyword and the message are normalised as the wording dictionary's matcher does it
(`siyu.compliance.normalize`: full/half width, case, traditional to simplified, separators and
emoji removed), then compared whole (exact) or as a substring (contains). When several rules match,
the highest priority wins, then exact before contains, then the longer keyword, then the older rule.
A rule applies to every advisor or to the ones it names.

Each rule answers one customer at most once per its cooldown (default 24 h); the cooldown is checked
and recorded in the transaction that claims the send (`siyu.wecom.service.claim_effect`, effect key
`keyword:{corp}:{msgid}`), so one message is answered at most once however often it is delivered, and
two messages racing in from one customer get one answer. A message older than MAX_AGE (a backlog
after the feed was down) is not answered.

Compliance: the reply is content for compliance's gate (`siyu.acquisition.content`, kind
"keyword_reply"): saving it submits a new version for approval (a text the wording review blocks is
refused with its findings), and a send takes the approved version in force — never the latest edit;
a rule with none approved answers nothing and its hit is recorded as "held" with the reason. The
approved reply goes through compliance's outbound guard before each send (`guard`: the reply with
its risk disclosure when it talks about a product, held as "blocked" with the findings if the
dictionary changed, "opted_out" when the consent ledger refuses the customer — compliance's rule
per kind of message; a keyword reply answers the customer's own message and counts as service)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, func, select, update
from sqlalchemy.orm import Session

from siyu.acquisition import service, welcome
from siyu.acquisition.content import KEYWORD_RULE, from_gate
from siyu.acquisition.models import KeywordCooldown, KeywordHit, KeywordRule, KeywordTask
from siyu.compliance.normalize import normalize
from siyu.db import dialect_insert, utcnow
from siyu.errors import InvalidInput, NotFound
from siyu.tenancy import audit
from siyu.tenancy.models import Staff
from siyu.tenancy.principal import Principal

MATCH_MODES = ("exact", "contains")
ACTIONS = ("reply", "task")
KEYWORD_MAX = 60
NAME_MAX = 60
TEXT_MAX = 2000
MAX_RULES = 500
MAX_ADVISORS = 200
DEFAULT_COOLDOWN_MINUTES = 24 * 60
MAX_COOLDOWN_MINUTES = 90 * 24 * 60
MAX_PRIORITY = 1000
MAX_AGE = dt.timedelta(hours=2)
ENDPOINT = "add_msg_template"
OUTCOMES = ("sending", "sent", "failed", "unknown", "blocked", "held", "task", "cooldown", "opted_out")


def effect_key(corp_id: int, msgid: str) -> str:
    return f"keyword:{corp_id}:{msgid}"


def task_effect_key(corp_id: int, task_id: int) -> str:
    return f"keyword_task:{corp_id}:{task_id}"


# --- rules ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RuleInput:
    """A rule as the form or an import gives it (strings are checked and converted by `save_rule`)."""

    name: str
    keyword: str
    match_mode: str = "contains"
    action: str = "reply"
    reply_text: str = ""
    image_url: str = ""
    link_url: str = ""
    link_title: str = ""
    link_desc: str = ""
    advisors: tuple[str, ...] = ()
    cooldown_hours: str | int = 24
    priority: str | int = 0
    enabled: bool = False


def _whole(value: str | int, *, field: str, low: int, high: int, message: str) -> int:
    try:
        n = value if isinstance(value, int) and not isinstance(value, bool) else int(str(value).strip())
    except ValueError:
        raise InvalidInput(message, field=field, params={"low": low, "high": high}) from None
    if not low <= n <= high:
        raise InvalidInput(message, field=field, params={"low": low, "high": high})
    return n


def review(session: Session, *, corp_id: int, text: str):
    return welcome.review(session, corp_id=corp_id, text=text)


def _findings(verdict, *, blocking: bool) -> str:
    return welcome._findings(verdict, blocking=blocking)


def list_rules(session: Session, *, corp_id: int, enabled_only: bool = False) -> list[KeywordRule]:
    q = select(KeywordRule).where(KeywordRule.corp_id == corp_id)
    if enabled_only:
        q = q.where(KeywordRule.enabled.is_(True))
    return list(session.scalars(q.order_by(KeywordRule.priority.desc(), KeywordRule.id)))


def get_rule(session: Session, *, corp_id: int, rule_id: int) -> KeywordRule:
    rule = session.get(KeywordRule, rule_id) if isinstance(rule_id, int) and 0 < rule_id < 2**63 else None
    if rule is None or rule.corp_id != corp_id:
        raise NotFound("no such keyword rule", field="rule_id")
    return rule


def save_rule(session: Session, *, corp_id: int, actor: Principal | str, data: RuleInput,
              rule_id: int | None = None) -> KeywordRule:
    """Create (rule_id None) or change a rule; refuses bad fields and wording compliance blocks."""
    rule = get_rule(session, corp_id=corp_id, rule_id=rule_id) if rule_id is not None else None
    name = service.text_field(data.name, field="name", max_length=NAME_MAX, required=True)
    keyword = service.text_field(data.keyword, field="keyword", max_length=KEYWORD_MAX, required=True)
    key = normalize(keyword)
    if not key:
        raise InvalidInput("the keyword needs a letter, digit or character, not only punctuation or emoji",
                           field="keyword")
    if data.match_mode not in MATCH_MODES:
        raise InvalidInput("choose exact or contains", field="match_mode")
    if data.action not in ACTIONS:
        raise InvalidInput("choose a reply or a task for the advisor", field="action")
    text = service.text_field(data.reply_text, field="reply_text", max_length=TEXT_MAX)
    attachments = welcome.build_attachments(image_url=data.image_url, link_url=data.link_url,
                                            link_title=data.link_title, link_desc=data.link_desc)
    if not text and not attachments:
        raise InvalidInput("write the reply, or give a group QR image or a link", field="reply_text")
    advisors = sorted({a.strip() for a in data.advisors if isinstance(a, str) and a.strip()})
    if len(advisors) > MAX_ADVISORS:
        raise InvalidInput("at most %(n)s advisors", field="advisors", params={"n": MAX_ADVISORS})
    if advisors:
        known = set(session.scalars(select(Staff.wecom_userid).where(
            Staff.corp_id == corp_id, Staff.wecom_userid.in_(advisors))))
        if set(advisors) - known:
            raise InvalidInput("choose advisors of this corp", field="advisors")
    cooldown = _whole(data.cooldown_hours, field="cooldown_hours", low=0, high=MAX_COOLDOWN_MINUTES // 60,
                      message="the cooldown is a whole number of hours from %(low)s to %(high)s") * 60
    priority = _whole(data.priority, field="priority", low=0, high=MAX_PRIORITY,
                      message="the priority is a whole number from %(low)s to %(high)s")
    welcome._refuse_blocked(session, corp_id=corp_id, text=welcome.reviewed_text(text, attachments),
                            field="reply_text")
    clash = session.scalar(select(KeywordRule.id).where(KeywordRule.corp_id == corp_id, KeywordRule.name == name))
    if clash is not None and (rule is None or clash != rule.id):
        raise InvalidInput("another rule has this name", field="name")
    if rule is None:
        if session.scalar(select(func.count()).where(KeywordRule.corp_id == corp_id)) >= MAX_RULES:
            raise InvalidInput("at most %(n)s rules", field="name", params={"n": MAX_RULES})
        rule = KeywordRule(corp_id=corp_id)
        session.add(rule)
    rule.name, rule.keyword, rule.keyword_key, rule.match_mode = name, keyword, key, data.match_mode
    rule.action, rule.reply_text, rule.attachments, rule.advisors = data.action, text, attachments, advisors
    rule.cooldown_minutes, rule.priority, rule.enabled = cooldown, priority, bool(data.enabled)
    rule.updated_at = utcnow()
    session.flush()
    welcome.submit(session, corp_id=corp_id, actor=actor, kind="keyword_reply", owner=(KEYWORD_RULE, rule.id),
                   text=text, attachments=attachments, field="reply_text", title=f"关键词回复 {name}")
    audit.record(session, corp_id=corp_id, actor=actor,
                 action="acquisition.keyword_rule_created" if rule_id is None else "acquisition.keyword_rule_changed",
                 target_type="keyword_rule", target_id=rule.id,
                 detail={"match_mode": rule.match_mode, "action": rule.action, "enabled": rule.enabled,
                         "priority": priority, "cooldown_minutes": cooldown, "advisors": len(advisors),
                         "chars": len(text)})
    return rule


def rule_form(rule: KeywordRule) -> dict[str, Any]:
    """A saved rule as the editor's fields."""
    image = next((a["image"].get("pic_url", "") for a in rule.attachments or [] if a.get("msgtype") == "image"), "")
    link = next((a["link"] for a in rule.attachments or [] if a.get("msgtype") == "link"), {})
    return {"name": rule.name, "keyword": rule.keyword, "match_mode": rule.match_mode, "action": rule.action,
            "reply_text": rule.reply_text, "image_url": image, "link_url": link.get("url", ""),
            "link_title": link.get("title", ""), "link_desc": link.get("desc", ""), "advisors": list(rule.advisors),
            "cooldown_hours": rule.cooldown_minutes // 60, "priority": rule.priority, "enabled": rule.enabled}


# --- matching ---------------------------------------------------------------------------------------

def matches(rule: KeywordRule, normalised_text: str) -> bool:
    if not rule.keyword_key:
        return False
    if rule.match_mode == "exact":
        return normalised_text == rule.keyword_key
    return rule.keyword_key in normalised_text


def _rank(rule: KeywordRule) -> tuple:
    return (-rule.priority, rule.match_mode != "exact", -len(rule.keyword_key), rule.id)


def match_rule(rules: list[KeywordRule], *, text: str, advisor_userid: str) -> KeywordRule | None:
    """The rule that answers this message from a customer to this advisor (see the module), or None."""
    normalised = normalize(text or "")
    if not normalised:
        return None
    found = [r for r in rules if r.enabled and (not r.advisors or advisor_userid in r.advisors)
             and matches(r, normalised)]
    return min(found, key=_rank) if found else None


# --- the send-time guard ------------------------------------------------------------------------------

def approved_reply(session: Session, *, corp_id: int, rule_id: int | None):
    """The rule's reply as approved and in force (compliance's `Sendable`; `held_reason` when none)."""
    from siyu.compliance.service import OwnerRef, Sendable, content_for_send

    if rule_id is None:
        return Sendable(owner=OwnerRef(KEYWORD_RULE, 0), kind="keyword_reply", held_reason="the rule was deleted")
    return content_for_send(session, corp_id=corp_id, kind="keyword_reply", owner=(KEYWORD_RULE, rule_id))


def guard(session: Session, *, corp_id: int, text: str, attachments, customer: str):
    """THE compliance check point of keyword replies, automatic or a task's click: compliance's
    outbound guard (`siyu.compliance.service.prepare_outbound`, kind "keyword_reply") — the text to
    send with its risk disclosures, the review of what the customer sees, whether the consent
    ledger refuses the customer (compliance's rule per kind, docs/compliance.md)."""
    from siyu.compliance.service import prepare_outbound

    return prepare_outbound(session, corp_id=corp_id, kind="keyword_reply", text=text, recipients=[customer],
                            shown=welcome.attachment_titles(list(attachments or [])))


# --- one customer message -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Decision:
    """What to do about one customer message: `send` (claimed, see `claim`), or nothing more."""

    outcome: str  # none (no rule matched, or too old), or a KeywordHit outcome
    rule_id: int | None = None
    text: str = ""
    attachments: tuple = ()
    claim: Any = None  # siyu.wecom.service.Claim when outcome == "sending"


def _record_hit(session: Session, *, corp_id: int, rule: KeywordRule, msgid: str, advisor: str, customer: str
                ) -> KeywordHit | None:
    """The hit row of a message, inserted now (None if an earlier run of this message inserted it)."""
    new_id = session.execute(dialect_insert(session)(KeywordHit.__table__).values(
        corp_id=corp_id, rule_id=rule.id, msgid=msgid, advisor_userid=advisor, external_userid=customer,
        outcome="sending", at=utcnow(),
    ).on_conflict_do_nothing(index_elements=["corp_id", "msgid"]).returning(KeywordHit.__table__.c.id)
    ).scalar_one_or_none()
    return session.get(KeywordHit, new_id) if new_id is not None else None


def _take_cooldown(session: Session, *, corp_id: int, rule: KeywordRule, customer: str, now: dt.datetime) -> bool:
    """True (and the cooldown starts now) when the rule may answer this customer; atomic per row."""
    table = KeywordCooldown.__table__
    inserted = session.execute(dialect_insert(session)(table).values(
        rule_id=rule.id, external_userid=customer, corp_id=corp_id, last_at=now,
    ).on_conflict_do_nothing(index_elements=["rule_id", "external_userid"]).returning(table.c.rule_id)
    ).scalar_one_or_none()
    if inserted is not None:
        return True
    if rule.cooldown_minutes <= 0:
        session.execute(update(table).where(table.c.rule_id == rule.id, table.c.external_userid == customer)
                        .values(last_at=now))
        return True
    since = now - dt.timedelta(minutes=rule.cooldown_minutes)
    return bool(session.execute(update(table).where(
        table.c.rule_id == rule.id, table.c.external_userid == customer, table.c.last_at <= since,
    ).values(last_at=now)).rowcount)


def decide(session: Session, *, corp_id: int, msgid: str, advisor_userid: str, customer_userid: str,
           sent_at: dt.datetime | None, now: dt.datetime | None = None) -> Decision:
    """Match one customer message and record what follows, in the caller's transaction, which must
    commit before any send (it holds the claim): the hit, the cooldown, the task or the claim."""
    from siyu.compliance.archive import customer_message_text
    from siyu.wecom import service as wecom

    now = now or utcnow()
    done = session.scalar(select(KeywordHit).where(KeywordHit.corp_id == corp_id, KeywordHit.msgid == msgid))
    if done is not None:
        if done.outcome != "sending":
            return Decision(outcome=done.outcome, rule_id=done.rule_id)
        # An earlier run claimed the send and stopped: the claim says what happened (never sent twice).
        content = approved_reply(session, corp_id=corp_id, rule_id=done.rule_id)
        if content.held:
            done.outcome = "held"
            session.flush()
            return Decision(outcome=done.outcome, rule_id=done.rule_id)
        attachments = from_gate(content.attachments)
        guarded = guard(session, corp_id=corp_id, text=content.text, attachments=attachments,
                        customer=customer_userid)
        if guarded.refused or content.held_by(guarded):  # nothing is sent again, unreviewed or refused
            done.outcome = "opted_out" if guarded.refused else "blocked"
            session.flush()
            return Decision(outcome=done.outcome, rule_id=done.rule_id)
        claim = wecom.claim_effect(session, corp_id=corp_id, effect_key=effect_key(corp_id, msgid), endpoint=ENDPOINT,
                                   event_time=sent_at)
        return Decision(outcome="sending", rule_id=done.rule_id, claim=claim, text=guarded.text,
                        attachments=tuple(attachments))
    if sent_at is not None and now - sent_at > MAX_AGE:
        return Decision(outcome="none")
    text = customer_message_text(session, corp_id=corp_id, msgid=msgid)
    if not text:
        return Decision(outcome="none")
    rule = match_rule(list_rules(session, corp_id=corp_id, enabled_only=True), text=text,
                      advisor_userid=advisor_userid)
    if rule is None:
        return Decision(outcome="none")
    hit = _record_hit(session, corp_id=corp_id, rule=rule, msgid=msgid, advisor=advisor_userid,
                      customer=customer_userid)
    if hit is None:  # a concurrent run of the same message got there first
        return Decision(outcome="duplicate", rule_id=rule.id)

    def finish(outcome: str, **kw: Any) -> Decision:
        hit.outcome = outcome
        session.flush()
        return Decision(outcome=outcome, rule_id=rule.id, **kw)

    content = approved_reply(session, corp_id=corp_id, rule_id=rule.id)
    if content.held:
        # Compliance's gate: no approved version of this reply (a pending edit never goes out).
        if rule.action == "reply":
            wecom.record_outcome(session, corp_id=corp_id, effect_key=effect_key(corp_id, msgid), endpoint=ENDPOINT,
                                 state="held", event_time=sent_at, detail=f"approval: {content.held_reason}")
        return finish("held")
    attachments = from_gate(content.attachments)
    guarded = guard(session, corp_id=corp_id, text=content.text, attachments=attachments, customer=customer_userid)
    if guarded.refused:
        return finish("opted_out")
    if content.held_by(guarded):
        # The dictionary changed since the rule was saved: hold the reply back, visibly.
        if rule.action == "reply":
            wecom.record_outcome(session, corp_id=corp_id, effect_key=effect_key(corp_id, msgid), endpoint=ENDPOINT,
                                 state="blocked", event_time=sent_at, detail=guarded.summary())
        return finish("blocked")
    if not _take_cooldown(session, corp_id=corp_id, rule=rule, customer=customer_userid, now=now):
        return finish("cooldown")
    if rule.action == "task":
        session.execute(dialect_insert(session)(KeywordTask.__table__).values(
            corp_id=corp_id, rule_id=rule.id, msgid=msgid, advisor_userid=advisor_userid,
            external_userid=customer_userid, reply_text=content.text, attachments=attachments,
            state="open", detail="", created_at=now,
        ).on_conflict_do_nothing(index_elements=["corp_id", "msgid"]))
        return finish("task")
    claim = wecom.claim_effect(session, corp_id=corp_id, effect_key=effect_key(corp_id, msgid), endpoint=ENDPOINT,
                               event_time=sent_at)
    hit.outcome = "sending"
    session.flush()
    return Decision(outcome="sending", rule_id=rule.id, text=guarded.text, attachments=tuple(attachments),
                    claim=claim)


def record_outcome(session: Session, *, corp_id: int, msgid: str, state: str) -> None:
    """The send's result on the message's hit (sent, failed, unknown)."""
    session.execute(update(KeywordHit).where(KeywordHit.corp_id == corp_id, KeywordHit.msgid == msgid)
                    .values(outcome=state))


# --- counts -----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RuleCounts:
    matched: int = 0
    replied: int = 0
    tasks: int = 0
    cooldown: int = 0
    blocked: int = 0
    failed: int = 0


def rule_counts(session: Session, *, corp_id: int) -> dict[int, RuleCounts]:
    """Per rule: messages matched, replies sent, tasks made, cooldown skips, held by review, failed."""
    def n(*outcomes: str):
        return func.coalesce(func.sum(case((KeywordHit.outcome.in_(outcomes), 1), else_=0)), 0)

    rows = session.execute(select(KeywordHit.rule_id, func.count(), n("sent"), n("task"), n("cooldown"),
                                  n("blocked", "held", "opted_out"), n("failed", "unknown"))
                           .where(KeywordHit.corp_id == corp_id, KeywordHit.rule_id.is_not(None))
                           .group_by(KeywordHit.rule_id)).all()
    return {r[0]: RuleCounts(*(int(x) for x in r[1:])) for r in rows}


# --- the advisor's tasks ------------------------------------------------------------------------------------

def list_tasks(session: Session, *, corp_id: int, advisor_userid: str | None = None, open_only: bool = True,
               limit: int = 200) -> list[KeywordTask]:
    q = select(KeywordTask).where(KeywordTask.corp_id == corp_id)
    if advisor_userid is not None:
        q = q.where(KeywordTask.advisor_userid == advisor_userid)
    if open_only:
        q = q.where(KeywordTask.state.in_(("open", "sending")))
    return list(session.scalars(q.order_by(KeywordTask.id.desc()).limit(limit)))


def get_task(session: Session, *, corp_id: int, task_id: int, advisor_userid: str | None = None) -> KeywordTask:
    """A task of the corp; an advisor (advisor_userid given) only their own."""
    task = session.get(KeywordTask, task_id) if isinstance(task_id, int) and 0 < task_id < 2**63 else None
    if task is None or task.corp_id != corp_id or advisor_userid not in (None, task.advisor_userid):
        raise NotFound("no such task", field="task_id")
    return task


def request_task_send(session: Session, *, corp_id: int, actor: Principal, task_id: int,
                      advisor_userid: str | None) -> KeywordTask:
    """The one click: the task goes to the queue (`acquisition.keyword_task_send`), which sends it once."""
    from siyu.jobs.service import enqueue

    task = get_task(session, corp_id=corp_id, task_id=task_id, advisor_userid=advisor_userid)
    if task.state != "open":
        return task
    task.state = "sending"
    session.flush()
    enqueue(session, name="acquisition.keyword_task_send", payload={"task_id": task.id}, corp_id=corp_id,
            queue="wecom", idempotency_key=f"acquisition.keyword_task_send:{task.id}")
    audit.record(session, corp_id=corp_id, actor=actor, action="acquisition.keyword_task_sent",
                 target_type="keyword_task", target_id=task.id)
    return task


def dismiss_task(session: Session, *, corp_id: int, actor: Principal, task_id: int,
                 advisor_userid: str | None) -> KeywordTask:
    task = get_task(session, corp_id=corp_id, task_id=task_id, advisor_userid=advisor_userid)
    if task.state == "open":
        task.state, task.done_at = "dismissed", utcnow()
        session.flush()
        audit.record(session, corp_id=corp_id, actor=actor, action="acquisition.keyword_task_dismissed",
                     target_type="keyword_task", target_id=task.id)
    return task


def claim_task_send(session: Session, *, corp_id: int, task_id: int):
    """In a transaction that commits before the call: review again and claim the task's send.
    Returns (task values, claim) or None when there is nothing to send."""
    from siyu.wecom import service as wecom

    task = get_task(session, corp_id=corp_id, task_id=task_id)
    if task.state != "sending":
        return None
    key = task_effect_key(corp_id, task.id)
    # The reply as approved NOW (the rule may have a newer approved version since the task was made;
    # a pending edit never goes out), through the guard again.
    content = approved_reply(session, corp_id=corp_id, rule_id=task.rule_id)
    if content.held:
        wecom.record_outcome(session, corp_id=corp_id, effect_key=key, endpoint=ENDPOINT, state="held",
                             detail=f"approval: {content.held_reason}")
        task.state, task.detail, task.done_at = "blocked", f"approval: {content.held_reason}", utcnow()
        return None
    attachments = from_gate(content.attachments)
    guarded = guard(session, corp_id=corp_id, text=content.text, attachments=attachments,
                    customer=task.external_userid)
    if guarded.refused:
        task.state, task.detail, task.done_at = "blocked", "the customer opted out of marketing", utcnow()
        return None
    if content.held_by(guarded):
        wecom.record_outcome(session, corp_id=corp_id, effect_key=key, endpoint=ENDPOINT, state="blocked",
                             detail=guarded.summary())
        task.state, task.detail, task.done_at = "blocked", guarded.summary()[:500], utcnow()
        return None
    claim = wecom.claim_effect(session, corp_id=corp_id, effect_key=key, endpoint=ENDPOINT)
    values = {"advisor_userid": task.advisor_userid, "external_userid": task.external_userid,
              "text": guarded.text, "attachments": attachments}
    return values, claim


def finish_task(session: Session, *, corp_id: int, task_id: int, state: str, detail: str = "") -> None:
    task = get_task(session, corp_id=corp_id, task_id=task_id)
    task.state, task.detail, task.done_at = state, detail[:500], utcnow()
    session.flush()


def advisor_choices(session: Session, *, corp_id: int) -> list[Staff]:
    return service.advisor_staff(session, corp_id=corp_id)
