"""Jobs of join ways and joining: keep each join way at WeCom in line with its set (make it, rotate
full groups out and the next ones in, delete it), attribute every join, and the welcome-to-group
work of a new group in a set (rules posted, announcement task).

WeCom calls hold no database transaction: a short one reads what to do, the call is made, a short
one writes what WeCom now has. `update_join_way` replaces the whole configuration, so a repeated
keep is harmless; the keep re-plans after writing and queues itself again when the set moved on
while it was calling (joins keep arriving during a rotation)."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.orm import Session

from siyu.communities import group_welcome, joinways
from siyu.communities.joinway_models import GroupJoinWay, JoinWayStatus
from siyu.communities.models import GroupSet
from siyu.db import session_scope, utcnow
from siyu.jobs.events import subscribe
from siyu.jobs.registry import JobContext, PermanentFailure, RetryLater, builtin_schedule, job_handler
from siyu.tenancy import audit

log = logging.getLogger(__name__)

BUSY = (45009, 45033, -1)
RETRY_SECONDS = 5.0
REMARK_MAX = 30


def _way_id(payload: dict[str, Any]) -> int:
    value = payload.get("join_way_id")
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise PermanentFailure("payload.join_way_id must be a positive integer")
    return value


@job_handler(joinways.KEEP_JOB, max_attempts=20)
def keep_join_way(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    """Bring one join way at WeCom in line with its set (see `joinways.plan`)."""
    from siyu.communities.jobs import wecom_client
    from siyu.wecom.errors import WeComError

    way_id, corp_id = _way_id(payload), job.corp_id
    if corp_id is None:
        raise PermanentFailure("a join way job without a corp")
    with session_scope() as s:
        way = s.get(GroupJoinWay, way_id)
        if way is None or way.corp_id != corp_id:
            return
        joining = joinways.settings(s, corp_id=corp_id, set_id=way.group_set_id)
        deleted = way.status == JoinWayStatus.DELETED.value
        planned = joinways.plan(s, way=way, joining=joining)
        config_id, current, qr_code, state = way.config_id, list(way.chat_ids or []), way.qr_code, way.state
        remark = (s.get(GroupSet, way.group_set_id).name or "")[:REMARK_MAX]
        base_name, base_id = joining.room_base_name or None, joining.room_base_id
    client = wecom_client(corp_id)
    if client is None:
        log.info("corp %s has no WeCom connection: join way %s not kept", corp_id, way_id)
        return
    try:
        if deleted:
            if config_id:
                client.del_join_way(config_id)
                with session_scope() as s:
                    s.get(GroupJoinWay, way_id).config_id = None
            return
        if not planned.chat_ids:
            _note(way_id, error="the set has no group to list")
            return
        body = dict(scene=2, chat_ids=planned.chat_ids, state=state, remark=remark,
                    auto_create_room=planned.auto_create,
                    room_base_name=base_name if planned.auto_create else None,
                    room_base_id=base_id if planned.auto_create else None)
        if config_id is None:
            config_id = client.add_join_way(**body)
            with session_scope() as s:  # at once: a later failure must not make a second one
                s.get(GroupJoinWay, way_id).config_id = config_id
        elif planned.chat_ids != current:
            client.update_join_way(config_id=config_id, **body)
        if qr_code is None:
            qr_code = client.get_join_way(config_id).qr_code
    except WeComError as exc:
        if exc.errcode in BUSY:
            raise RetryLater(RETRY_SECONDS, f"WeCom busy ({exc.errcode})") from exc
        _note(way_id, error=str(exc)[:300])
        raise
    with session_scope() as s:
        way = s.get(GroupJoinWay, way_id)
        if way.status == JoinWayStatus.DELETED.value:
            joinways.schedule_keep(s, way=way, reason="deleted-late")
            return
        rotated = bool(current) and planned.chat_ids != current
        way.qr_code, way.chat_ids, way.last_error = qr_code, list(planned.chat_ids), None
        if rotated:
            way.rotations += 1
            way.rotated_at = utcnow()
            audit.record(s, corp_id=corp_id, actor="system", action="group_join_way.rotated",
                         target_type="group_join_way", target_id=way.id,
                         detail={"from": current, "to": list(planned.chat_ids)})
        if planned.exhausted and way.status != JoinWayStatus.EXHAUSTED.value:
            way.status, way.exhausted_at = JoinWayStatus.EXHAUSTED.value, utcnow()
            audit.record(s, corp_id=corp_id, actor="system", action="group_join_way.exhausted",
                         target_type="group_join_way", target_id=way.id, detail={"group_set_id": way.group_set_id})
            log.warning("join way %s of corp %s is out of groups below the threshold: operations alerted",
                        way.id, corp_id)
        elif not planned.exhausted and way.status == JoinWayStatus.EXHAUSTED.value:
            way.status, way.exhausted_at = JoinWayStatus.ACTIVE.value, None
        # Joins that arrived while calling may have moved the set on: plan again, queue another keep.
        joining = joinways.settings(s, corp_id=corp_id, set_id=way.group_set_id)
        if joinways.plan(s, way=way, joining=joining).chat_ids != way.chat_ids:
            joinways.schedule_keep(s, way=way, reason="replan")


def send_group_text(client, *, sender: str, chat_id: str, text: str) -> None:
    """A group mass message from the owner to one group; WeCom naming the group in `fail_list` is a
    failed send (not the owner's group, or dismissed)."""
    from siyu.wecom.errors import RecipientFailed

    result = client.add_msg_template(chat_type="group", sender=sender, chat_ids=[chat_id], text=text)
    if chat_id in result.fail_list:
        raise RecipientFailed(chat_id, "externalcontact/add_msg_template")


def _note(way_id: int, *, error: str) -> None:
    with session_scope() as s:
        way = s.get(GroupJoinWay, way_id)
        if way is not None:
            way.last_error = error


@subscribe("group.joined", name="communities.attribute_join", queue="wecom")
def attribute_join(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    """Each customer's join: attributed to its join way, channel and advisor; a listed group at the
    threshold queues its join way's rotation (`joinways.record_join`)."""
    stay_id = payload.get("stay_id")
    if job.corp_id is None:
        raise PermanentFailure("a join without a corp")
    if not isinstance(stay_id, int):
        stay_id = _stay_from_payload(session, job.corp_id, payload)
    if stay_id is not None:
        joinways.record_join(session, corp_id=job.corp_id, stay_id=stay_id)


def _stay_from_payload(session: Session, corp_id: int, payload: dict[str, Any]) -> int | None:
    """The stay a `group.joined` event is about: its group and member, joined at its time."""
    import datetime as dt

    from sqlalchemy import select

    from siyu.communities.models import GroupMember

    group_id, member = payload.get("group_id"), payload.get("external_userid")
    try:
        joined_at = dt.datetime.fromisoformat(str(payload.get("joined_at")))
    except ValueError:
        return None
    if not isinstance(group_id, int) or not isinstance(member, str):
        return None
    return session.scalar(select(GroupMember.id).where(
        GroupMember.corp_id == corp_id, GroupMember.group_id == group_id, GroupMember.member_id == member,
        GroupMember.joined_at == joined_at).order_by(GroupMember.id.desc()).limit(1))


# --- welcome into the set's groups ---------------------------------------------------------------------------


def _set_id(payload: dict[str, Any]) -> int:
    value = payload.get("group_set_id")
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise PermanentFailure("payload.group_set_id must be a positive integer")
    return value


@job_handler(group_welcome.PUSH_JOB, max_attempts=20)
def push_group_welcome(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    """The set's approved group welcome into WeCom's library: `add` the first time, `edit` after
    (it replaces the template: a repeat is harmless). A pending edit is never pushed."""
    from siyu.communities.jobs import wecom_client
    from siyu.wecom.errors import WeComError

    set_id, corp_id = _set_id(payload), job.corp_id
    if corp_id is None:
        raise PermanentFailure("a group welcome job without a corp")
    with session_scope() as s:
        todo = group_welcome.welcome_to_push(s, corp_id=corp_id, set_id=set_id)
    if todo is None:
        return
    text, version, template_id = todo
    client = wecom_client(corp_id)
    if client is None:
        return
    try:
        if template_id:
            client.edit_group_welcome_template(template_id=template_id, text=text)
        else:
            template_id = client.add_group_welcome_template(text=text, notify=True)
    except WeComError as exc:
        if exc.errcode in BUSY:
            raise RetryLater(RETRY_SECONDS, f"WeCom busy ({exc.errcode})") from exc
        raise
    group_welcome.record_push(session, corp_id=corp_id, set_id=set_id, template_id=template_id, version=version)


@job_handler("communities.group_welcome_sweep")
def group_welcome_sweep(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    """Every minute: each set whose approved group welcome is not the version WeCom has gets a push
    (a checker's approval reaches WeCom within a minute)."""
    for corp_id, set_id in group_welcome.sets_to_push(session):
        group_welcome.schedule_push(session, corp_id=corp_id, set_id=set_id)


builtin_schedule("communities.group_welcome_sweep", cron="* * * * *", name="communities.group_welcome_sweep")


@job_handler(group_welcome.NEW_GROUP_JOB, max_attempts=20)
def group_joined_set(session: Session, payload: dict[str, Any], job: JobContext) -> None:
    """A group came into a set: the set's approved rules posted in it (a group mass message from
    the owner, once: effect key), and the owner's task to post the announcement."""
    from siyu.communities.jobs import wecom_client
    from siyu.communities.models import GroupChat
    from siyu.compliance.service import content_for_send, prepare_outbound
    from siyu.wecom import service as wecom

    set_id, corp_id, group_id = _set_id(payload), job.corp_id, payload.get("group_id")
    if corp_id is None or not isinstance(group_id, int):
        raise PermanentFailure("payload.group_id must be an integer and the job needs a corp")
    key = group_welcome.rules_effect_key(group_id, set_id)
    with session_scope() as s:
        group = s.get(GroupChat, group_id)
        if group is None or group.corp_id != corp_id or group.group_set_id != set_id or group.dismissed_at:
            return
        group_welcome.open_announcement_task(s, corp_id=corp_id, group=group, set_id=set_id)
        rules = content_for_send(s, corp_id=corp_id, kind=group_welcome.KIND, owner=(group_welcome.RULES, set_id))
        if rules.held or not rules.text:
            return
        out = prepare_outbound(s, corp_id=corp_id, kind="group_welcome", text=rules.text)
        if rules.held_by(out):
            wecom.record_outcome(s, corp_id=corp_id, effect_key=key, endpoint=group_welcome.RULES_ENDPOINT,
                                 state="blocked", detail=out.summary())
            return
        claim = wecom.claim_effect(s, corp_id=corp_id, effect_key=key, endpoint=group_welcome.RULES_ENDPOINT)
        owner, chat_id, text = group.owner_userid, group.chat_id, out.text
    client = wecom_client(corp_id)
    if client is None:
        return
    outcome = wecom.call_claimed(claim, lambda: send_group_text(client, sender=owner, chat_id=chat_id, text=text),
                                 record_in=session)
    if outcome.state == "failed" and outcome.errcode in BUSY:
        raise RetryLater(RETRY_SECONDS, f"WeCom busy ({outcome.errcode})")
