"""Welcome flows (欢迎语) per channel code: texts with variables spoken as the code's persona,
attachments, the keyword that leads to a group, A/B variants with their results; and the plan of
what one add gets (the code's flow, else the corp's default welcome of `siyu.wecom`).

Every text is content for compliance's gate (`siyu.acquisition.content`): saving a variant's text or a
flow's group invitation submits a new version for approval (a text the wording review blocks is
refused); a send takes the approved version in force, never the latest edit, and a flow whose variants
have none approved holds its welcome (recorded as held with the reason). Before each send the
approved text goes through compliance's outbound guard (`prepare_send`: the risk disclosure appended
to product content; a block, or a "review" finding the checker did not see, holds it back). The flow's
approved group invitation ("回复 1 加入…") ends the welcome. A customer who answers the flow's group
keyword gets the group join way (群活码) the channel code hands out — its QR code, kept by the
communities domain — or, when the code has none, the group invitation again (`decide_invitation`)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.acquisition import service
from siyu.acquisition.content import WELCOME_FLOW, WELCOME_VARIANT, from_gate, to_gate
from siyu.acquisition.models import (
    ChannelCode,
    Persona,
    WelcomeFlow,
    WelcomeFollowUp,
    WelcomeSend,
    WelcomeVariant,
)
from siyu.db import dialect_insert, utcnow
from siyu.errors import InvalidInput, NotFound
from siyu.tenancy import audit
from siyu.tenancy.models import Staff
from siyu.tenancy.principal import Principal

TEXT_MAX_CHARS = 4000
MAX_VARIANTS = 5
MAX_WEIGHT = 100
VAR_CUSTOMER, VAR_NAME, VAR_TITLE = "{客户称呼}", "{顾问名}", "{顾问头衔}"
VARIABLES = (VAR_CUSTOMER, VAR_NAME, VAR_TITLE)
CUSTOMER_FALLBACK = "您"  # when WeCom does not tell us the customer's name
APPID_RE = re.compile(r"^wx[0-9a-f]{16}$")
PAGE_RE = re.compile(r"^[A-Za-z0-9_./?=&%-]{1,200}$")
ATTACHMENT_KINDS = ("image", "link", "miniprogram")


def _findings(verdict, *, blocking: bool) -> str:
    return "、".join(dict.fromkeys(f.match for f in verdict.findings if not blocking or f.severity == "block"))


def review(session: Session, *, corp_id: int, text: str):
    from siyu.compliance.service import review_outbound

    return review_outbound(session, corp_id=corp_id, text=text)


# --- flows and variants -------------------------------------------------------------------------------

def get_flow(session: Session, *, corp_id: int, code_id: int) -> WelcomeFlow | None:
    return session.scalar(select(WelcomeFlow).where(WelcomeFlow.corp_id == corp_id, WelcomeFlow.code_id == code_id))


def _flow_for_edit(session: Session, *, corp_id: int, code_id: int) -> WelcomeFlow:
    service.get_channel_code(session, corp_id=corp_id, code_id=code_id)
    flow = get_flow(session, corp_id=corp_id, code_id=code_id)
    if flow is None:
        flow = WelcomeFlow(corp_id=corp_id, code_id=code_id, enabled=False, group_keyword="", group_invitation="")
        session.add(flow)
        session.flush()
    return flow


def code_id_of_flow(session: Session, *, corp_id: int, flow_id: int) -> int:
    code_id = session.scalar(select(WelcomeFlow.code_id).where(WelcomeFlow.corp_id == corp_id,
                                                               WelcomeFlow.id == flow_id))
    if code_id is None:
        raise NotFound("no such channel code", field="code_id")
    return code_id


def list_variants(session: Session, *, corp_id: int, flow_id: int, active_only: bool = False) -> list[WelcomeVariant]:
    query = select(WelcomeVariant).where(WelcomeVariant.corp_id == corp_id, WelcomeVariant.flow_id == flow_id)
    if active_only:
        query = query.where(WelcomeVariant.is_active.is_(True))
    return list(session.scalars(query.order_by(WelcomeVariant.id)))


def _check_sendable(session: Session, *, corp_id: int, variants: list[WelcomeVariant]) -> None:
    """A flow may be on once it has a variant (what goes out is each variant's approved version)."""
    if not variants:
        raise InvalidInput("add a variant before turning the welcome on", field="enabled")


def _refuse_blocked(session: Session, *, corp_id: int, text: str, field: str) -> None:
    """Refuse, before anything is written, a text the wording review blocks: each finding's rule,
    category, severity and span (compliance's `ContentRefused`)."""
    from siyu.compliance.service import ContentRefused

    verdict = review(session, corp_id=corp_id, text=text)
    if verdict.verdict == "block":
        raise ContentRefused([f.as_dict() for f in verdict.findings], field=field)


def submit(session: Session, *, corp_id: int, actor: Principal | str, kind: str, owner: tuple[str, int], text: str,
           attachments: list[dict[str, Any]] | None = None, field: str = "text", title: str = ""):
    from siyu.compliance.service import submit_content

    return submit_content(session, corp_id=corp_id, actor=actor, kind=kind, owner=owner, body=text,
                          attachments=to_gate(attachments), field=field, title=title or None)


def save_flow(session: Session, *, corp_id: int, actor: Principal | str, code_id: int, enabled: bool,
              group_keyword: str = "", group_invitation: str = "") -> WelcomeFlow:
    flow = _flow_for_edit(session, corp_id=corp_id, code_id=code_id)
    group_keyword = service.text_field(group_keyword, field="group_keyword", max_length=20)
    group_invitation = service.text_field(group_invitation, field="group_invitation", max_length=200)
    if group_invitation:
        _refuse_blocked(session, corp_id=corp_id, text=group_invitation, field="group_invitation")
    if enabled:
        _check_sendable(session, corp_id=corp_id,
                        variants=list_variants(session, corp_id=corp_id, flow_id=flow.id, active_only=True))
    changed_invitation = group_invitation != flow.group_invitation
    flow.enabled, flow.group_keyword, flow.group_invitation = enabled, group_keyword, group_invitation
    flow.updated_at = utcnow()
    session.flush()
    if group_invitation and changed_invitation:
        submit(session, corp_id=corp_id, actor=actor, kind="group_invitation", owner=(WELCOME_FLOW, flow.id),
               text=group_invitation, field="group_invitation", title="入群邀请")
    audit.record(session, corp_id=corp_id, actor=actor, action="acquisition.welcome_flow_changed",
                 target_type="channel_code", target_id=code_id, detail={"enabled": enabled})
    return flow


def build_attachments(*, image_url: str = "", link_url: str = "", link_title: str = "", link_desc: str = "",
                      miniprogram_appid: str = "", miniprogram_page: str = "",
                      miniprogram_title: str = "") -> list[dict[str, Any]]:
    """Attachments as WeCom's send_welcome_msg takes them, from the editor's fields."""
    out: list[dict[str, Any]] = []
    image_url = service.url_field(image_url, field="image_url")
    if image_url:
        out.append({"msgtype": "image", "image": {"pic_url": image_url}})
    link_url = service.url_field(link_url, field="link_url")
    link_title = service.text_field(link_title, field="link_title", max_length=64)
    link_desc = service.text_field(link_desc, field="link_desc", max_length=128)
    if link_url or link_title:
        if not link_url:
            raise InvalidInput("a link needs its web address", field="link_url")
        if not link_title:
            raise InvalidInput("a link needs a title", field="link_title")
        link = {"title": link_title, "url": link_url}
        if link_desc:
            link["desc"] = link_desc
        out.append({"msgtype": "link", "link": link})
    appid = (miniprogram_appid or "").strip()
    page = (miniprogram_page or "").strip()
    mp_title = service.text_field(miniprogram_title, field="miniprogram_title", max_length=64)
    if appid or page or mp_title:
        if not APPID_RE.fullmatch(appid):
            raise InvalidInput("a mini-program appid looks like wx followed by 16 hex digits",
                               field="miniprogram_appid")
        if not PAGE_RE.fullmatch(page):
            raise InvalidInput("the mini-program page path, such as pages/index/index", field="miniprogram_page")
        if not mp_title:
            raise InvalidInput("a mini-program card needs a title", field="miniprogram_title")
        out.append({"msgtype": "miniprogram", "miniprogram": {"title": mp_title, "appid": appid, "page": page}})
    return out


def attachment_titles(attachments: list[dict[str, Any]] | tuple | None) -> list[str]:
    """Every title and description of the attachments: the customer sees them with the text."""
    titles = []
    for a in attachments or []:
        body = a.get(a.get("msgtype", ""), {}) if isinstance(a, dict) else {}
        titles += [str(body.get(k, "")) for k in ("title", "desc") if body.get(k)]
    return titles


def reviewed_text(text: str, attachments: list[dict[str, Any]]) -> str:
    """What compliance reads: the text and every title the customer will see."""
    return "\n".join([text, *attachment_titles(attachments)])


def add_variant(session: Session, *, corp_id: int, actor: Principal | str, code_id: int, text: str,
                weight: int | str = 1, attachments: list[dict[str, Any]] | None = None) -> WelcomeVariant:
    flow = _flow_for_edit(session, corp_id=corp_id, code_id=code_id)
    text = (text or "").strip()
    if len(text) > TEXT_MAX_CHARS:
        raise InvalidInput("the welcome text is at most %(n)s characters", field="text", params={"n": TEXT_MAX_CHARS})
    attachments = attachments or []
    if not text and not attachments:
        raise InvalidInput("write the welcome text", field="text")
    try:
        weight = int(str(weight).strip())
    except ValueError:
        raise InvalidInput("a weight is a whole number from 1 to %(n)s", field="weight",
                           params={"n": MAX_WEIGHT}) from None
    if not 1 <= weight <= MAX_WEIGHT:
        raise InvalidInput("a weight is a whole number from 1 to %(n)s", field="weight", params={"n": MAX_WEIGHT})
    existing = list_variants(session, corp_id=corp_id, flow_id=flow.id)
    if sum(v.is_active for v in existing) >= MAX_VARIANTS:
        raise InvalidInput("at most %(n)s variants", field="text", params={"n": MAX_VARIANTS})
    _refuse_blocked(session, corp_id=corp_id, text=reviewed_text(text, attachments), field="text")
    label = chr(ord("A") + len(existing)) if len(existing) < 26 else str(len(existing) + 1)
    variant = WelcomeVariant(corp_id=corp_id, flow_id=flow.id, label=label, weight=weight, text=text,
                             attachments=attachments, is_active=True)
    session.add(variant)
    session.flush()
    submit(session, corp_id=corp_id, actor=actor, kind="welcome", owner=(WELCOME_VARIANT, variant.id), text=text,
           attachments=attachments, title=f"欢迎语 {label}")
    audit.record(session, corp_id=corp_id, actor=actor, action="acquisition.welcome_variant_added",
                 target_type="welcome_variant", target_id=variant.id,
                 detail={"code_id": code_id, "label": label, "weight": weight, "chars": len(text)})
    return variant


def edit_variant(session: Session, *, corp_id: int, actor: Principal | str, variant_id: int, text: str,
                 attachments: list[dict[str, Any]] | None = None) -> WelcomeVariant:
    """Change a variant's text (and attachments): a new version for approval. What goes out stays the
    version approved before until a compliance officer approves this one."""
    variant = get_variant(session, corp_id=corp_id, variant_id=variant_id)
    text = (text or "").strip()
    if len(text) > TEXT_MAX_CHARS:
        raise InvalidInput("the welcome text is at most %(n)s characters", field="text", params={"n": TEXT_MAX_CHARS})
    attachments = attachments or []
    if not text and not attachments:
        raise InvalidInput("write the welcome text", field="text")
    _refuse_blocked(session, corp_id=corp_id, text=reviewed_text(text, attachments), field="text")
    variant.text, variant.attachments = text, attachments
    session.flush()
    submit(session, corp_id=corp_id, actor=actor, kind="welcome", owner=(WELCOME_VARIANT, variant.id), text=text,
           attachments=attachments, title=f"欢迎语 {variant.label}")
    audit.record(session, corp_id=corp_id, actor=actor, action="acquisition.welcome_variant_edited",
                 target_type="welcome_variant", target_id=variant.id, detail={"chars": len(text)})
    return variant


def get_variant(session: Session, *, corp_id: int, variant_id: int) -> WelcomeVariant:
    valid = isinstance(variant_id, int) and 0 < variant_id < 2**63
    variant = session.get(WelcomeVariant, variant_id) if valid else None
    if variant is None or variant.corp_id != corp_id:
        raise NotFound("no such welcome variant", field="variant_id")
    return variant


def set_variant_active(session: Session, *, corp_id: int, actor: Principal | str, variant_id: int,
                       active: bool) -> WelcomeVariant:
    variant = get_variant(session, corp_id=corp_id, variant_id=variant_id)
    flow = session.get(WelcomeFlow, variant.flow_id)
    if active and not variant.is_active:
        others = list_variants(session, corp_id=corp_id, flow_id=flow.id, active_only=True)
        if len(others) >= MAX_VARIANTS:
            raise InvalidInput("at most %(n)s variants", field="variant_id", params={"n": MAX_VARIANTS})
        if flow.enabled:
            _check_sendable(session, corp_id=corp_id, variants=[variant])
    if not active and flow.enabled and [v.id for v in list_variants(
            session, corp_id=corp_id, flow_id=flow.id, active_only=True)] == [variant.id]:
        raise InvalidInput("turn the welcome off before pausing its last variant", field="variant_id")
    variant.is_active = active
    session.flush()
    audit.record(session, corp_id=corp_id, actor=actor, action="acquisition.welcome_variant_changed",
                 target_type="welcome_variant", target_id=variant.id, detail={"active": active})
    return variant


def variant_approvals(session: Session, *, corp_id: int, flow_id: int) -> dict[int, Any]:
    """variant id -> where its content stands with compliance (`ContentState`: in force, pending)."""
    from siyu.compliance.service import content_states

    variants = list_variants(session, corp_id=corp_id, flow_id=flow_id)
    states = content_states(session, corp_id=corp_id, kind="welcome",
                            owners=[(WELCOME_VARIANT, v.id) for v in variants])
    return {ref.id: state for ref, state in states.items()}


@dataclass(frozen=True)
class VariantResult:
    variant: WelcomeVariant
    sent: int
    not_sent: int


def variant_results(session: Session, *, corp_id: int, flow_id: int) -> list[VariantResult]:
    variants = list_variants(session, corp_id=corp_id, flow_id=flow_id)
    rows = session.execute(select(WelcomeSend.variant_id, WelcomeSend.state, func.count())
                           .where(WelcomeSend.corp_id == corp_id,
                                  WelcomeSend.variant_id.in_([v.id for v in variants] or [0]))
                           .group_by(WelcomeSend.variant_id, WelcomeSend.state)).all()
    counts: dict[int, dict[str, int]] = {}
    for variant_id, state, n in rows:
        counts.setdefault(variant_id, {})[state] = n
    return [VariantResult(variant=v, sent=counts.get(v.id, {}).get("sent", 0),
                          not_sent=sum(n for s, n in counts.get(v.id, {}).items() if s != "sent"))
            for v in variants]


# --- what one add gets ----------------------------------------------------------------------------------

def choose_variant(variants: list[WelcomeVariant], *, external_userid: str) -> WelcomeVariant | None:
    """By weight, the same variant for the same customer every time (a retry sends the same text)."""
    if not variants:
        return None
    total = sum(v.weight for v in variants)
    point = int.from_bytes(hashlib.sha256(f"{variants[0].flow_id}:{external_userid}".encode()).digest()[:8]) % total
    for v in variants:
        if point < v.weight:
            return v
        point -= v.weight
    return variants[-1]


def render(text: str, *, customer: str, advisor_name: str, advisor_title: str) -> str:
    return (text.replace(VAR_CUSTOMER, customer or CUSTOMER_FALLBACK).replace(VAR_NAME, advisor_name)
            .replace(VAR_TITLE, advisor_title))


@dataclass(frozen=True)
class WelcomePlan:
    """What to send for one add; `text` has the customer's name filled in when it was known.
    `template` is the same text with {客户称呼} left in: what the send-time guard reviews (a
    customer's WeChat name is theirs, not the firm's wording), filled in after (`prepare_send`)."""

    text: str
    attachments: list[dict[str, Any]] = field(default_factory=list)
    code_id: int | None = None
    variant_id: int | None = None
    needs_customer_name: bool = False
    template: str = ""
    customer: str = ""
    content: Any = None  # compliance's Sendable: the approved version the text comes from
    held_reason: str | None = None  # nothing approved to send: the add is recorded as held

    def stops(self, out) -> bool:
        """Whether the send-time guard's answer holds this approved text back."""
        return self.content.held_by(out) if self.content is not None else out.held()


def plan_welcome(session: Session, *, corp_id: int, state: str | None, userid: str, external_userid: str,
                 customer_name: str | None = None) -> WelcomePlan | None:
    """The channel code's flow (its variant for this customer among those with an approved version,
    spoken as its persona), or the corp's default welcome; None when neither is switched on. The text
    is the approved version in force (`compliance.service.content_for_send`), never a pending edit; a
    plan with `held_reason` says there is none."""
    from siyu.compliance.service import OwnerRef, content_for_send, sendable_owners

    code = service.code_by_state(session, corp_id=corp_id, state=state)
    flow = get_flow(session, corp_id=corp_id, code_id=code.id) if code is not None else None
    if flow is not None and flow.enabled:
        active = list_variants(session, corp_id=corp_id, flow_id=flow.id, active_only=True)
        live = sendable_owners(session, corp_id=corp_id, kind="welcome",
                               owners=[OwnerRef(WELCOME_VARIANT, v.id) for v in active])
        variant = choose_variant([v for v in active if OwnerRef(WELCOME_VARIANT, v.id) in live],
                                 external_userid=external_userid)
        if variant is not None:
            content = content_for_send(session, corp_id=corp_id, kind="welcome", owner=(WELCOME_VARIANT, variant.id))
            name, title = _speaker(session, corp_id=corp_id, code=code, userid=userid)
            body = content.text
            invitation = invitation_for_welcome(session, corp_id=corp_id, flow=flow)
            if invitation:  # "回复 1 加入…": the welcome carries the flow's approved group invitation
                body = f"{body}\n\n{invitation}"
            text = render(body, customer=customer_name or "", advisor_name=name, advisor_title=title)
            template = body.replace(VAR_NAME, name).replace(VAR_TITLE, title)
            return WelcomePlan(text=text, attachments=from_gate(content.attachments), code_id=code.id,
                               variant_id=variant.id, needs_customer_name=VAR_CUSTOMER in content.text,
                               template=template, customer=customer_name or "", content=content)
        if active:
            return WelcomePlan(text="", code_id=code.id, held_reason="no variant of this welcome is approved yet")
    from siyu.wecom.service import get_config

    cfg = get_config(session, corp_id=corp_id)
    if cfg is None or not cfg.welcome_enabled or not cfg.welcome_text:
        return None
    content = content_for_send(session, corp_id=corp_id, kind="welcome", owner=("corp", corp_id))
    code_id = code.id if code is not None else None
    if content.held:
        return WelcomePlan(text="", code_id=code_id, held_reason=f"default welcome: {content.held_reason}")
    return WelcomePlan(text=content.text, code_id=code_id, template=content.text, content=content,
                       attachments=from_gate(content.attachments))


def prepare_send(session: Session, *, corp_id: int, plan: WelcomePlan, external_userid: str):
    """The send-time guard of a welcome (`siyu.compliance.service.prepare_outbound`, kind "welcome"):
    (the guard's answer, the text to send). The text is the guard's final text — the risk disclosure
    appended when it talks about a product — with the customer's name filled in; a variant's
    {客户称呼} only (the corp default welcome has no variables and is sent as written)."""
    from siyu.compliance.service import prepare_outbound

    out = prepare_outbound(session, corp_id=corp_id, kind="welcome", text=plan.template,
                           recipients=[external_userid], shown=attachment_titles(plan.attachments))
    text = out.text
    if plan.variant_id is not None:
        text = text.replace(VAR_CUSTOMER, plan.customer or CUSTOMER_FALLBACK)
    return out, text


def _speaker(session: Session, *, corp_id: int, code: ChannelCode, userid: str) -> tuple[str, str]:
    """The persona's name and title, or the advisor's own name when the code has no persona."""
    persona = session.get(Persona, code.persona_id) if code.persona_id else None
    if persona is not None and persona.corp_id == corp_id:
        return persona.display_name, persona.title
    staff_name = session.scalar(select(Staff.name).where(Staff.corp_id == corp_id, Staff.wecom_userid == userid))
    return staff_name or "", ""


def record_send(session: Session, *, corp_id: int, inbox_event_id: int, plan: WelcomePlan, external_userid: str,
                state: str) -> None:
    session.execute(dialect_insert(session)(WelcomeSend.__table__).values(
        corp_id=corp_id, inbox_event_id=inbox_event_id, code_id=plan.code_id, variant_id=plan.variant_id,
        external_userid=external_userid, state=state, at=utcnow(),
    ).on_conflict_do_nothing(index_elements=["corp_id", "inbox_event_id"]))


# --- the group invitation: a customer answers the flow's group keyword ----------------------------------


def invitation_effect_key(corp_id: int, msgid: str) -> str:
    return f"group_invitation:{corp_id}:{msgid}"


@dataclass(frozen=True)
class Invitation:
    """What to do about one customer message for the group invitation: `sending` (claimed), or not."""

    outcome: str  # none | held | blocked | opted_out | sending
    text: str = ""
    claim: Any = None
    attachments: tuple = ()  # the set's join way, when the channel code hands one out


def decide_invitation(session: Session, *, corp_id: int, msgid: str, advisor_userid: str, customer_userid: str,
                      sent_at, now=None) -> Invitation:
    """A customer who came through a channel code writes its flow's group keyword (say "1") to the
    advisor they added: the flow's group invitation, in its approved version in force
    (`content_for_send`, kind group_invitation), through the outbound guard (kind keyword_reply: an
    answer to the customer's own message), claimed under `group_invitation:{corp}:{msgid}` so one
    message is answered once. A keyword rule that answers the same message wins (keyword replies)."""
    from siyu.acquisition import keywords
    from siyu.acquisition.models import ChannelAdd
    from siyu.compliance.archive import customer_message_text
    from siyu.compliance.normalize import normalize
    from siyu.compliance.service import content_for_send, prepare_outbound
    from siyu.wecom import service as wecom

    now = now or utcnow()
    if sent_at is not None and now - sent_at > keywords.MAX_AGE:
        return Invitation("none")
    text = customer_message_text(session, corp_id=corp_id, msgid=msgid)
    if not text or not normalize(text):
        return Invitation("none")
    code_id = session.scalar(select(ChannelAdd.code_id).where(
        ChannelAdd.corp_id == corp_id, ChannelAdd.external_userid == customer_userid,
        ChannelAdd.advisor_userid == advisor_userid).order_by(ChannelAdd.at.desc()).limit(1))
    flow = get_flow(session, corp_id=corp_id, code_id=code_id) if code_id is not None else None
    if flow is None or not flow.enabled or not flow.group_keyword or not flow.group_invitation \
            or normalize(flow.group_keyword) != normalize(text):
        return Invitation("none")
    if keywords.match_rule(keywords.list_rules(session, corp_id=corp_id, enabled_only=True), text=text,
                           advisor_userid=advisor_userid) is not None:
        return Invitation("none")
    key = invitation_effect_key(corp_id, msgid)
    content = content_for_send(session, corp_id=corp_id, kind="group_invitation", owner=(WELCOME_FLOW, flow.id))
    if content.held:
        wecom.record_outcome(session, corp_id=corp_id, effect_key=key, endpoint="add_msg_template", state="held",
                             event_time=sent_at, detail=f"approval: {content.held_reason}")
        return Invitation("held")
    out = prepare_outbound(session, corp_id=corp_id, kind="keyword_reply", text=content.text,
                           recipients=[customer_userid])
    if out.refused:
        return Invitation("opted_out")
    if content.held_by(out):
        wecom.record_outcome(session, corp_id=corp_id, effect_key=key, endpoint="add_msg_template",
                             state="blocked", event_time=sent_at, detail=out.summary())
        return Invitation("blocked")
    claim = wecom.claim_effect(session, corp_id=corp_id, effect_key=key, endpoint="add_msg_template",
                               event_time=sent_at)
    attachments = join_way_attachments(session, corp_id=corp_id, code_id=code_id)
    if attachments:  # the invitation went out with the welcome: the answer is the group's QR code itself
        return Invitation("sending", text="", claim=claim, attachments=tuple(attachments))
    return Invitation("sending", text=out.text, claim=claim)


def join_way_attachments(session: Session, *, corp_id: int, code_id: int | None) -> list[dict[str, Any]]:
    """The join way (群活码) a channel code hands out — its group set's, kept by the communities
    domain — as WeCom attachments; [] when the code has none (or communities is not installed)."""
    from siyu import domain_module

    joinways = domain_module("communities", "joinways")
    way = joinways.live_way_for_code(session, corp_id=corp_id, code_id=code_id) if joinways else None
    return joinways.attachments_for(session, way=way) if way is not None else []


def invitation_for_welcome(session: Session, *, corp_id: int, flow: WelcomeFlow) -> str:
    """The flow's approved group invitation ("回复 1 加入…"), sent at the end of the welcome; "" when
    the flow has no group keyword or no approved invitation (the welcome then goes out without it)."""
    from siyu.compliance.service import content_for_send

    if not flow.group_keyword or not flow.group_invitation:
        return ""
    content = content_for_send(session, corp_id=corp_id, kind="group_invitation", owner=(WELCOME_FLOW, flow.id))
    return "" if content.held else (content.text or "")


# --- follow-ups (no welcome code) -----------------------------------------------------------------------

def record_follow_up(session: Session, *, corp_id: int, inbox_event_id: int, userid: str, external_userid: str,
                     state: str | None) -> None:
    code = service.code_by_state(session, corp_id=corp_id, state=state)
    session.execute(dialect_insert(session)(WelcomeFollowUp.__table__).values(
        corp_id=corp_id, inbox_event_id=inbox_event_id, advisor_userid=userid, external_userid=external_userid,
        code_id=code.id if code is not None else None, created_at=utcnow(),
    ).on_conflict_do_nothing(index_elements=["corp_id", "inbox_event_id"]))


def list_follow_ups(session: Session, *, corp_id: int, advisor_userid: str | None = None, open_only: bool = True,
                    limit: int = 200) -> list[WelcomeFollowUp]:
    query = select(WelcomeFollowUp).where(WelcomeFollowUp.corp_id == corp_id)
    if advisor_userid is not None:
        query = query.where(WelcomeFollowUp.advisor_userid == advisor_userid)
    if open_only:
        query = query.where(WelcomeFollowUp.done_at.is_(None))
    return list(session.scalars(query.order_by(WelcomeFollowUp.id.desc()).limit(limit)))


def complete_follow_up(session: Session, *, corp_id: int, actor: Principal, follow_up_id: int,
                       advisor_userid: str | None) -> WelcomeFollowUp:
    """Mark a follow-up done; an advisor (advisor_userid given) only their own."""
    row = (session.get(WelcomeFollowUp, follow_up_id)
           if isinstance(follow_up_id, int) and 0 < follow_up_id < 2**63 else None)
    if row is None or row.corp_id != corp_id or (advisor_userid is not None and row.advisor_userid != advisor_userid):
        raise NotFound("no such follow-up", field="follow_up_id")
    if row.done_at is None:
        row.done_at = utcnow()
        session.flush()
        audit.record(session, corp_id=corp_id, actor=actor, action="acquisition.follow_up_done",
                     target_type="welcome_follow_up", target_id=row.id)
    return row
