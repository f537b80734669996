"""Subscribers to WeCom's group events and the group sync jobs.

Each `change_external_chat` event (create; update with add_member, del_member, change_owner,
change_name, change_notice; dismiss) makes its group read again from `groupchat/get`, which is the
source of truth: the event says something changed, the read says what the group is now. Applying a
read is idempotent (`siyu.communities.sync`), so a redelivered callback or a re-run job changes
nothing. The call holds no database transaction (the handler's session is used only after it).

`communities.sync_corp` is the full sync of one corp: every chat WeCom lists, and every chat Siyu
knows that WeCom no longer lists (so a missed dismiss is found), each read by its own
`communities.fetch_group` job. It runs every night and on demand from the console."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from sqlalchemy.orm import Session

from siyu.communities import sync
from siyu.db import session_scope, utcnow
from siyu.errors import NotFound
from siyu.jobs.events import subscribe
from siyu.jobs.registry import JobContext, PermanentFailure, builtin_schedule, job_handler
from siyu.jobs.service import enqueue

log = logging.getLogger(__name__)

SYNC_CORP = "communities.sync_corp"
FETCH_GROUP = "communities.fetch_group"
CHAT_ID_MAX = 64


def _corp_id(job: JobContext) -> int:
    if job.corp_id is None:
        raise PermanentFailure("a group job without a corp")
    return job.corp_id


def _chat_id(payload: dict[str, Any]) -> str:
    value = payload.get("chat_id")
    if not isinstance(value, str) or not value or len(value) > CHAT_ID_MAX:
        raise PermanentFailure("payload.chat_id is missing or not a WeCom chat id")
    return value


def _event_time(payload: dict[str, Any]) -> dt.datetime:
    return sync.epoch(payload.get("create_time"), utcnow())  # type: ignore[return-value]


def _member_ids(payload: dict[str, Any]) -> list[str]:
    items = payload.get("member_change_list")
    items = items if isinstance(items, list) else [items] if isinstance(items, str) else []
    return [i for i in items if isinstance(i, str) and i]


def wecom_client(corp_id: int):
    """The corp's WeCom client, read in a short transaction of its own; None when not connected."""
    from siyu.wecom.service import client_for_corp

    with session_scope() as s:
        try:
            return client_for_corp(s, corp_id=corp_id)
        except NotFound:
            return None


def refresh_group(session: Session, *, corp_id: int, chat_id: str, at: dt.datetime | None = None,
                  quit_scene: int | None = None, left_ids: list[str] | None = None) -> sync.ApplyResult | None:
    """Read the group from WeCom and apply it; a group WeCom no longer finds is marked dismissed.
    None when the corp has no WeCom connection."""
    from siyu.wecom.errors import InvalidChatId

    client = wecom_client(corp_id)
    if client is None:
        log.info("corp %s has no WeCom connection: group not read", corp_id)
        return None
    try:
        detail = client.get_group_chat(chat_id, need_name=True)
    except InvalidChatId:
        sync.mark_dismissed(session, corp_id=corp_id, chat_id=chat_id, at=at or utcnow())
        return sync.ApplyResult()
    _, result = sync.apply_group_chat(session, corp_id=corp_id, detail=detail, at=at, quit_scene=quit_scene,
                                      left_ids=left_ids or ())
    return result


def _refresh_from_event(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    corp_id, chat_id = _corp_id(job), _chat_id(payload)
    quit_scene = payload.get("quit_scene")
    try:
        quit_scene = int(quit_scene) if quit_scene not in (None, "") else None
    except (TypeError, ValueError):
        quit_scene = None
    result = refresh_group(session, corp_id=corp_id, chat_id=chat_id, at=_event_time(payload),
                           quit_scene=quit_scene, left_ids=_member_ids(payload))
    if result is not None:
        log.info("group of corp %s read after %s/%s: %s", corp_id, payload.get("change_type"),
                 payload.get("update_detail", ""), result.as_dict())


@subscribe("group.created", name="communities.group_created", queue="wecom")
def group_created(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    """客户群创建: read the new group."""
    _refresh_from_event(session, payload, job)


@subscribe("group.updated", name="communities.group_updated", queue="wecom")
def group_updated(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    """客户群变更 (change_owner, change_name, change_notice, or a detail WeCom adds later): read it again."""
    _refresh_from_event(session, payload, job)


@subscribe("group.member_joined", name="communities.member_joined", queue="wecom")
def member_joined(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    """成员入群 (add_member, with JoinScene and MemChangeCnt): the read gives each new member's join
    time, scene, inviter and join way state."""
    _refresh_from_event(session, payload, job)


@subscribe("group.member_left", name="communities.member_left", queue="wecom")
def member_left(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    """成员退群 (del_member, with QuitScene): the members no longer listed left at the event's time."""
    _refresh_from_event(session, payload, job)


@subscribe("group.dismissed", name="communities.group_dismissed")
def group_dismissed(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    """客户群解散: no read (WeCom no longer knows the group)."""
    sync.mark_dismissed(session, corp_id=_corp_id(job), chat_id=_chat_id(payload), at=_event_time(payload))


@job_handler(FETCH_GROUP, max_attempts=8)
def fetch_group(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    """One group of a full sync."""
    refresh_group(session, corp_id=_corp_id(job), chat_id=_chat_id(payload))


@job_handler(SYNC_CORP, max_attempts=5)
def sync_corp(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    """Full sync of one corp: list every chat (`groupchat/list`, paged by cursor, a read holding no
    transaction) and queue one read per chat, plus one per chat Siyu knows that WeCom did not list."""
    corp_id = _corp_id(job)
    client = wecom_client(corp_id)
    if client is None:
        log.info("corp %s has no WeCom connection: groups not synced", corp_id)
        return
    listed = [c.chat_id for c in client.iter_group_chats(status_filter=0)]
    run = payload.get("run") or str(job.id)
    chat_ids = list(dict.fromkeys([*listed, *sync.known_chat_ids(session, corp_id=corp_id)]))
    for chat_id in chat_ids:
        enqueue(session, name=FETCH_GROUP, payload={"chat_id": chat_id}, corp_id=corp_id, queue="wecom",
                idempotency_key=f"{FETCH_GROUP}:{corp_id}:{run}:{chat_id}"[:200])
    log.info("group sync of corp %s: %d chats listed, %d reads queued", corp_id, len(listed), len(chat_ids))


def enqueue_sync(session: Session, *, corp_id: int, run: str) -> None:
    enqueue(session, name=SYNC_CORP, payload={"run": run}, corp_id=corp_id, queue="wecom",
            idempotency_key=f"{SYNC_CORP}:{corp_id}:{run}"[:200])


@job_handler("communities.daily_sync")
def daily_sync(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    """Every night: the full group sync of each corp connected to WeCom, once per day."""
    from siyu.customers.listing import CALENDAR_ZONE
    from siyu.tenancy.service import connected_corp_ids

    day = utcnow().astimezone(CALENDAR_ZONE).date().isoformat()
    for corp_id in connected_corp_ids(session):
        enqueue_sync(session, corp_id=corp_id, run=f"daily-{day}")


builtin_schedule("communities.daily_sync", cron="40 2 * * *", name="communities.daily_sync")


# Join ways and joining, red-line moderation and group health register their jobs on import.
from siyu.communities import joinway_jobs, moderation_jobs  # noqa: E402,F401
