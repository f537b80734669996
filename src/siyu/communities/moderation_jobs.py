"""Jobs of red-line moderation and group health (siyu.communities.moderation, .health).

- `chat.group_messages` (the archive stored new group messages; ids only): moderate the members'
  messages of that range. A hit is unique per msgid, so a re-run or a redelivery changes nothing.
- `group.left` with quit scene 1 (the owner or an admin removed the member): the member's open hits
  in that group close as removed — the owner's task is done.
- `communities.daily_health` (every day at 00:30 in Shanghai): each corp's groups' health of the day
  just ended, one `communities.corp_health` job per corp."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.communities import health, moderation
from siyu.communities.models import GroupChat
from siyu.jobs.events import subscribe
from siyu.jobs.registry import JobContext, PermanentFailure, builtin_schedule, job_handler
from siyu.jobs.service import enqueue

log = logging.getLogger(__name__)

CORP_HEALTH = "communities.corp_health"
MAX_ID = 2**63 - 1


def _id(payload: dict[str, Any], key: str) -> int:
    value = payload.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_ID:
        raise PermanentFailure(f"payload.{key} is not a row id")
    return value


@subscribe("chat.group_messages", name="communities.moderate_group_messages")
def moderate_group_messages(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    """Scan the members' messages the archive just stored for red lines."""
    if job.corp_id is None:
        raise PermanentFailure("a moderation job without a corp")
    first, last = _id(payload, "first_id"), _id(payload, "last_id")
    if last < first:
        raise PermanentFailure("payload.last_id is before payload.first_id")
    hits = moderation.moderate_range(session, corp_id=job.corp_id, first_id=first, last_id=last)
    if hits:
        log.info("red-line hits in groups of corp %s: %d", job.corp_id, len(hits))


@subscribe("group.left", name="communities.removed_offender")
def removed_offender(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    """The owner removed a member: their open red-line hits in the group are handled."""
    if job.corp_id is None or payload.get("quit_scene") != 1:
        return
    chat_id, external_userid = payload.get("chat_id"), payload.get("external_userid")
    if not isinstance(chat_id, str) or not isinstance(external_userid, str):
        return
    at = None
    try:
        at = dt.datetime.fromisoformat(str(payload.get("left_at")))
    except ValueError:
        pass
    moderation.close_removed(session, corp_id=job.corp_id, chat_id=chat_id, external_userid=external_userid, at=at)


@job_handler(CORP_HEALTH, max_attempts=3)
def corp_health(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    """One corp's group health of one day (payload.day, YYYY-MM-DD)."""
    if job.corp_id is None:
        raise PermanentFailure("a health job without a corp")
    try:
        day = dt.date.fromisoformat(str(payload.get("day")))
    except ValueError:
        raise PermanentFailure("payload.day is not a date") from None
    result = health.store_corp(session, corp_id=job.corp_id, day=day)
    log.info("group health of corp %s on %s: %s", job.corp_id, day, result)


@job_handler("communities.daily_health")
def daily_health(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    """Every night: the health of the day just ended, for each corp that has groups."""
    day = health.china_today() - dt.timedelta(days=1)
    for corp_id in session.scalars(select(GroupChat.corp_id).distinct()):
        enqueue(session, name=CORP_HEALTH, payload={"day": day.isoformat()}, corp_id=corp_id,
                idempotency_key=f"{CORP_HEALTH}:{corp_id}:{day.isoformat()}")


builtin_schedule("communities.daily_health", cron="30 0 * * *", name="communities.daily_health")
