"""Acquisition's figures on the home page: an advisor's calls, reply tasks and follow-ups; for
operations the day's adds against the last week, codes near their caps and failed welcomes."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.acquisition import leads
from siyu.acquisition.models import (
    ChannelAdd,
    ChannelCode,
    ChannelCodeAdvisor,
    KeywordTask,
    WelcomeFollowUp,
    WelcomeSend,
)
from siyu.acquisition.service import SHANGHAI, shanghai_day
from siyu.console.home import Tile
from siyu.console.i18n import N_
from siyu.db import utcnow
from siyu.tenancy.principal import Principal
from siyu.tenancy.service import get_staff

# A code is "near its cap" once an advisor on it has taken this share of their daily cap today.
NEAR_CAP = 0.8
# Welcome outcomes that mean the customer was not greeted automatically.
WELCOME_FAILED = ("failed", "unknown", "blocked")


def _own_userid(session: Session, principal: Principal) -> str:
    staff = get_staff(session, corp_id=principal.corp_id, staff_id=principal.staff_id) if principal.staff_id else None
    return (staff.wecom_userid if staff else None) or ""


def _count(session: Session, stmt) -> int:
    return session.scalar(stmt) or 0


def advisor_tiles(session: Session, *, principal: Principal, now: dt.datetime) -> list[Tile]:
    corp_id, userid = principal.corp_id, _own_userid(session, principal)
    due, _ = leads.queue(session, corp_id=corp_id, staff_id=principal.staff_id, now=now, limit=1000) \
        if principal.staff_id else ([], [])
    tasks = _count(session, select(func.count()).select_from(KeywordTask).where(
        KeywordTask.corp_id == corp_id, KeywordTask.advisor_userid == userid,
        KeywordTask.state.in_(("open", "sending"))))
    follow_ups = _count(session, select(func.count()).select_from(WelcomeFollowUp).where(
        WelcomeFollowUp.corp_id == corp_id, WelcomeFollowUp.advisor_userid == userid,
        WelcomeFollowUp.done_at.is_(None)))
    return [
        Tile("advisor", "leads_due", N_("Leads to call now"), len(due), "/acquisition/leads/queue",
             tone="warn" if due else "normal"),
        Tile("advisor", "tasks_open", N_("Reply tasks to send"), tasks, "/acquisition/keywords#tasks",
             tone="warn" if tasks else "normal"),
        Tile("advisor", "follow_ups_open", N_("New customers to greet by hand"), follow_ups,
             "/acquisition/follow-ups", tone="warn" if follow_ups else "normal"),
    ]


def operations_tiles(session: Session, *, principal: Principal, now: dt.datetime) -> list[Tile]:
    corp_id = principal.corp_id
    today = shanghai_day(now)
    week = [shanghai_day(now - dt.timedelta(days=d)) for d in range(1, 8)]
    adds_today = _count(session, select(func.count()).select_from(ChannelAdd).where(
        ChannelAdd.corp_id == corp_id, ChannelAdd.day == today))
    adds_week = _count(session, select(func.count()).select_from(ChannelAdd).where(
        ChannelAdd.corp_id == corp_id, ChannelAdd.day.in_(week)))
    average = round(adds_week / 7)
    taken = (select(ChannelAdd.code_id, ChannelAdd.advisor_userid, func.count().label("n"))
             .where(ChannelAdd.corp_id == corp_id, ChannelAdd.day == today)
             .group_by(ChannelAdd.code_id, ChannelAdd.advisor_userid).subquery())
    near = _count(session, select(func.count(func.distinct(ChannelCodeAdvisor.code_id)))
                  .join(ChannelCode, ChannelCode.id == ChannelCodeAdvisor.code_id)
                  .join(taken, (taken.c.code_id == ChannelCodeAdvisor.code_id)
                        & (taken.c.advisor_userid == ChannelCodeAdvisor.userid))
                  .where(ChannelCode.corp_id == corp_id, ChannelCode.status == "active",
                         ChannelCodeAdvisor.daily_cap > 0,
                         taken.c.n >= ChannelCodeAdvisor.daily_cap * NEAR_CAP))
    start = dt.datetime.fromisoformat(today).replace(tzinfo=SHANGHAI).astimezone(dt.UTC)
    failed = _count(session, select(func.count()).select_from(WelcomeSend).where(
        WelcomeSend.corp_id == corp_id, WelcomeSend.at >= start, WelcomeSend.state.in_(WELCOME_FAILED)))
    return [
        Tile("operations", "adds_today", N_("Channel adds today"), adds_today, "/acquisition",
             note=N_("last 7 days: %(n)s a day"), params={"n": average}),
        Tile("operations", "codes_near_cap", N_("Channel codes near an advisor's daily cap"), near,
             "/acquisition", tone="warn" if near else "normal"),
        Tile("operations", "welcome_failures", N_("Welcomes not delivered today"), failed, "/acquisition",
             tone="alert" if failed else "normal"),
    ]


def tiles(session: Session, *, principal: Principal) -> list[Tile]:
    now = utcnow()
    out: list[Tile] = []
    if principal.has_role("advisor"):
        out += advisor_tiles(session, principal=principal, now=now)
    if principal.has_role("operations", "administrator"):
        out += operations_tiles(session, principal=principal, now=now)
    return out
