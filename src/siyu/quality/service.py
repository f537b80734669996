"""Service quality (服务质量): first-reply time per advisor in working time, reply-timeout alerts,
customers lost and deleted, and a daily report per corp.

Working hours: each corp's `QualitySettings` (default Mon–Fri 09:00–18:00 Asia/Shanghai), China's
public holidays off and make-up working days on (the `chinese_calendar` package; a year it does not
know falls back to the weekdays), the reply timeout in working minutes (default 30), and whether
messages sent on non-working days count (a wait opened on one is kept but left out of the figures).

Waits: in a 1-on-1 archived chat (roomid ''), the first customer message not yet answered opens a
wait; the advisor's next message closes it; its length is the working time in between (17:50 on a
Friday answered at 09:10 on Monday = 20 minutes). After each ingest `update_waits` recomputes only
the chats that got messages, from the earliest new message (or the start of the wait that spans it),
so messages that arrive late or twice give the same waits as messages in order. Waits are keyed by
their opening message, so a recomputation keeps their ids and alerts.

Timeouts: `raise_timeouts` (a job every minute) marks open waits longer than the timeout in working
time (`timeout_at`, once per wait) and publishes `quality.reply_timeout`; the alert is closed when the
wait is (the advisor answered).

Report: `compute_report` per China calendar day: per advisor customer messages, waits, replied,
median and p90 first-reply working minutes, timeouts, customers lost (deleted the advisor) and
deleted (by the advisor, read through `customers.service.follow_endings`), and corp totals; stored
by a job at 08:00 for the day before (`store_report`)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
import re
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from siyu.compliance.models import ArchiveMessage
from siyu.db import utcnow
from siyu.errors import InvalidInput
from siyu.quality.models import QualityReport, QualitySettings, ReplyWait
from siyu.tenancy import audit
from siyu.tenancy.models import Staff
from siyu.tenancy.principal import Principal
from siyu.tenancy.service import visible_staff_ids

ZONE = audit.CALENDAR_ZONE
ALERT_LOOKBACK = dt.timedelta(days=14)  # older unanswered waits raise no alert
TIMEOUT_EVENT = "quality.reply_timeout"
READER_ROLES = ("administrator", "operations", "compliance", "auditor", "advisor")
EDITOR_ROLES = ("administrator", "operations")
TREND_DAYS = 14
ZERO = dt.timedelta()
_HHMM = re.compile(r"([01]\d|2[0-3]):([0-5]\d)|24:00")


# --- working time ------------------------------------------------------------------------------------


@lru_cache(maxsize=4096)
def _holiday(day: dt.date) -> str:
    """'holiday' (a public holiday), 'makeup' (a weekend made a working day), '' otherwise or unknown."""
    try:
        import chinese_calendar
    except ImportError:  # pragma: no cover - a dependency; weekdays only without it
        return ""
    try:
        off, name = chinese_calendar.get_holiday_detail(day)
    except NotImplementedError:  # a year the calendar does not know yet
        return ""
    if name is None:
        return ""
    return "holiday" if off else "makeup"


@dataclass(frozen=True)
class WorkingHours:
    weekdays: frozenset[int] = frozenset(range(5))  # Monday = 0
    start_minute: int = 9 * 60
    end_minute: int = 18 * 60
    public_holidays: bool = True

    def is_working_day(self, day: dt.date) -> bool:
        if self.public_holidays:
            kind = _holiday(day)
            if kind == "holiday":
                return False
            if kind == "makeup":
                return True
        return day.weekday() in self.weekdays

    def working_time(self, start: dt.datetime, end: dt.datetime) -> dt.timedelta:
        """The working time between two instants (aware datetimes)."""
        if end <= start or self.end_minute <= self.start_minute:
            return ZERO
        day, last = start.astimezone(ZONE).date(), end.astimezone(ZONE).date()
        total = ZERO
        while day <= last:
            if self.is_working_day(day):
                midnight = dt.datetime.combine(day, dt.time(), ZONE)
                a = max(start, midnight + dt.timedelta(minutes=self.start_minute))
                b = min(end, midnight + dt.timedelta(minutes=self.end_minute))
                if b > a:
                    total += b - a
            day += dt.timedelta(days=1)
        return total


def hours_of(settings: QualitySettings) -> WorkingHours:
    return WorkingHours(weekdays=frozenset(settings.weekdays or []), start_minute=settings.day_start,
                        end_minute=settings.day_end, public_holidays=settings.public_holidays)


# --- settings ----------------------------------------------------------------------------------------


def get_settings(session: Session, *, corp_id: int) -> QualitySettings:
    """The corp's settings (defaults when never saved; not stored until changed)."""
    row = session.get(QualitySettings, corp_id)
    if row is None:
        row = QualitySettings(corp_id=corp_id, weekdays=[0, 1, 2, 3, 4], day_start=540, day_end=1080,
                              public_holidays=True, timeout_minutes=30, count_off_days=True, updated_by="")
    return row


def _minute(value: object, field: str) -> int:
    text = value.strip() if isinstance(value, str) else ""
    if not _HHMM.fullmatch(text):
        raise InvalidInput("a time of day HH:MM", field=field)
    h, m = text.split(":")
    return int(h) * 60 + int(m)


def hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def update_settings(session: Session, *, corp_id: int, actor: Principal | str, weekdays: Iterable[object],
                    day_start: str, day_end: str, public_holidays: bool, timeout_minutes: object,
                    count_off_days: bool) -> QualitySettings:
    """Check and save the corp's working hours (audited); a bad value raises InvalidInput naming it."""
    days: set[int] = set()
    for d in weekdays:
        if isinstance(d, bool) or str(d).strip() not in {str(i) for i in range(7)}:
            raise InvalidInput("weekdays are 0 (Monday) to 6 (Sunday)", field="weekdays")
        days.add(int(str(d).strip()))
    if not days:
        raise InvalidInput("choose at least one working day", field="weekdays")
    start, end = _minute(day_start, "day_start"), _minute(day_end, "day_end")
    if end <= start:
        raise InvalidInput("the working day must end after it starts", field="day_end")
    try:
        timeout = int(str(timeout_minutes).strip())
    except ValueError:
        raise InvalidInput("the timeout is a number of minutes", field="timeout_minutes") from None
    if not 1 <= timeout <= 24 * 60:
        raise InvalidInput("the timeout is 1 to 1440 minutes", field="timeout_minutes")
    row = session.get(QualitySettings, corp_id)
    if row is None:
        row = QualitySettings(corp_id=corp_id)
        session.add(row)
    before = {"weekdays": row.weekdays, "day_start": row.day_start, "day_end": row.day_end,
              "public_holidays": row.public_holidays, "timeout_minutes": row.timeout_minutes,
              "count_off_days": row.count_off_days}
    row.weekdays, row.day_start, row.day_end = sorted(days), start, end
    row.public_holidays, row.timeout_minutes, row.count_off_days = bool(public_holidays), timeout, bool(count_off_days)
    row.updated_by = actor.label if isinstance(actor, Principal) else str(actor)
    row.updated_at = utcnow()
    session.flush()
    audit.record(session, corp_id=corp_id, actor=actor, action="quality_settings.updated",
                 target_type="quality_settings", target_id=corp_id,
                 detail={"before": before, "after": {"weekdays": row.weekdays, "day_start": start, "day_end": end,
                                                     "public_holidays": row.public_holidays,
                                                     "timeout_minutes": timeout,
                                                     "count_off_days": row.count_off_days}})
    return row


# --- waits -------------------------------------------------------------------------------------------


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def update_waits(session: Session, *, corp_id: int, first_id: int, last_id: int) -> int:
    """Recompute the waits of the 1-on-1 chats that got messages with ids in [first_id, last_id]
    (one ingest); returns the number of chats recomputed. Safe to run again."""
    rows = session.execute(
        select(ArchiveMessage.staff_userid, ArchiveMessage.customer_userid, func.min(ArchiveMessage.sent_at))
        .where(ArchiveMessage.corp_id == corp_id, ArchiveMessage.id >= first_id, ArchiveMessage.id <= last_id,
               ArchiveMessage.roomid == "", ArchiveMessage.staff_userid != "", ArchiveMessage.customer_userid != "")
        .group_by(ArchiveMessage.staff_userid, ArchiveMessage.customer_userid)).all()
    if not rows:
        return 0
    settings = get_settings(session, corp_id=corp_id)
    for staff, customer, since in rows:
        recompute_conversation(session, corp_id=corp_id, staff_userid=staff, customer_userid=customer,
                               since=_aware(since), settings=settings)
    return len(rows)


def recompute_conversation(session: Session, *, corp_id: int, staff_userid: str, customer_userid: str,
                           since: dt.datetime, settings: QualitySettings | None = None) -> list[ReplyWait]:
    """Rebuild one chat's waits from `since` (moved back to the start of a wait that spans it)."""
    settings = settings or get_settings(session, corp_id=corp_id)
    hours = hours_of(settings)
    conv = (ReplyWait.corp_id == corp_id, ReplyWait.staff_userid == staff_userid,
            ReplyWait.customer_userid == customer_userid)
    spanning = session.scalar(select(func.min(ReplyWait.opened_at)).where(
        *conv, ReplyWait.opened_at <= since, or_(ReplyWait.closed_at.is_(None), ReplyWait.closed_at >= since)))
    anchor = min(since, _aware(spanning)) if spanning is not None else since
    old = {w.opened_msgid: w for w in session.scalars(select(ReplyWait).where(*conv, ReplyWait.opened_at >= anchor))}
    messages = session.execute(
        select(ArchiveMessage.msgid, ArchiveMessage.sender_is_staff, ArchiveMessage.sent_at)
        .where(ArchiveMessage.corp_id == corp_id, ArchiveMessage.customer_userid == customer_userid,
               ArchiveMessage.staff_userid == staff_userid, ArchiveMessage.roomid == "",
               ArchiveMessage.sent_at >= anchor)
        .order_by(ArchiveMessage.sent_at, ArchiveMessage.msgid)).all()
    found: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    for msgid, from_staff, sent_at in messages:
        sent_at = _aware(sent_at)
        if not from_staff:
            if current is None:
                current = {"msgid": msgid, "opened_at": sent_at, "count": 1, "closed_at": None, "reply": ""}
            else:
                current["count"] += 1
        elif current is not None:
            current.update(closed_at=sent_at, reply=msgid)
            found.append(current)
            current = None
    if current is not None:
        found.append(current)
    out = []
    for w in found:
        row = old.pop(w["msgid"], None)
        if row is None:
            row = ReplyWait(corp_id=corp_id, staff_userid=staff_userid, customer_userid=customer_userid,
                            opened_msgid=w["msgid"])
            session.add(row)
        row.opened_at, row.customer_messages = w["opened_at"], w["count"]
        row.closed_at, row.reply_msgid = w["closed_at"], w["reply"]
        row.working_seconds = (int(hours.working_time(w["opened_at"], w["closed_at"]).total_seconds())
                               if w["closed_at"] else None)
        row.counted = settings.count_off_days or hours.is_working_day(w["opened_at"].astimezone(ZONE).date())
        out.append(row)
    for gone in old.values():  # its opening message now falls inside another wait: that wait keeps its alert
        if gone.timeout_at is not None:
            for row in out:
                if row.opened_at <= _aware(gone.opened_at) and (row.closed_at is None or
                                                                row.closed_at >= _aware(gone.opened_at)):
                    row.timeout_at = row.timeout_at or gone.timeout_at
        session.delete(gone)
    session.flush()
    return out


def raise_timeouts(session: Session, *, now: dt.datetime | None = None, corp_id: int | None = None
                   ) -> list[ReplyWait]:
    """Mark each open wait past its corp's timeout (working time) once and publish the event."""
    from siyu.jobs.events import publish

    now = now or utcnow()
    q = select(ReplyWait).where(ReplyWait.closed_at.is_(None), ReplyWait.timeout_at.is_(None),
                                ReplyWait.counted.is_(True), ReplyWait.opened_at >= now - ALERT_LOOKBACK)
    if corp_id is not None:
        q = q.where(ReplyWait.corp_id == corp_id)
    raised: list[ReplyWait] = []
    settings_of: dict[int, QualitySettings] = {}
    for wait in session.scalars(q.order_by(ReplyWait.corp_id, ReplyWait.opened_at)):
        settings = settings_of.get(wait.corp_id) or settings_of.setdefault(
            wait.corp_id, get_settings(session, corp_id=wait.corp_id))
        limit = dt.timedelta(minutes=settings.timeout_minutes)
        opened = _aware(wait.opened_at)
        if now - opened < limit or hours_of(settings).working_time(opened, now) < limit:
            continue
        wait.timeout_at = now
        raised.append(wait)
        publish(session, TIMEOUT_EVENT, {"wait_id": wait.id, "staff_userid": wait.staff_userid,
                                         "customer_userid": wait.customer_userid,
                                         "opened_at": opened.isoformat(), "timeout_minutes": settings.timeout_minutes},
                corp_id=wait.corp_id, key=f"{wait.corp_id}:{wait.opened_msgid}")
    session.flush()
    return raised


@dataclass(frozen=True)
class OpenAlert:
    wait_id: int
    staff_userid: str
    customer_userid: str
    opened_at: dt.datetime
    timeout_at: dt.datetime
    working_minutes: int


def open_alerts(session: Session, *, corp_id: int, staff_userids: set[str] | None = None,
                now: dt.datetime | None = None) -> list[OpenAlert]:
    """Reply-timeout alerts not yet answered, longest wait first."""
    now = now or utcnow()
    q = select(ReplyWait).where(ReplyWait.corp_id == corp_id, ReplyWait.timeout_at.is_not(None),
                                ReplyWait.closed_at.is_(None))
    if staff_userids is not None:
        q = q.where(ReplyWait.staff_userid.in_(sorted(staff_userids) or [""]))
    hours = hours_of(get_settings(session, corp_id=corp_id))
    out = [OpenAlert(wait_id=w.id, staff_userid=w.staff_userid, customer_userid=w.customer_userid,
                     opened_at=_aware(w.opened_at), timeout_at=_aware(w.timeout_at),
                     working_minutes=int(hours.working_time(_aware(w.opened_at), now).total_seconds() // 60))
           for w in session.scalars(q.order_by(ReplyWait.opened_at).limit(500))]
    return out


# --- the daily report --------------------------------------------------------------------------------


def day_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime.combine(day, dt.time(), ZONE)
    return start.astimezone(dt.UTC), (start + dt.timedelta(days=1)).astimezone(dt.UTC)


def china_today(now: dt.datetime | None = None) -> dt.date:
    return (now or utcnow()).astimezone(ZONE).date()


def _minutes(seconds: list[int], q: float) -> float | None:
    if not seconds:
        return None
    ordered = sorted(seconds)
    if q == 0.5:
        value = statistics.median(ordered)
    else:  # nearest rank
        value = ordered[max(0, math.ceil(q * len(ordered)) - 1)]
    return round(value / 60, 1)


def _figures(messages: int, waits: list[tuple[int | None, bool]], lost: int, deleted: int) -> dict[str, Any]:
    replied = [s for s, _ in waits if s is not None]
    return {"customer_messages": messages, "waits": len(waits), "replied": len(replied),
            "median_minutes": _minutes(replied, 0.5), "p90_minutes": _minutes(replied, 0.9),
            "timeouts": sum(1 for _, t in waits if t), "lost": lost, "deleted": deleted}


def compute_report(session: Session, *, corp_id: int, day: dt.date, now: dt.datetime | None = None) -> dict[str, Any]:
    """The day's figures per advisor and for the corp (see the module)."""
    from siyu.customers import service as customers

    now = now or utcnow()
    settings = get_settings(session, corp_id=corp_id)
    hours, limit = hours_of(settings), settings.timeout_minutes * 60
    since, until = day_bounds(day)
    messages = dict(session.execute(
        select(ArchiveMessage.staff_userid, func.count())
        .where(ArchiveMessage.corp_id == corp_id, ArchiveMessage.sent_at >= since, ArchiveMessage.sent_at < until,
               ArchiveMessage.sender_is_staff.is_(False), ArchiveMessage.roomid == "",
               ArchiveMessage.staff_userid != "", ArchiveMessage.customer_userid != "")
        .group_by(ArchiveMessage.staff_userid)).all())
    waits: dict[str, list[tuple[int | None, bool]]] = {}
    for w in session.scalars(select(ReplyWait).where(
            ReplyWait.corp_id == corp_id, ReplyWait.opened_at >= since, ReplyWait.opened_at < until,
            ReplyWait.counted.is_(True))):
        if w.working_seconds is not None:
            late = w.working_seconds >= limit
        else:
            late = w.timeout_at is not None or hours.working_time(_aware(w.opened_at), now).total_seconds() >= limit
        waits.setdefault(w.staff_userid, []).append((w.working_seconds, late))
    endings = customers.follow_endings(session, corp_id=corp_id, since=since, until=until)
    userids = sorted(set(messages) | set(waits) | set(endings))
    names = dict(session.execute(select(Staff.wecom_userid, Staff.name).where(
        Staff.corp_id == corp_id, Staff.wecom_userid.in_(userids or [""]))).all()) if userids else {}
    rows = []
    for u in userids:
        e = endings.get(u, {})
        rows.append({"staff_userid": u, "name": names.get(u, ""),
                     **_figures(messages.get(u, 0), waits.get(u, []), e.get("lost", 0), e.get("deleted", 0))})
    return {
        "day": day.isoformat(), "computed_at": now.astimezone(dt.UTC).isoformat(timespec="seconds"),
        "timeout_minutes": settings.timeout_minutes,
        "working_day": hours.is_working_day(day),
        "advisors": rows,
        "totals": _figures(sum(messages.values()), [w for ws in waits.values() for w in ws],
                           sum(e["lost"] for e in endings.values()), sum(e["deleted"] for e in endings.values())),
    }


def store_report(session: Session, *, corp_id: int, day: dt.date, now: dt.datetime | None = None) -> QualityReport:
    """Compute and keep the day's report (again: replaces it)."""
    data = compute_report(session, corp_id=corp_id, day=day, now=now)
    row = session.scalar(select(QualityReport).where(QualityReport.corp_id == corp_id, QualityReport.day == day))
    if row is None:
        row = QualityReport(corp_id=corp_id, day=day)
        session.add(row)
    row.data, row.computed_at = data, now or utcnow()
    session.flush()
    return row


def get_report(session: Session, *, corp_id: int, day: dt.date, now: dt.datetime | None = None) -> dict[str, Any]:
    """The stored report of the day, or the figures so far (`stored` False) when there is none."""
    row = session.scalar(select(QualityReport).where(QualityReport.corp_id == corp_id, QualityReport.day == day))
    if row is not None:
        return {**row.data, "stored": True}
    return {**compute_report(session, corp_id=corp_id, day=day, now=now), "stored": False}


def restrict(report: dict[str, Any], staff_userids: set[str] | None) -> dict[str, Any]:
    """The report as a viewer limited to some advisors sees it: their rows, totals of those rows."""
    if staff_userids is None:
        return report
    rows = [r for r in report["advisors"] if r["staff_userid"] in staff_userids]
    totals = {k: sum(r[k] for r in rows) for k in ("customer_messages", "waits", "replied", "timeouts", "lost",
                                                   "deleted")}
    if len(rows) == 1:
        totals.update(median_minutes=rows[0]["median_minutes"], p90_minutes=rows[0]["p90_minutes"])
    else:
        totals.update(median_minutes=None, p90_minutes=None)
    return {**report, "advisors": rows, "totals": totals, "restricted": True}


def trend(session: Session, *, corp_id: int, last_day: dt.date, staff_userids: set[str] | None = None,
          days: int = TREND_DAYS, now: dt.datetime | None = None) -> list[dict[str, Any]]:
    """Median first-reply minutes and timeouts of each of the `days` days up to `last_day`."""
    first = last_day - dt.timedelta(days=days - 1)
    stored = {r.day: r.data for r in session.scalars(select(QualityReport).where(
        QualityReport.corp_id == corp_id, QualityReport.day >= first, QualityReport.day <= last_day))}
    out = []
    for i in range(days):
        day = first + dt.timedelta(days=i)
        data = stored.get(day) or compute_report(session, corp_id=corp_id, day=day, now=now)
        data = restrict(data, staff_userids)
        out.append({"day": day.isoformat(), "median_minutes": data["totals"]["median_minutes"],
                    "p90_minutes": data["totals"]["p90_minutes"], "timeouts": data["totals"]["timeouts"]})
    return out


def viewer_userids(session: Session, *, principal: Principal) -> set[str] | None:
    """The advisors (WeCom userids) whose rows the caller sees; None: the whole corp."""
    ids = visible_staff_ids(session, principal=principal)
    if ids is None:
        return None
    return {u for u in session.scalars(select(Staff.wecom_userid).where(
        Staff.corp_id == principal.corp_id, Staff.id.in_(sorted(ids) or [0]))) if u}


CSV_COLUMNS = ("staff_userid", "name", "customer_messages", "waits", "replied", "median_minutes", "p90_minutes",
               "timeouts", "lost", "deleted")


def report_csv(report: dict[str, Any], *, headers: list[str]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(headers)
    for row in report["advisors"]:
        writer.writerow(["" if row[c] is None else row[c] for c in CSV_COLUMNS])
    totals = report["totals"]
    writer.writerow(["", "Σ", *("" if totals[c] is None else totals[c] for c in CSV_COLUMNS[2:])])
    return buf.getvalue()


def export_csv(session: Session, *, principal: Principal, day: dt.date, headers: list[str],
               ip: str | None = None) -> str:
    """The day's report as CSV for the caller (their rows only for an advisor); audited."""
    report = restrict(get_report(session, corp_id=principal.corp_id, day=day),
                      viewer_userids(session, principal=principal))
    audit.record(session, corp_id=principal.corp_id, actor=principal, action="quality_report.exported",
                 target_type="quality_report", target_id=day.isoformat(),
                 detail={"day": day.isoformat(), "rows": len(report["advisors"])}, ip=ip)
    return report_csv(report, headers=headers)
