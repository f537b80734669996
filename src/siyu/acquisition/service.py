"""Acquisition (获客): personas (人设), channel codes (渠道活码) and the attribution of each add to
its code. Welcome flows live in `siyu.acquisition.welcome`.

A channel code is created here in state "pending" with a job that creates its contact way at WeCom
(`siyu.acquisition.jobs.register_code`): the call must hold no database transaction, and the job's
effect key makes a retried create make one contact way, never two."""

from __future__ import annotations

import datetime as dt
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo

from sqlalchemy import case, func, select, update
from sqlalchemy.orm import Session

from siyu.acquisition.models import ChannelAdd, ChannelCode, ChannelCodeAdvisor, Persona
from siyu.db import dialect_insert, utcnow
from siyu.errors import InvalidInput, NotFound
from siyu.jobs.service import enqueue
from siyu.tenancy import audit
from siyu.tenancy.models import Staff
from siyu.tenancy.principal import Principal

SHANGHAI = ZoneInfo("Asia/Shanghai")

PERSONA_KINDS = ("lifestyle_sharer", "knowledge_expert", "dedicated_advisor", "benefits_officer")
# The four persona types of the field, seeded per corp on first use.
SEED_PERSONAS = (
    ("lifestyle_sharer", "小美", "生活理财分享官", 3,
     "爱生活也爱理财，每天分享省钱小技巧和家庭理财心得。"),
    ("knowledge_expert", "李老师", "理财知识讲师", 8,
     "持证理财师，用通俗的语言讲清楚基金、理财和保险的门道。"),
    ("dedicated_advisor", "王顾问", "专属客户经理", 5,
     "您的一对一专属顾问，账户、产品和活动问题随时找我。"),
    ("benefits_officer", "福利官小银", "品牌福利官", 2,
     "新客礼、节日活动和会员权益第一时间通知您。"),
)
CHANNELS = ("ad", "official_account", "mobile_banking", "mini_program", "sms", "branch_poster", "other")
MAX_ADVISORS = 100
MAX_DAILY_CAP = 10_000
MAX_COST_FEN = 10**12
URL_RE = re.compile(r"^https?://[^\s<>\"'\x00-\x1f\x7f]{1,490}$")


def text_field(value: str | None, *, field: str, max_length: int, required: bool = False) -> str:
    """A form or API text, trimmed: refused (naming `field`) when required and empty, too long, or
    holding control characters (line breaks and tabs are allowed) or a right-to-left override."""
    value = (value or "").strip()
    if required and not value:
        raise InvalidInput("this field is required", field=field)
    if len(value) > max_length:
        raise InvalidInput("at most %(n)s characters", field=field, params={"n": max_length})
    if any((ord(c) < 32 and c not in "\n\t") or c in "\x7f\u202e" for c in value):
        raise InvalidInput("control characters are not allowed", field=field)
    return value


def url_field(value: str | None, *, field: str) -> str:
    """An http(s) address or nothing, refused naming `field` otherwise."""
    value = (value or "").strip()
    if value and not URL_RE.fullmatch(value):
        raise InvalidInput("a web address starting with http:// or https://", field=field)
    return value


def shanghai_day(at: dt.datetime) -> str:
    return at.astimezone(SHANGHAI).date().isoformat()


# --- personas ---------------------------------------------------------------------------------------

def ensure_seed_personas(session: Session, *, corp_id: int) -> None:
    """The four field personas, the first time a corp's personas are asked for."""
    if session.scalar(select(Persona.id).where(Persona.corp_id == corp_id).limit(1)) is not None:
        return
    for kind, name, title, years, intro in SEED_PERSONAS:
        session.add(Persona(corp_id=corp_id, kind=kind, display_name=name, title=title, years_experience=years,
                            introduction=intro))
    session.flush()


def list_personas(session: Session, *, corp_id: int, active_only: bool = False) -> list[Persona]:
    ensure_seed_personas(session, corp_id=corp_id)
    query = select(Persona).where(Persona.corp_id == corp_id)
    if active_only:
        query = query.where(Persona.is_active.is_(True))
    return list(session.scalars(query.order_by(Persona.id)))


def get_persona(session: Session, *, corp_id: int, persona_id: int) -> Persona:
    persona = session.get(Persona, persona_id) if isinstance(persona_id, int) and 0 < persona_id < 2**63 else None
    if persona is None or persona.corp_id != corp_id:
        raise NotFound("no such persona", field="persona_id")
    return persona


def _persona_values(session: Session, *, corp_id: int, kind: str, display_name: str, title: str,
                    years_experience: int | str, avatar_url: str, introduction: str,
                    persona_id: int | None = None) -> dict:
    if kind not in PERSONA_KINDS:
        raise InvalidInput("choose one of the persona types", field="kind")
    display_name = text_field(display_name, field="display_name", max_length=60, required=True)
    try:
        years = int(str(years_experience).strip() or "0")
    except ValueError:
        raise InvalidInput("a whole number of years", field="years_experience") from None
    if not 0 <= years <= 60:
        raise InvalidInput("between 0 and 60 years", field="years_experience")
    clash = session.scalar(select(Persona.id).where(Persona.corp_id == corp_id, Persona.display_name == display_name,
                                                    Persona.id != (persona_id or 0)))
    if clash is not None:
        raise InvalidInput("another persona has this name", field="display_name")
    return {"kind": kind, "display_name": display_name, "title": text_field(title, field="title", max_length=60),
            "years_experience": years, "avatar_url": url_field(avatar_url, field="avatar_url"),
            "introduction": text_field(introduction, field="introduction", max_length=1000)}


def _check_intro(session: Session, *, corp_id: int, intro: str) -> None:
    from siyu.compliance.service import check_content

    if intro:
        check_content(session, corp_id=corp_id, body=intro, field="introduction")


def _submit_intro(session: Session, *, corp_id: int, actor: Principal | str, persona: Persona) -> None:
    """A persona's introduction is customer-facing content: a new version for compliance's approval."""
    from siyu.compliance.service import submit_content

    if persona.introduction:
        submit_content(session, corp_id=corp_id, actor=actor, kind="persona_intro", owner=("persona", persona.id),
                       body=persona.introduction, title=f"人设介绍 {persona.display_name}", field="introduction")


def create_persona(session: Session, *, corp_id: int, actor: Principal | str, kind: str, display_name: str,
                   title: str = "", years_experience: int | str = 0, avatar_url: str = "",
                   introduction: str = "") -> Persona:
    ensure_seed_personas(session, corp_id=corp_id)
    values = _persona_values(session, corp_id=corp_id, kind=kind, display_name=display_name, title=title,
                             years_experience=years_experience, avatar_url=avatar_url, introduction=introduction)
    _check_intro(session, corp_id=corp_id, intro=values["introduction"])
    persona = Persona(corp_id=corp_id, **values)
    session.add(persona)
    session.flush()
    _submit_intro(session, corp_id=corp_id, actor=actor, persona=persona)
    audit.record(session, corp_id=corp_id, actor=actor, action="acquisition.persona_created", target_type="persona",
                 target_id=persona.id, detail={"display_name": persona.display_name, "kind": kind})
    return persona


def update_persona(session: Session, *, corp_id: int, actor: Principal | str, persona_id: int, kind: str,
                   display_name: str, title: str = "", years_experience: int | str = 0, avatar_url: str = "",
                   introduction: str = "", is_active: bool = True) -> Persona:
    persona = get_persona(session, corp_id=corp_id, persona_id=persona_id)
    values = _persona_values(session, corp_id=corp_id, kind=kind, display_name=display_name, title=title,
                             years_experience=years_experience, avatar_url=avatar_url, introduction=introduction,
                             persona_id=persona.id)
    _check_intro(session, corp_id=corp_id, intro=values["introduction"])
    for key, value in values.items():
        setattr(persona, key, value)
    persona.is_active, persona.updated_at = is_active, utcnow()
    session.flush()
    _submit_intro(session, corp_id=corp_id, actor=actor, persona=persona)
    audit.record(session, corp_id=corp_id, actor=actor, action="acquisition.persona_changed", target_type="persona",
                 target_id=persona.id, detail={"display_name": persona.display_name, "active": is_active})
    return persona


# --- channel codes -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class AdvisorSpec:
    userid: str
    daily_cap: int = 0


def parse_yuan(value: str | None, *, field: str = "cost") -> int:
    """"1,234.5" yuan -> 123450 fen; empty is 0."""
    text = (value or "").strip().replace(",", "").replace("，", "")
    if not text:
        return 0
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise InvalidInput("an amount in yuan, such as 1500 or 1500.50", field=field) from None
    if not amount.is_finite() or amount < 0:
        raise InvalidInput("an amount in yuan, such as 1500 or 1500.50", field=field)
    if amount * 100 > MAX_COST_FEN:  # before quantize, which refuses very large numbers
        raise InvalidInput("the amount is too large", field=field)
    if amount != amount.quantize(Decimal("0.01")):
        raise InvalidInput("an amount in yuan, such as 1500 or 1500.50", field=field)
    return int(amount * 100)


def parse_day_end(value: str | None, *, field: str = "expires_on") -> dt.datetime | None:
    """A calendar day (YYYY-MM-DD) in Asia/Shanghai -> its end as a UTC instant; empty is None."""
    text = (value or "").strip()
    if not text:
        return None
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        raise InvalidInput("a date such as 2026-12-31", field=field) from None
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=SHANGHAI) - dt.timedelta(seconds=1)
    return end.astimezone(dt.UTC)


def new_state() -> str:
    """"ch" + a random base-36 id: 12 characters, well within WeCom's 30."""
    n, digits = secrets.randbits(50), "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while n:
        n, r = divmod(n, 36)
        out = digits[r] + out
    return "ch" + out.rjust(10, "0")


def advisor_staff(session: Session, *, corp_id: int) -> list[Staff]:
    """Staff who can be put on a channel code: active and known to WeCom."""
    return list(session.scalars(select(Staff).where(Staff.corp_id == corp_id, Staff.is_active.is_(True),
                                                    Staff.wecom_userid.is_not(None)).order_by(Staff.name)))


def create_channel_code(
    session: Session,
    *,
    corp_id: int,
    actor: Principal | str,
    name: str,
    channel: str,
    advisors: list[AdvisorSpec],
    campaign: str = "",
    persona_id: int | None = None,
    cost_fen: int = 0,
    expires_at: dt.datetime | None = None,
) -> ChannelCode:
    name = text_field(name, field="name", max_length=60, required=True)
    if channel not in CHANNELS:
        raise InvalidInput("choose one of the channels", field="channel")
    campaign = text_field(campaign, field="campaign", max_length=60)
    if persona_id is not None:
        get_persona(session, corp_id=corp_id, persona_id=persona_id)
    if not isinstance(cost_fen, int) or not 0 <= cost_fen <= MAX_COST_FEN:
        raise InvalidInput("the amount is too large", field="cost")
    if expires_at is not None and expires_at <= utcnow():
        raise InvalidInput("the expiry date has passed", field="expires_on")
    if not advisors:
        raise InvalidInput("choose at least one advisor", field="advisor")
    if len(advisors) > MAX_ADVISORS:
        raise InvalidInput("at most %(n)s advisors", field="advisor", params={"n": MAX_ADVISORS})
    known = {s.wecom_userid for s in advisor_staff(session, corp_id=corp_id)}
    seen: set[str] = set()
    for spec in advisors:
        if spec.userid not in known:
            raise InvalidInput("%(userid)s is not an active advisor in WeCom", field="advisor",
                               params={"userid": spec.userid[:64]})
        if spec.userid in seen:
            raise InvalidInput("%(userid)s is chosen twice", field="advisor", params={"userid": spec.userid})
        seen.add(spec.userid)
        if not isinstance(spec.daily_cap, int) or not 0 <= spec.daily_cap <= MAX_DAILY_CAP:
            raise InvalidInput("a daily cap is 0 (none) to %(n)s", field="advisor", params={"n": MAX_DAILY_CAP})
    state = new_state()
    while session.scalar(select(ChannelCode.id).where(ChannelCode.corp_id == corp_id, ChannelCode.state == state)):
        state = new_state()
    code = ChannelCode(corp_id=corp_id, name=name, channel=channel, campaign=campaign, persona_id=persona_id,
                       multi_advisor=len(advisors) > 1, cost_fen=cost_fen, expires_at=expires_at, state=state,
                       status="pending", wecom_users=[], users_version=0, wecom_detail="")
    session.add(code)
    session.flush()
    for i, spec in enumerate(advisors):
        session.add(ChannelCodeAdvisor(code_id=code.id, corp_id=corp_id, userid=spec.userid,
                                       daily_cap=spec.daily_cap, position=i))
    enqueue(session, name="acquisition.register_code", payload={"code_id": code.id}, corp_id=corp_id,
            queue="wecom", idempotency_key=f"acquisition.register_code:{code.id}")
    session.flush()
    audit.record(session, corp_id=corp_id, actor=actor, action="acquisition.channel_code_created",
                 target_type="channel_code", target_id=code.id,
                 detail={"name": name, "channel": channel, "state": state, "advisors": [a.userid for a in advisors],
                         "cost_fen": cost_fen})
    return code


def get_channel_code(session: Session, *, corp_id: int, code_id: int) -> ChannelCode:
    code = session.get(ChannelCode, code_id) if isinstance(code_id, int) and 0 < code_id < 2**63 else None
    if code is None or code.corp_id != corp_id:
        raise NotFound("no such channel code", field="code_id")
    return code


def code_by_state(session: Session, *, corp_id: int, state: str | None) -> ChannelCode | None:
    if not state:
        return None
    return session.scalar(select(ChannelCode).where(ChannelCode.corp_id == corp_id, ChannelCode.state == state))


def list_channel_codes(session: Session, *, corp_id: int) -> list[ChannelCode]:
    return list(session.scalars(select(ChannelCode).where(ChannelCode.corp_id == corp_id,
                                                          ChannelCode.status != "deleted")
                                .order_by(ChannelCode.id.desc())))


def code_advisors(session: Session, *, corp_id: int, code_id: int) -> list[ChannelCodeAdvisor]:
    return list(session.scalars(select(ChannelCodeAdvisor).where(ChannelCodeAdvisor.corp_id == corp_id,
                                                                 ChannelCodeAdvisor.code_id == code_id)
                                .order_by(ChannelCodeAdvisor.position)))


def adds_today_by_advisor(session: Session, *, corp_id: int, code_id: int, day: str | None = None) -> dict[str, int]:
    day = day or shanghai_day(utcnow())
    rows = session.execute(select(ChannelAdd.advisor_userid, func.count())
                           .where(ChannelAdd.corp_id == corp_id, ChannelAdd.code_id == code_id, ChannelAdd.day == day)
                           .group_by(ChannelAdd.advisor_userid)).all()
    return {userid: n for userid, n in rows}


def eligible_users(session: Session, *, code: ChannelCode, day: str | None = None) -> list[str]:
    """The advisors WeCom should offer today: active staff not yet at their daily cap. When
    everyone is full the code keeps the last list WeCom has (WeCom refuses an empty one), and
    failing that its first advisor."""
    advisors = code_advisors(session, corp_id=code.corp_id, code_id=code.id)
    active = set(session.scalars(select(Staff.wecom_userid).where(
        Staff.corp_id == code.corp_id, Staff.is_active.is_(True),
        Staff.wecom_userid.in_([a.userid for a in advisors]))))
    today = adds_today_by_advisor(session, corp_id=code.corp_id, code_id=code.id, day=day)
    users = [a.userid for a in advisors
             if a.userid in active and not (a.daily_cap and today.get(a.userid, 0) >= a.daily_cap)]
    if users:
        return users
    return list(code.wecom_users or []) or [a.userid for a in advisors[:1]]


@dataclass(frozen=True)
class CodeStats:
    adds_today: int = 0
    adds_total: int = 0
    lost: int = 0
    cost_fen: int = 0

    @property
    def active(self) -> int:
        return self.adds_total - self.lost

    @property
    def cost_per_add_fen(self) -> int | None:
        return round(self.cost_fen / self.adds_total) if self.adds_total else None


def code_stats(session: Session, *, corp_id: int, codes: list[ChannelCode]) -> dict[int, CodeStats]:
    """Live counters per code, in one grouped query over the attributed adds."""
    if not codes:
        return {}
    today = shanghai_day(utcnow())
    rows = session.execute(
        select(ChannelAdd.code_id, func.count(),
               func.coalesce(func.sum(case((ChannelAdd.day == today, 1), else_=0)), 0),
               func.count(ChannelAdd.lost_at))
        .where(ChannelAdd.corp_id == corp_id, ChannelAdd.code_id.in_([c.id for c in codes]))
        .group_by(ChannelAdd.code_id)).all()
    found = {code_id: (total, int(day), lost) for code_id, total, day, lost in rows}
    out = {}
    for c in codes:
        total, day, lost = found.get(c.id, (0, 0, 0))
        out[c.id] = CodeStats(adds_today=day, adds_total=total, lost=lost, cost_fen=c.cost_fen)
    return out


def daily_adds(session: Session, *, corp_id: int, code_id: int | None = None, days: int = 14) -> dict:
    """Adds per calendar day (Asia/Shanghai) over the last `days` days, as a console chart."""
    end = utcnow().astimezone(SHANGHAI).date()
    labels = [(end - dt.timedelta(days=i)).isoformat() for i in range(days - 1, -1, -1)]
    query = (select(ChannelAdd.day, func.count()).where(ChannelAdd.corp_id == corp_id, ChannelAdd.day >= labels[0])
             .group_by(ChannelAdd.day))
    if code_id is not None:
        query = query.where(ChannelAdd.code_id == code_id)
    counts = dict(session.execute(query).all())
    return {"x": [d[5:] for d in labels], "values": [counts.get(d, 0) for d in labels]}


# --- attribution -----------------------------------------------------------------------------------------

def attribute_add(session: Session, *, corp_id: int, state: str | None, userid: str, external_userid: str,
                  inbox_event_id: int, at: dt.datetime) -> ChannelAdd | None:
    """Record an add against the channel code its `state` names (once per inbox event). When the
    advisor has now reached their daily cap on a multi-advisor code, a job takes them off the code
    at WeCom. None when the state names no code of this corp."""
    code = code_by_state(session, corp_id=corp_id, state=state)
    if code is None:
        return None
    day = shanghai_day(at)
    table = ChannelAdd.__table__
    session.execute(dialect_insert(session)(table).values(
        corp_id=corp_id, code_id=code.id, advisor_userid=userid, external_userid=external_userid,
        inbox_event_id=inbox_event_id, at=at, day=day,
    ).on_conflict_do_nothing(index_elements=["corp_id", "inbox_event_id"]))
    row = session.scalar(select(ChannelAdd).where(ChannelAdd.corp_id == corp_id,
                                                  ChannelAdd.inbox_event_id == inbox_event_id))
    if code.multi_advisor and code.status == "active":
        advisor = session.get(ChannelCodeAdvisor, (code.id, userid))
        if advisor is not None and advisor.daily_cap:
            n = adds_today_by_advisor(session, corp_id=corp_id, code_id=code.id, day=day).get(userid, 0)
            if n >= advisor.daily_cap:
                request_user_sync(session, code=code, reason=f"{userid} full on {day}")
    return row


def request_user_sync(session: Session, *, code: ChannelCode, reason: str) -> None:
    enqueue(session, name="acquisition.sync_code_users", payload={"code_id": code.id, "reason": reason[:100]},
            corp_id=code.corp_id, queue="wecom",
            idempotency_key=f"acquisition.sync_code_users:{code.id}:{code.users_version}:{reason[:100]}")


def mark_lost(session: Session, *, corp_id: int, userid: str, external_userid: str, at: dt.datetime) -> int:
    """The customer and the advisor are no longer connected: the code's add counts as lost."""
    return session.execute(update(ChannelAdd).where(
        ChannelAdd.corp_id == corp_id, ChannelAdd.external_userid == external_userid,
        ChannelAdd.advisor_userid == userid, ChannelAdd.lost_at.is_(None)).values(lost_at=at)).rowcount


def recent_adds(session: Session, *, corp_id: int, code_id: int, limit: int = 20) -> list[ChannelAdd]:
    return list(session.scalars(select(ChannelAdd).where(ChannelAdd.corp_id == corp_id,
                                                         ChannelAdd.code_id == code_id)
                                .order_by(ChannelAdd.id.desc()).limit(limit)))


def channel_names(session: Session, *, corp_id: int, states: Iterable[str]) -> dict[str, str]:
    """The names of the corp's channel codes with these states (what a person reads for a state)."""
    wanted = sorted(set(states))[:1000]
    if not wanted:
        return {}
    return dict(session.execute(select(ChannelCode.state, ChannelCode.name).where(
        ChannelCode.corp_id == corp_id, ChannelCode.state.in_(wanted))).all())


def verified_phones(session: Session, customer) -> list[str]:
    """The phones a customer verified at the gate (decrypted here, only to be indexed for search)."""
    from siyu.acquisition.models import CustomerVerification

    return list(session.scalars(select(CustomerVerification.phone).where(
        CustomerVerification.corp_id == customer.corp_id,
        CustomerVerification.external_userid == customer.external_userid).limit(5)))


def _register() -> None:
    # The customer list and 360 page show a follow's channel by its code's name (see
    # siyu.customers.service.register_channel_namer): customers does not import acquisition.
    from siyu.customers.search import register_text_source
    from siyu.customers.service import register_channel_namer

    register_channel_namer(channel_names)
    # A customer is found by the last digits of the phone they verified (siyu.customers.search).
    register_text_source(verified_phones)


_register()
