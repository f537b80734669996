"""The SOP domain's actions: templates and slots, calendars per group set, planning slot times into
per-owner sends, the state of each slot time, owners' tasks, and customer SOP journeys.

Times: a slot's time is a wall-clock time in Asia/Shanghai (`minute_of_day`); runs and sends are
stored in UTC. A "working days only" slot skips China's public holidays and takes make-up working
days (the `chinese_calendar` package, through `quality.service`'s calendar).

Who may do what: administrators and operations build calendars, templates and journeys (audited);
advisors see their own tasks (the sends they must confirm in WeCom); compliance and auditors read."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.communities.models import GroupChat, GroupSet
from siyu.compliance.service import OwnerRef, content_states, submit_content
from siyu.console.i18n import N_
from siyu.customers.listing import CALENDAR_ZONE
from siyu.db import utcnow
from siyu.errors import Conflict, Forbidden, InvalidInput, NotFound
from siyu.sop.content import MOMENTS_KIND, SLOT, SLOT_KIND, STEP
from siyu.sop.models import (
    Channel,
    ContentType,
    RunState,
    SendState,
    SopJourney,
    SopJourneySend,
    SopJourneyStep,
    SopRun,
    SopSend,
    SopSetTemplate,
    SopSettings,
    SopSlot,
    SopTemplate,
)
from siyu.tenancy import audit
from siyu.tenancy.models import Role, Staff
from siyu.tenancy.principal import Principal
from siyu.tenancy.service import valid_id

CONTENT_TYPES: dict[str, str] = {
    ContentType.RULES.value: N_("Group rules"),
    ContentType.KNOWLEDGE.value: N_("Knowledge"),
    ContentType.PRODUCT.value: N_("Product content"),
    ContentType.INTERACTION.value: N_("Interaction and games"),
    ContentType.AFTER_SALES.value: N_("After-sales"),
    ContentType.CULTURE.value: N_("Culture"),
    ContentType.COMPANY_NEWS.value: N_("Company news"),
}
CHANNELS: dict[str, str] = {Channel.GROUP.value: N_("Groups of the set"), Channel.MOMENTS.value: N_("Moments")}
WEEKDAYS = (N_("Monday"), N_("Tuesday"), N_("Wednesday"), N_("Thursday"), N_("Friday"), N_("Saturday"),
            N_("Sunday"))
RUN_STATES: dict[str, str] = {
    RunState.PLANNED.value: N_("Planned"),
    RunState.WAITING.value: N_("Waiting for confirmation"),
    RunState.SENT.value: N_("Sent"),
    RunState.PARTLY.value: N_("Partly sent"),
    RunState.LATE.value: N_("Late"),
    RunState.MISSED.value: N_("Missed"),
    RunState.HELD.value: N_("Held by compliance"),
}
JOURNEY_EVENTS: dict[str, str] = {"added": N_("Added as a contact"), "course_start": N_("Course start"),
                                  "maturity": N_("Product maturity")}
WRITERS = (Role.ADMINISTRATOR, Role.OPERATIONS)
MAX_TEXT = 1500
PLAN_HORIZON = dt.timedelta(days=2)
_TIME = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
TERMINAL = (SendState.SENT.value, SendState.PARTLY.value, SendState.MISSED.value, SendState.HELD.value,
            SendState.FAILED.value)


# --- input ------------------------------------------------------------------------------------------------------


def _require_writer(principal: Principal) -> None:
    if principal.kind == "staff" and not principal.has_role(*WRITERS):
        raise Forbidden("your role does not allow this")


def _name(value: object, *, field: str, limit: int = 60) -> str:
    if not isinstance(value, str) or not value.strip() or len(value.strip()) > limit or _CONTROL.search(value):
        raise InvalidInput("a name is 1–%(n)s characters", field=field, params={"n": limit})
    return value.strip()


def parse_time(value: object, *, field: str = "time") -> int:
    """"HH:MM" (Asia/Shanghai) -> minute of the day."""
    m = _TIME.fullmatch(value.strip()) if isinstance(value, str) else None
    if m is None:
        raise InvalidInput("a time is HH:MM, 00:00–23:59", field=field)
    return int(m.group(1)) * 60 + int(m.group(2))


def format_time(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def _weekdays(value: object, *, field: str = "weekdays") -> list[int]:
    if isinstance(value, (int, str)):
        value = [value]
    try:
        days = sorted({int(v) for v in value}) if isinstance(value, (list, tuple, set)) else None
    except (TypeError, ValueError):
        days = None
    if not days or any(not 0 <= d <= 6 for d in days):
        raise InvalidInput("weekdays are 0 (Monday) to 6 (Sunday)", field=field)
    return days


def _date(value: object, *, field: str = "date") -> dt.date:
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(value) if isinstance(value, str) else None  # type: ignore[return-value]
    except ValueError:
        pass
    raise InvalidInput("a date is YYYY-MM-DD", field=field)


def _content_type(value: object) -> str:
    if value not in CONTENT_TYPES:
        raise InvalidInput("the content type is one of %(values)s", field="content_type",
                           params={"values": ", ".join(CONTENT_TYPES)})
    return value  # type: ignore[return-value]


def _text(value: object, *, field: str = "text") -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput("the text is required", field=field)
    if len(value) > MAX_TEXT:
        raise InvalidInput("the text is at most %(n)s characters", field=field, params={"n": MAX_TEXT})
    return value.strip()


# --- settings ---------------------------------------------------------------------------------------------------


def settings_for(session: Session, *, corp_id: int) -> SopSettings:
    row = session.get(SopSettings, corp_id)
    if row is None:
        row = SopSettings(corp_id=corp_id, notice_lead_minutes=30, confirm_window_minutes=120, late_after_minutes=10,
                          check_seconds=60)
    return row


def update_settings(session: Session, *, principal: Principal, app_agent_id: int | None = None,
                    notice_lead_minutes: int | None = None, confirm_window_minutes: int | None = None,
                    late_after_minutes: int | None = None, check_seconds: int | None = None) -> SopSettings:
    _require_writer(principal)
    row = session.get(SopSettings, principal.corp_id)
    if row is None:
        row = settings_for(session, corp_id=principal.corp_id)
        session.add(row)
    for name, value, low, high in (("notice_lead_minutes", notice_lead_minutes, 0, 24 * 60),
                                   ("confirm_window_minutes", confirm_window_minutes, 1, 7 * 24 * 60),
                                   ("late_after_minutes", late_after_minutes, 0, 24 * 60),
                                   ("check_seconds", check_seconds, 1, 3600)):
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise InvalidInput("%(field)s is %(low)s–%(high)s", field=name,
                               params={"field": name, "low": low, "high": high})
        setattr(row, name, value)
    if app_agent_id is not None:
        if not isinstance(app_agent_id, int) or not 1 <= app_agent_id < 2**31:
            raise InvalidInput("the application's agent id is a positive number", field="app_agent_id")
        row.app_agent_id = app_agent_id
    session.flush()
    audit.record(session, corp_id=principal.corp_id, actor=principal, action="sop.settings_changed",
                 target_type="corp", target_id=principal.corp_id)
    return row


# --- templates, sets and slots ----------------------------------------------------------------------------------


def get_set(session: Session, *, corp_id: int, set_id: object) -> GroupSet:
    group_set = session.get(GroupSet, set_id) if valid_id(set_id) else None
    if group_set is None or group_set.corp_id != corp_id:
        raise NotFound("group set not found", field="group_set_id")
    return group_set


def get_template(session: Session, *, corp_id: int, template_id: object) -> SopTemplate:
    template = session.get(SopTemplate, template_id) if valid_id(template_id) else None
    if template is None or template.corp_id != corp_id:
        raise NotFound("template not found", field="template_id")
    return template


def list_templates(session: Session, *, corp_id: int) -> list[SopTemplate]:
    return list(session.scalars(select(SopTemplate).where(SopTemplate.corp_id == corp_id).order_by(SopTemplate.name)))


def create_template(session: Session, *, principal: Principal, name: str, description: str = "",
                    ip: str | None = None) -> SopTemplate:
    _require_writer(principal)
    name = _name(name, field="name")
    if len(description or "") > 500:
        raise InvalidInput("the description is at most 500 characters", field="description")
    if session.scalar(select(SopTemplate.id).where(SopTemplate.corp_id == principal.corp_id,
                                                   SopTemplate.name == name)):
        raise Conflict("a template with this name exists", field="name")
    template = SopTemplate(corp_id=principal.corp_id, name=name, description=(description or "").strip())
    session.add(template)
    session.flush()
    audit.record(session, corp_id=principal.corp_id, actor=principal, action="sop.template_created",
                 target_type="sop_template", target_id=template.id, detail={"name": name}, ip=ip)
    return template


def apply_template(session: Session, *, principal: Principal, set_id: object, template_id: object,
                   ip: str | None = None) -> SopSetTemplate:
    """The template's week becomes part of the set's calendar (its slots, with their approved texts,
    are shared: one approval serves every set the template is applied to)."""
    _require_writer(principal)
    group_set = get_set(session, corp_id=principal.corp_id, set_id=set_id)
    template = get_template(session, corp_id=principal.corp_id, template_id=template_id)
    link = session.scalar(select(SopSetTemplate).where(SopSetTemplate.group_set_id == group_set.id,
                                                       SopSetTemplate.template_id == template.id))
    if link is None:
        link = SopSetTemplate(corp_id=principal.corp_id, group_set_id=group_set.id, template_id=template.id)
        session.add(link)
        session.flush()
        audit.record(session, corp_id=principal.corp_id, actor=principal, action="sop.template_applied",
                     target_type="group_set", target_id=group_set.id, detail={"template": template.name}, ip=ip)
    return link


def remove_template(session: Session, *, principal: Principal, set_id: object, template_id: object,
                    ip: str | None = None) -> None:
    _require_writer(principal)
    group_set = get_set(session, corp_id=principal.corp_id, set_id=set_id)
    link = session.scalar(select(SopSetTemplate).where(SopSetTemplate.group_set_id == group_set.id,
                                                       SopSetTemplate.template_id == template_id))
    if link is not None:
        session.delete(link)
        audit.record(session, corp_id=principal.corp_id, actor=principal, action="sop.template_removed",
                     target_type="group_set", target_id=group_set.id, detail={"template_id": template_id}, ip=ip)


def applied_templates(session: Session, *, corp_id: int, set_id: int) -> list[SopTemplate]:
    return list(session.scalars(select(SopTemplate).join(SopSetTemplate, SopSetTemplate.template_id == SopTemplate.id)
                                .where(SopSetTemplate.corp_id == corp_id, SopSetTemplate.group_set_id == set_id)
                                .order_by(SopTemplate.name)))


def add_slots(session: Session, *, principal: Principal, text: str, content_type: str, title: str, time: str,
              weekdays: object = None, on_date: object = None, set_id: object = None, template_id: object = None,
              working_days_only: bool = False, channel: str = Channel.GROUP.value,
              moment_tag_ids: list[str] | None = None, ip: str | None = None) -> list[SopSlot]:
    """One slot per weekday given (or one dated slot), to a set's own calendar or to a template. The
    text is submitted to compliance (a block is refused here, naming `text`); the slot goes out only
    once a checker approved it."""
    _require_writer(principal)
    corp_id = principal.corp_id
    if (set_id in (None, "")) == (template_id in (None, "")):
        raise InvalidInput("a slot belongs to a group set or to a template", field="set_id")
    owner_set = get_set(session, corp_id=corp_id, set_id=set_id) if set_id not in (None, "") else None
    template = get_template(session, corp_id=corp_id, template_id=template_id) if owner_set is None else None
    if channel not in CHANNELS:
        raise InvalidInput("the channel is one of %(values)s", field="channel", params={"values": ", ".join(CHANNELS)})
    title = _name(title, field="title")
    content_type = _content_type(content_type)
    minute = parse_time(time)
    text = _text(text)
    tags = [t for t in (moment_tag_ids or []) if isinstance(t, str) and t.strip()]
    if len(tags) > 100 or any(len(t) > 64 for t in tags):
        raise InvalidInput("at most 100 tag ids", field="moment_tag_ids")
    if on_date not in (None, ""):
        if template is not None:
            raise InvalidInput("a template is a week: its slots are weekly", field="date")
        dates, days = [_date(on_date)], [None]
    else:
        days, dates = _weekdays(weekdays), []
        dates = [None] * len(days)
    kind = MOMENTS_KIND if channel == Channel.MOMENTS.value else SLOT_KIND
    from siyu.compliance.service import check_content

    check_content(session, corp_id=corp_id, body=text, field="text")  # refuse before writing anything
    slots = []
    for weekday, date in zip(days, dates, strict=True):
        slot = SopSlot(corp_id=corp_id, group_set_id=owner_set.id if owner_set else None,
                       template_id=template.id if template else None, channel=channel, weekday=weekday,
                       on_date=date, minute_of_day=minute, content_type=content_type, title=title,
                       working_days_only=bool(working_days_only), moment_tag_ids=tags, active=True)
        session.add(slot)
        session.flush()
        submit_content(session, corp_id=corp_id, actor=principal, kind=kind, owner=f"{SLOT}:{slot.id}", body=text,
                       title=title, field="text")
        slots.append(slot)
    audit.record(session, corp_id=corp_id, actor=principal, action="sop.slots_added", target_type="sop_slot",
                 target_id=slots[0].id, detail={"count": len(slots), "title": title}, ip=ip)
    return slots


def get_slot(session: Session, *, corp_id: int, slot_id: object) -> SopSlot:
    slot = session.get(SopSlot, slot_id) if valid_id(slot_id) else None
    if slot is None or slot.corp_id != corp_id:
        raise NotFound("slot not found", field="slot_id")
    return slot


def edit_slot_text(session: Session, *, principal: Principal, slot_id: object, text: str, ip: str | None = None):
    """A new version of the slot's text, submitted for approval; the approved one stays in force
    (and is what goes out) until a checker approves the edit."""
    _require_writer(principal)
    slot = get_slot(session, corp_id=principal.corp_id, slot_id=slot_id)
    kind = MOMENTS_KIND if slot.channel == Channel.MOMENTS.value else SLOT_KIND
    return submit_content(session, corp_id=principal.corp_id, actor=principal, kind=kind,
                          owner=f"{SLOT}:{slot.id}", body=_text(text), title=slot.title, field="text")


def remove_slot(session: Session, *, principal: Principal, slot_id: object, ip: str | None = None) -> None:
    """The slot stops (its past runs stay, as history); planned sends not yet called are dropped."""
    _require_writer(principal)
    slot = get_slot(session, corp_id=principal.corp_id, slot_id=slot_id)
    slot.active = False
    now = utcnow()
    for run in session.scalars(select(SopRun).where(SopRun.slot_id == slot.id, SopRun.due_at > now,
                                                    SopRun.state == RunState.PLANNED.value)):
        for send in session.scalars(select(SopSend).where(SopSend.run_id == run.id,
                                                          SopSend.state == SendState.PLANNED.value)):
            session.delete(send)
        session.delete(run)
    audit.record(session, corp_id=principal.corp_id, actor=principal, action="sop.slot_removed",
                 target_type="sop_slot", target_id=slot.id, detail={"title": slot.title}, ip=ip)


def set_slots(session: Session, *, corp_id: int, set_id: int) -> list[SopSlot]:
    """The set's calendar: its own active slots and those of the templates applied to it."""
    templates = select(SopSetTemplate.template_id).where(SopSetTemplate.group_set_id == set_id)
    return list(session.scalars(select(SopSlot).where(
        SopSlot.corp_id == corp_id, SopSlot.active.is_(True),
        (SopSlot.group_set_id == set_id) | SopSlot.template_id.in_(templates))
        .order_by(SopSlot.weekday, SopSlot.on_date, SopSlot.minute_of_day, SopSlot.id)))


def template_slots(session: Session, *, corp_id: int, template_id: int) -> list[SopSlot]:
    return list(session.scalars(select(SopSlot).where(SopSlot.corp_id == corp_id, SopSlot.template_id == template_id,
                                                      SopSlot.active.is_(True))
                                .order_by(SopSlot.weekday, SopSlot.minute_of_day, SopSlot.id)))


# --- time -------------------------------------------------------------------------------------------------------


def is_working_day(day: dt.date) -> bool:
    from siyu.quality.service import _holiday

    mark = _holiday(day)
    return mark == "makeup" or (mark != "holiday" and day.weekday() < 5)


def local_due(day: dt.date, minute: int) -> dt.datetime:
    local = dt.datetime(day.year, day.month, day.day, minute // 60, minute % 60, tzinfo=CALENDAR_ZONE)
    return local.astimezone(dt.UTC)


def occurrences(slot: SopSlot, first: dt.date, last: dt.date) -> list[dt.datetime]:
    """The slot's times (UTC) on the local days first..last (inclusive)."""
    out = []
    day = first
    while day <= last:
        hit = day == slot.on_date if slot.on_date is not None else day.weekday() == slot.weekday
        if hit and (not slot.working_days_only or is_working_day(day)):
            out.append(local_due(day, slot.minute_of_day))
        day += dt.timedelta(days=1)
    return out


def local_day(at: dt.datetime) -> dt.date:
    return at.astimezone(CALENDAR_ZONE).date()


# --- planning ---------------------------------------------------------------------------------------------------


@dataclass
class Planned:
    runs: int = 0
    sends: int = 0
    send_ids: list[int] = field(default_factory=list)


def owners_of_set(session: Session, *, corp_id: int, set_id: int, owner: str | None = None) -> dict[str, list[str]]:
    """The set's live groups by owner userid (only `owner`'s when given)."""
    out: dict[str, list[str]] = {}
    q = select(GroupChat.chat_id, GroupChat.owner_userid).where(
        GroupChat.corp_id == corp_id, GroupChat.group_set_id == set_id, GroupChat.dismissed_at.is_(None))
    if owner is not None:
        q = q.where(GroupChat.owner_userid == owner)
    for chat_id, owner in session.execute(q.order_by(GroupChat.id)):
        if owner:
            out.setdefault(owner, []).append(chat_id)
    return out


def plan(session: Session, *, corp_id: int, start: dt.datetime, end: dt.datetime,
         set_ids: list[int] | None = None, enqueue_jobs: bool = True) -> Planned:
    """Every slot time in [start, end) of the corp's sets becomes a run and one send per owner of the
    set's groups (or one Moments send), each with its reminder and send jobs. Idempotent: a run or
    send planned before is kept (an owner who has groups now and had none at the last planning gets
    a send while the run is still planned)."""
    result = Planned()
    staff_ids = dict(session.execute(select(Staff.wecom_userid, Staff.id).where(Staff.corp_id == corp_id,
                                                                                Staff.wecom_userid.is_not(None))).all())
    sets = set_ids if set_ids is not None else list(session.scalars(
        select(GroupSet.id).where(GroupSet.corp_id == corp_id).order_by(GroupSet.id)))
    first, last = local_day(start), local_day(end)
    new_sends: list[SopSend] = []
    for set_id in sets:
        slots = set_slots(session, corp_id=corp_id, set_id=set_id)
        if not slots:
            continue
        owners = owners_of_set(session, corp_id=corp_id, set_id=set_id)
        for slot in slots:
            for due in occurrences(slot, first, last):
                if not start <= due < end:
                    continue
                run = session.scalar(select(SopRun).where(SopRun.slot_id == slot.id, SopRun.group_set_id == set_id,
                                                          SopRun.due_at == due))
                if run is None:
                    run = SopRun(corp_id=corp_id, slot_id=slot.id, group_set_id=set_id, due_at=due,
                                 state=RunState.PLANNED.value)
                    session.add(run)
                    session.flush()
                    result.runs += 1
                elif run.state != RunState.PLANNED.value:
                    continue
                have = set(session.scalars(select(SopSend.owner_userid).where(SopSend.run_id == run.id)))
                if slot.channel == Channel.MOMENTS.value:
                    wanted = {"": sorted(owners)} if owners else {}
                else:
                    wanted = owners
                for owner, chats in wanted.items():
                    if owner in have:
                        continue
                    send = SopSend(corp_id=corp_id, run_id=run.id, owner_userid=owner,
                                   owner_staff_id=staff_ids.get(owner) if owner else None, chat_ids=list(chats),
                                   total_chats=len(chats) if slot.channel == Channel.GROUP.value else 0,
                                   state=SendState.PLANNED.value)
                    session.add(send)
                    new_sends.append(send)
    session.flush()
    if enqueue_jobs and new_sends:
        from siyu.sop.jobs import enqueue_send_jobs

        enqueue_send_jobs(session, corp_id=corp_id, sends=new_sends)
    result.sends = len(new_sends)
    result.send_ids = [s.id for s in new_sends]
    return result


def refresh_run(session: Session, *, run: SopRun, now: dt.datetime | None = None) -> str:
    """A run's state from its sends' (the run is held when the content was held)."""
    now = now or utcnow()
    states = list(session.scalars(select(SopSend.state).where(SopSend.run_id == run.id)))
    run.state = run_state(states, due_at=run.due_at, now=now, late_after=dt.timedelta(
        minutes=settings_for(session, corp_id=run.corp_id).late_after_minutes), held=run.state == RunState.HELD.value)
    return run.state


def run_state(states: list[str], *, due_at: dt.datetime, now: dt.datetime, late_after: dt.timedelta,
              held: bool = False, window: dt.timedelta | None = None) -> str:
    """A slot time's state from its sends' states. Past the confirmation `window`, a send still not
    out (its job expired, or the owner never confirmed) counts as missed."""
    if window is not None and now >= due_at + window:
        states = [s if s in TERMINAL else SendState.MISSED.value for s in states]
    if held or (states and all(s == SendState.HELD.value for s in states)):
        return RunState.HELD.value
    if not states:
        return RunState.PLANNED.value if now < due_at + late_after else RunState.MISSED.value
    done = [s for s in states if s in TERMINAL]
    if len(done) == len(states):
        sent = sum(s == SendState.SENT.value for s in states)
        if sent == len(states):
            return RunState.SENT.value
        if sent or any(s == SendState.PARTLY.value for s in states):
            return RunState.PARTLY.value
        if all(s == SendState.HELD.value for s in states):
            return RunState.HELD.value
        return RunState.MISSED.value
    if now >= due_at + late_after:
        return RunState.LATE.value
    if any(s != SendState.PLANNED.value for s in states):
        return RunState.WAITING.value
    return RunState.PLANNED.value


# --- the calendar view ------------------------------------------------------------------------------------------


@dataclass
class CalendarEntry:
    slot: SopSlot
    due_at: dt.datetime
    local_time: str
    state: str
    run_id: int | None = None
    sent: int = 0
    total: int = 0
    held_reason: str = ""
    content_status: str = ""  # approved | pending | none


@dataclass
class CalendarDay:
    day: dt.date
    working: bool
    entries: list[CalendarEntry] = field(default_factory=list)


def calendar(session: Session, *, corp_id: int, set_id: int, first: dt.date, days: int,
             now: dt.datetime | None = None) -> list[CalendarDay]:
    """Each local day's slot times with their state: from the run when planned, otherwise what the
    slot will do ("planned", or "held" when its text has no approved version)."""
    now = now or utcnow()
    last = first + dt.timedelta(days=days - 1)
    slots = set_slots(session, corp_id=corp_id, set_id=set_id)
    states = content_states(session, corp_id=corp_id, kind=SLOT_KIND, owners=[f"{SLOT}:{s.id}" for s in slots])
    states |= content_states(session, corp_id=corp_id, kind=MOMENTS_KIND, owners=[f"{SLOT}:{s.id}" for s in slots])
    start, end = local_due(first, 0), local_due(last + dt.timedelta(days=1), 0)
    runs = {(r.slot_id, r.due_at): r for r in session.scalars(select(SopRun).where(
        SopRun.corp_id == corp_id, SopRun.group_set_id == set_id, SopRun.due_at >= start, SopRun.due_at < end))}
    counts: dict[int, tuple[int, int]] = {}
    if runs:
        for run_id, sent, total in session.execute(
                select(SopSend.run_id, func.sum(SopSend.sent_chats), func.sum(SopSend.total_chats))
                .where(SopSend.run_id.in_([r.id for r in runs.values()])).group_by(SopSend.run_id)):
            counts[run_id] = (int(sent or 0), int(total or 0))
    cfg = settings_for(session, corp_id=corp_id)
    late_after = dt.timedelta(minutes=cfg.late_after_minutes)
    window = dt.timedelta(minutes=cfg.confirm_window_minutes)
    out = [CalendarDay(day=first + dt.timedelta(days=i), working=is_working_day(first + dt.timedelta(days=i)))
           for i in range(days)]
    for slot in slots:
        content = states.get(OwnerRef(SLOT, slot.id))
        status = "none" if content is None else "approved" if content.live and not content.pending else (
            "pending" if not content.live else "edit_pending")
        for due in occurrences(slot, first, last):
            run = runs.get((slot.id, due))
            if run is None and due < slot.created_at:
                continue  # before the slot existed: not part of its calendar
            entry = CalendarEntry(slot=slot, due_at=due, local_time=format_time(slot.minute_of_day),
                                  state=RunState.PLANNED.value, content_status=status)
            if run is not None:
                entry.run_id, entry.held_reason = run.id, run.held_reason
                entry.sent, entry.total = counts.get(run.id, (0, 0))
                sends = list(session.scalars(select(SopSend.state).where(SopSend.run_id == run.id)))
                entry.state = run_state(sends, due_at=due, now=now, late_after=late_after,
                                        held=run.state == RunState.HELD.value, window=window)
            elif status in ("none", "pending") and due > now:
                entry.state, entry.held_reason = RunState.HELD.value, "awaiting approval"
            elif due <= now:
                entry.state = RunState.MISSED.value
            out[(local_day(due) - first).days].entries.append(entry)
    for day in out:
        day.entries.sort(key=lambda e: (e.due_at, e.slot.id))
    return out


def week_start(day: dt.date) -> dt.date:
    return day - dt.timedelta(days=day.weekday())


# --- owners' tasks ----------------------------------------------------------------------------------------------


@dataclass
class OwnerTask:
    send: SopSend
    run: SopRun
    slot: SopSlot
    set_name: str
    state: str
    owner_name: str
    local_time: str = ""


def owner_tasks(session: Session, *, principal: Principal, days: int = 7, now: dt.datetime | None = None
                ) -> list[OwnerTask]:
    """The sends an owner must confirm in WeCom (waiting), and the coming ones, soonest first. An
    advisor sees their own; administrators and operations see everyone's."""
    now = now or utcnow()
    q = (select(SopSend, SopRun, SopSlot, GroupSet.name).join(SopRun, SopRun.id == SopSend.run_id)
         .join(SopSlot, SopSlot.id == SopRun.slot_id).join(GroupSet, GroupSet.id == SopRun.group_set_id)
         .where(SopSend.corp_id == principal.corp_id, SopSend.owner_userid != "",
                SopSend.state.in_((SendState.PLANNED.value, SendState.CALLING.value, SendState.WAITING.value)),
                SopRun.due_at < now + dt.timedelta(days=days))
         .order_by(SopRun.due_at, SopSend.id).limit(500))
    if not principal.has_role(*WRITERS) or principal.kind != "staff":
        if principal.kind == "staff":
            q = q.where(SopSend.owner_staff_id == principal.staff_id)
    names = dict(session.execute(select(Staff.wecom_userid, Staff.name)
                                 .where(Staff.corp_id == principal.corp_id)).all())
    late_after = dt.timedelta(minutes=settings_for(session, corp_id=principal.corp_id).late_after_minutes)
    out = []
    for send, run, slot, set_name in session.execute(q):
        state = (RunState.LATE.value if now >= run.due_at + late_after else
                 RunState.WAITING.value if send.state != SendState.PLANNED.value else RunState.PLANNED.value)
        out.append(OwnerTask(send=send, run=run, slot=slot, set_name=set_name, state=state,
                             owner_name=names.get(send.owner_userid, send.owner_userid),
                             local_time=run.due_at.astimezone(CALENDAR_ZONE).strftime("%m-%d %H:%M")))
    return out


# --- customer SOP -----------------------------------------------------------------------------------------------


def create_journey(session: Session, *, principal: Principal, name: str, event: str, filter_channel: str = "",
                   filter_tag: str = "", filter_stage: str = "", ip: str | None = None) -> SopJourney:
    _require_writer(principal)
    name = _name(name, field="name")
    if event not in JOURNEY_EVENTS:
        raise InvalidInput("the event is one of %(values)s", field="event",
                           params={"values": ", ".join(JOURNEY_EVENTS)})
    for fname, value in (("filter_channel", filter_channel), ("filter_tag", filter_tag),
                         ("filter_stage", filter_stage)):
        if not isinstance(value, str) or len(value) > 64 or _CONTROL.search(value):
            raise InvalidInput("a filter is at most 64 characters", field=fname)
    if session.scalar(select(SopJourney.id).where(SopJourney.corp_id == principal.corp_id, SopJourney.name == name)):
        raise Conflict("a customer SOP with this name exists", field="name")
    journey = SopJourney(corp_id=principal.corp_id, name=name, event=event, filter_channel=filter_channel.strip(),
                         filter_tag=filter_tag.strip(), filter_stage=filter_stage.strip(), active=True)
    session.add(journey)
    session.flush()
    audit.record(session, corp_id=principal.corp_id, actor=principal, action="sop.journey_created",
                 target_type="sop_journey", target_id=journey.id, detail={"name": name}, ip=ip)
    return journey


def get_journey(session: Session, *, corp_id: int, journey_id: object) -> SopJourney:
    journey = session.get(SopJourney, journey_id) if valid_id(journey_id) else None
    if journey is None or journey.corp_id != corp_id:
        raise NotFound("customer SOP not found", field="journey_id")
    return journey


def list_journeys(session: Session, *, corp_id: int) -> list[SopJourney]:
    return list(session.scalars(select(SopJourney).where(SopJourney.corp_id == corp_id).order_by(SopJourney.name)))


def journey_steps(session: Session, *, corp_id: int, journey_id: int) -> list[SopJourneyStep]:
    return list(session.scalars(select(SopJourneyStep).where(SopJourneyStep.corp_id == corp_id,
                                                             SopJourneyStep.journey_id == journey_id)
                                .order_by(SopJourneyStep.day_offset, SopJourneyStep.minute_of_day)))


def add_step(session: Session, *, principal: Principal, journey_id: object, day_offset: object, time: str,
             title: str, text: str, ip: str | None = None) -> SopJourneyStep:
    """A step `day_offset` days after the event (negative: before it, e.g. -3 before a maturity)."""
    _require_writer(principal)
    journey = get_journey(session, corp_id=principal.corp_id, journey_id=journey_id)
    try:
        offset = int(day_offset)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        offset = None
    if offset is None or not -365 <= offset <= 365:
        raise InvalidInput("the day is a whole number of days from the event, -365–365", field="day_offset")
    minute, title, text = parse_time(time), _name(title, field="title"), _text(text)
    from siyu.compliance.service import check_content

    check_content(session, corp_id=principal.corp_id, body=text, field="text")
    step = SopJourneyStep(corp_id=principal.corp_id, journey_id=journey.id, day_offset=offset, minute_of_day=minute,
                          title=title)
    session.add(step)
    session.flush()
    submit_content(session, corp_id=principal.corp_id, actor=principal, kind=SLOT_KIND, owner=f"{STEP}:{step.id}",
                   body=text, title=f"{journey.name} · {title}", field="text")
    audit.record(session, corp_id=principal.corp_id, actor=principal, action="sop.step_added",
                 target_type="sop_journey", target_id=journey.id, detail={"title": title, "day": offset}, ip=ip)
    return step


def enrol(session: Session, *, corp_id: int, journey: SopJourney, customer_id: int, advisor_userid: str,
          event_at: dt.datetime, now: dt.datetime | None = None, enqueue_jobs: bool = True) -> list[SopJourneySend]:
    """The customer's steps of the journey, each due on its day at its time (a step whose time has
    passed by more than a day is not sent; day 0 at an earlier time goes out now). Idempotent."""
    now = now or utcnow()
    staff_id = session.scalar(select(Staff.id).where(Staff.corp_id == corp_id, Staff.wecom_userid == advisor_userid))
    base = local_day(event_at)
    made = []
    for step in journey_steps(session, corp_id=corp_id, journey_id=journey.id):
        due = local_due(base + dt.timedelta(days=step.day_offset), step.minute_of_day)
        if due < now - dt.timedelta(days=1):
            continue
        due = max(due, now)
        exists = session.scalar(select(SopJourneySend.id).where(SopJourneySend.step_id == step.id,
                                                                SopJourneySend.customer_id == customer_id))
        if exists:
            continue
        send = SopJourneySend(corp_id=corp_id, step_id=step.id, customer_id=customer_id,
                              advisor_userid=advisor_userid, advisor_staff_id=staff_id, due_at=due,
                              state=SendState.PLANNED.value)
        session.add(send)
        made.append(send)
    session.flush()
    if enqueue_jobs and made:
        from siyu.sop.jobs import enqueue_journey_jobs

        enqueue_journey_jobs(session, corp_id=corp_id, sends=made)
    return made


def matches(journey: SopJourney, *, channel: str | None, tags: list[str], stage: str | None) -> bool:
    return ((not journey.filter_channel or journey.filter_channel == (channel or ""))
            and (not journey.filter_tag or journey.filter_tag in tags)
            and (not journey.filter_stage or journey.filter_stage == (stage or "")))


def journey_sends(session: Session, *, corp_id: int, journey_id: int, limit: int = 200) -> list[tuple]:
    return list(session.execute(
        select(SopJourneySend, SopJourneyStep).join(SopJourneyStep, SopJourneyStep.id == SopJourneySend.step_id)
        .where(SopJourneySend.corp_id == corp_id, SopJourneyStep.journey_id == journey_id)
        .order_by(SopJourneySend.due_at.desc()).limit(limit)))
