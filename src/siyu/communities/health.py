"""Group health (社群健康度): is a group alive, and how long do groups of each positioning live?

Groups die within a month without planned content, some within a week (field notes). For each group
and calendar day (Asia/Shanghai) the figures over the 7 days ending that day:

- customers in the group at the end of the day, at the start of the window, joins and leaves (joins
  by the join way's `state` and by join scene);
- messages, customer messages, active speakers (customers who wrote at least once), messages a day;
- the owner's reply times in the group: a customer message opens a wait when none is open, the
  owner's next message closes it; a wait still open at the end counts up to the end;
- days since the last planned content (`last_content_at`);
- the share of the customers who are verified (linked to the firm's record) and who invested.

Score (0–100), each part between 0 and 1:

    score = 100 × (0.35·A + 0.25·C + 0.15·R + 0.15·G + 0.10·Q), rounded
    A  activity     speakers / max(3, 20 % of the customers), at most 1
    C  content      1 when the last planned content is ≤ 2 days old, 0 at ≥ 14 days or never, linear between
    R  replies      the owner's median wait: 1 at ≤ 30 min, 0 at ≥ 8 h, linear between; 1 when nobody waited
    G  retention    1 − leaves / max(2, 20 % of the customers at the window's start), at least 0
    Q  standing     (verified share + invested share) / 2

A group is **dying** (an alert: `group.dying`, the home page and the lists) when it is at least
`MIN_AGE_DAYS` days old, not dismissed, and one of: *quiet* — no customer wrote in the 7 days;
*shrinking* — at least 2 leaves and at least 20 % of the customers at the window's start left;
*low score* — score below `DYING_SCORE`.

Lifetime per positioning: a group has ended when it was dismissed, or when no customer wrote in it
for `ENDED_AFTER_DAYS` days. Its life ended with the last customer message (a group dismissed long
after it fell silent died when it fell silent); a group where no customer ever wrote ended at its
dismissal, or at its creation. Reported: groups, ended, the median lifetime of the ended ones and how many ended
within 7 and within 30 days.

`communities.daily_health` (a built-in schedule shortly after midnight in Shanghai) stores each live
group's figures for the day just ended (`GroupHealth`, one row per group and day: a re-run
overwrites it) and publishes `group.dying` when a group turns dying."""

from __future__ import annotations

import datetime as dt
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.communities.models import GroupChat, GroupHealth, GroupMember, MemberType
from siyu.console.i18n import N_
from siyu.customers.listing import CALENDAR_ZONE
from siyu.db import utcnow

WINDOW_DAYS = 7
SERIES_DAYS = 30
MIN_AGE_DAYS = 3
DYING_SCORE = 35
ENDED_AFTER_DAYS = 14
WEIGHTS = {"activity": 0.35, "content": 0.25, "replies": 0.15, "retention": 0.15, "standing": 0.10}
REASONS = {"quiet": N_("No customer wrote in 7 days"), "shrinking": N_("Many customers left this week"),
           "low_score": N_("Health score below %(n)s")}


def day_start(day: dt.date) -> dt.datetime:
    """Midnight in Shanghai of `day`, in UTC."""
    return dt.datetime.combine(day, dt.time(), CALENDAR_ZONE).astimezone(dt.UTC)


def local_day(at: dt.datetime) -> dt.date:
    return at.astimezone(CALENDAR_ZONE).date()


def china_today() -> dt.date:
    return local_day(utcnow())


# --- planned content: the interface to the SOP domain ------------------------------------------------------------


def last_content_at(session: Session, *, corp_id: int, chat_ids: Sequence[str]) -> dict[str, dt.datetime]:
    """When planned content last went out to each group (by chat id; a group with none is left out).

    The SOP domain answers when it is installed: `siyu.sop.service.last_slot_sent_at(session, *,
    corp_id, chat_ids) -> dict[chat_id, datetime]` (the last slot sent to each group). Until then,
    the last message staff wrote in the group, from the chat archive, stands for it."""
    import importlib.util

    from siyu import domain_module

    sop = domain_module("sop", "service") if importlib.util.find_spec("siyu.sop") is not None else None
    if sop is not None and hasattr(sop, "last_slot_sent_at"):
        return dict(sop.last_slot_sent_at(session, corp_id=corp_id, chat_ids=list(chat_ids)))
    from siyu.compliance.archive import last_group_messages

    return last_group_messages(session, corp_id=corp_id, roomids=chat_ids, staff=True)


# --- one group's figures ----------------------------------------------------------------------------------------


@dataclass
class HealthFigures:
    day: dt.date
    customers: int
    customers_at_start: int
    joins: int
    leaves: int
    joins_by_state: dict[str, int]
    joins_by_scene: dict[int, int]
    messages: int
    customer_messages: int
    speakers: int
    messages_per_day: float
    owner_replies: int
    owner_waiting: int  # waits still open at the end
    owner_median_wait_min: float | None
    days_since_content: int | None
    verified_share: float
    invested_share: float
    parts: dict[str, float] = field(default_factory=dict)
    score: int = 0
    dying: bool = False
    reasons: list[str] = field(default_factory=list)
    age_days: int = 0

    def as_json(self) -> dict:
        out = asdict(self)
        out["day"] = self.day.isoformat()
        out["joins_by_scene"] = {str(k): v for k, v in self.joins_by_scene.items()}
        return out


def _clamp(x: float) -> float:
    return max(0.0, min(1.0, x))


def score_parts(*, speakers: int, customers: int, days_since_content: int | None, median_wait_min: float | None,
                leaves: int, customers_at_start: int, verified_share: float, invested_share: float) -> dict[str, float]:
    """The five parts of the score (see the module), each 0..1."""
    content = 0.0 if days_since_content is None else _clamp((14 - max(days_since_content, 2)) / 12)
    replies = 1.0 if median_wait_min is None else _clamp((480 - max(median_wait_min, 30)) / 450)
    return {
        "activity": _clamp(speakers / max(3.0, 0.2 * customers)),
        "content": content,
        "replies": replies,
        "retention": _clamp(1 - leaves / max(2.0, 0.2 * customers_at_start)),
        "standing": _clamp((verified_share + invested_share) / 2),
    }


def score_of(parts: dict[str, float]) -> int:
    return round(100 * sum(WEIGHTS[k] * v for k, v in parts.items()))


def owner_waits(messages: Sequence, *, owner: str, end: dt.datetime) -> tuple[list[float], int]:
    """The owner's waits in minutes (closed ones, then open ones counted to `end`) and how many are open."""
    waits: list[float] = []
    pending: dt.datetime | None = None
    for m in messages:
        if m.sender == owner:
            if pending is not None:
                waits.append((m.sent_at - pending).total_seconds() / 60)
                pending = None
        elif not m.sender_is_staff and pending is None:
            pending = m.sent_at
    open_ = 0
    if pending is not None:
        waits.append((end - pending).total_seconds() / 60)
        open_ = 1
    return waits, open_


def _in_group(stays: Sequence[GroupMember], at: dt.datetime) -> list[GroupMember]:
    return [s for s in stays if s.joined_at < at and (s.left_at is None or s.left_at >= at)]


def compute(session: Session, *, group: GroupChat, day: dt.date, window: int = WINDOW_DAYS) -> HealthFigures:
    """The group's figures over the `window` days ending with `day` (Shanghai), its score and whether it is dying."""
    from siyu.compliance.archive import group_activity
    from siyu.customers.service import customer_standing

    end = day_start(day + dt.timedelta(days=1))
    start = end - dt.timedelta(days=window)
    stays = list(session.scalars(select(GroupMember).where(GroupMember.group_id == group.id,
                                                           GroupMember.member_type == MemberType.CUSTOMER.value)))
    now_in = _in_group(stays, end)
    joins = [s for s in stays if start <= s.joined_at < end]
    leaves = [s for s in stays if s.left_at is not None and start <= s.left_at < end]
    messages = group_activity(session, corp_id=group.corp_id, roomids=[group.chat_id], since=start, until=end)
    customer_msgs = [m for m in messages if not m.sender_is_staff]
    waits, waiting = owner_waits(messages, owner=group.owner_userid, end=min(end, utcnow()))
    content = last_content_at(session, corp_id=group.corp_id, chat_ids=[group.chat_id]).get(group.chat_id)
    days_since = (day - local_day(content)).days if content is not None and content < end else None
    standing = customer_standing(session, corp_id=group.corp_id, external_userids=[s.member_id for s in now_in])
    n = len(now_in)
    verified = sum(1 for s in now_in if (c := standing.get(s.member_id)) and c.verified) / n if n else 0.0
    invested = sum(1 for s in now_in if (c := standing.get(s.member_id)) and c.invested) / n if n else 0.0
    at_start = len(_in_group(stays, start))
    median = statistics.median(waits) if waits else None
    parts = score_parts(speakers=len({m.sender for m in customer_msgs}), customers=n, days_since_content=days_since,
                        median_wait_min=median, leaves=len(leaves), customers_at_start=at_start,
                        verified_share=verified, invested_share=invested)
    figures = HealthFigures(
        day=day, customers=n, customers_at_start=at_start, joins=len(joins), leaves=len(leaves),
        joins_by_state=dict(Counter(s.state or "" for s in joins).most_common()),
        joins_by_scene=dict(Counter(s.join_scene for s in joins)), messages=len(messages),
        customer_messages=len(customer_msgs), speakers=len({m.sender for m in customer_msgs}),
        messages_per_day=round(len(messages) / window, 1), owner_replies=len(waits) - waiting,
        owner_waiting=waiting, owner_median_wait_min=round(median, 1) if median is not None else None,
        days_since_content=days_since, verified_share=round(verified, 3), invested_share=round(invested, 3),
        parts={k: round(v, 3) for k, v in parts.items()}, score=score_of(parts))
    created = group.wecom_created_at or group.created_at
    figures.age_days = (day - local_day(created)).days
    if figures.age_days >= MIN_AGE_DAYS and group.dismissed_at is None:
        if not customer_msgs:
            figures.reasons.append("quiet")
        if len(leaves) >= 2 and len(leaves) >= 0.2 * at_start:
            figures.reasons.append("shrinking")
        if figures.score < DYING_SCORE:
            figures.reasons.append("low_score")
        figures.dying = bool(figures.reasons)
    return figures


def store(session: Session, *, group: GroupChat, day: dt.date) -> tuple[GroupHealth, bool]:
    """Compute and store the group's health of `day` (overwriting a row of the same day). Returns the
    row and whether the group turned dying (it was not on the day before, or nothing was stored then)."""
    figures = compute(session, group=group, day=day)
    row = session.scalar(select(GroupHealth).where(GroupHealth.group_id == group.id, GroupHealth.day == day))
    if row is None:
        row = GroupHealth(corp_id=group.corp_id, group_id=group.id, day=day, score=0)
        session.add(row)
    row.score, row.dying, row.reasons, row.figures = figures.score, figures.dying, figures.reasons, figures.as_json()
    session.flush()
    previous = session.scalar(select(GroupHealth.dying).where(GroupHealth.group_id == group.id,
                                                              GroupHealth.day == day - dt.timedelta(days=1)))
    turned = figures.dying and not previous
    if turned:
        from siyu.jobs.events import publish

        publish(session, "group.dying", {"group_id": group.id, "chat_id": group.chat_id, "day": day.isoformat(),
                                         "score": figures.score, "reasons": figures.reasons,
                                         "owner_userid": group.owner_userid},
                corp_id=group.corp_id, key=f"{group.id}:{day.isoformat()}")
    return row, turned


def store_corp(session: Session, *, corp_id: int, day: dt.date) -> dict[str, int]:
    """The day's health of every live group of the corp."""
    groups = list(session.scalars(select(GroupChat).where(GroupChat.corp_id == corp_id,
                                                          GroupChat.dismissed_at.is_(None))))
    dying = turned = 0
    for group in groups:
        row, new = store(session, group=group, day=day)
        dying += row.dying
        turned += new
    return {"groups": len(groups), "dying": dying, "turned_dying": turned}


def latest(session: Session, *, group_ids: Sequence[int]) -> dict[int, GroupHealth]:
    """Each group's most recent stored health."""
    out: dict[int, GroupHealth] = {}
    ids = sorted(set(group_ids))
    for i in range(0, len(ids), 500):
        for row in session.scalars(select(GroupHealth).where(GroupHealth.group_id.in_(ids[i:i + 500]))
                                   .order_by(GroupHealth.day)):
            out[row.group_id] = row
    return out


# --- series for the group page ----------------------------------------------------------------------------------


def series(session: Session, *, group: GroupChat, days: int = SERIES_DAYS, today: dt.date | None = None) -> dict:
    """Per day over the last `days` days: customers in the group at the day's end, messages, active
    speakers, and the stored score (None where none was computed)."""
    from siyu.compliance.archive import group_activity

    today = today or china_today()
    first = today - dt.timedelta(days=days - 1)
    x = [first + dt.timedelta(days=i) for i in range(days)]
    stays = list(session.scalars(select(GroupMember).where(GroupMember.group_id == group.id,
                                                           GroupMember.member_type == MemberType.CUSTOMER.value)))
    members = [len(_in_group(stays, day_start(d + dt.timedelta(days=1)))) for d in x]
    messages = group_activity(session, corp_id=group.corp_id, roomids=[group.chat_id], since=day_start(first),
                              until=day_start(today + dt.timedelta(days=1)))
    per_day: dict[dt.date, int] = Counter()
    speakers: dict[dt.date, set[str]] = {}
    for m in messages:
        d = local_day(m.sent_at)
        per_day[d] += 1
        if not m.sender_is_staff:
            speakers.setdefault(d, set()).add(m.sender)
    scores = dict(session.execute(select(GroupHealth.day, GroupHealth.score).where(
        GroupHealth.group_id == group.id, GroupHealth.day >= first)).all())
    return {"x": [d.isoformat() for d in x], "members": members, "messages": [per_day.get(d, 0) for d in x],
            "speakers": [len(speakers.get(d, ())) for d in x], "scores": [scores.get(d) for d in x]}


# --- lifetime per positioning -------------------------------------------------------------------------------------


@dataclass
class Lifetime:
    positioning: str
    groups: int
    ended: int
    median_days: float | None
    within_week: int
    within_month: int


def lifetimes(session: Session, *, corp_id: int, group_ids: Sequence[int] | None = None,
              now: dt.datetime | None = None) -> list[Lifetime]:
    """How long groups live, per positioning (see the module for when a group has ended)."""
    from siyu.compliance.archive import last_group_messages

    now = now or utcnow()
    q = select(GroupChat).where(GroupChat.corp_id == corp_id)
    if group_ids is not None:
        q = q.where(GroupChat.id.in_(list(group_ids)))
    groups = list(session.scalars(q))
    last = last_group_messages(session, corp_id=corp_id, roomids=[g.chat_id for g in groups], staff=False)
    by: dict[str, list[float | None]] = {}
    for g in groups:
        created = g.wecom_created_at or g.created_at
        active = last.get(g.chat_id) or created
        if g.dismissed_at is not None:
            end = last[g.chat_id] if g.chat_id in last else g.dismissed_at
        elif now - active >= dt.timedelta(days=ENDED_AFTER_DAYS):
            end = active
        else:
            end = None
        by.setdefault(g.positioning, []).append(None if end is None else max(0.0, (end - created).total_seconds()
                                                                              / 86400))
    out = []
    for positioning, lives in sorted(by.items()):
        ended = [v for v in lives if v is not None]
        out.append(Lifetime(positioning=positioning, groups=len(lives), ended=len(ended),
                            median_days=round(statistics.median(ended), 1) if ended else None,
                            within_week=sum(1 for v in ended if v <= 7), within_month=sum(1 for v in ended if v <= 30)))
    return out


def dying_groups(session: Session, *, group_ids: Sequence[int]) -> list[GroupHealth]:
    """The groups among `group_ids` whose latest stored health says dying."""
    return [row for row in latest(session, group_ids=group_ids).values() if row.dying]
