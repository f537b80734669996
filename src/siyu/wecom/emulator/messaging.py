"""Mass messages (群发) and Moments (客户朋友圈) with WeCom's per-customer caps.

A customer receives a limited number of mass messages from one corp (by default as many a
calendar month as the month has days; later ones get status 3, "already received another mass
message"), and sees at most three of the corp's Moments posts a day. Days are China calendar days.
A mass message waits for each sending member to confirm it in WeCom (`confirm_mass_message`,
the admin API) unless the corp's `auto_confirm_mass_messages` switch says otherwise."""

from __future__ import annotations

import calendar
import datetime as dt
from typing import Any

from siyu.wecom.emulator.contacts import EXTERNAL_USERID_RE, decode_cursor, encode_cursor, require_staff
from siyu.wecom.emulator.state import (
    AdminError,
    ApiError,
    AppMessage,
    Corp,
    EmulatorState,
    Limits,
    MassMessage,
    MomentTask,
    SendResult,
    cn_day,
    locked,
)

MASS_MESSAGE_MAX_CUSTOMERS = 10_000
MASS_MESSAGE_MAX_CHATS = 2000
ATTACHMENTS_MAX = 9
TAG_FILTER_GROUP_MAX_TAGS = 100


def _content(body: dict[str, Any]) -> tuple[str | None, list[dict[str, Any]]]:
    text = body.get("text") or {}
    content = text.get("content") if isinstance(text, dict) else None
    attachments = body.get("attachments") or []
    if not isinstance(attachments, list):
        raise ApiError(40058, "attachments must be a list")
    if not content and not attachments:
        raise ApiError(44004, "empty content")
    return content, attachments


def allowance_period(limits: Limits, epoch: float) -> tuple[str, int]:
    """The allowance period a mass message sent at `epoch` counts against, and how many the
    customer may receive in it: by default the China calendar month and its number of days; a
    corp may choose 1 a day or 7 a week."""
    day = dt.date(1970, 1, 1) + dt.timedelta(days=cn_day(epoch))
    if limits.mass_message_allowance == "day":
        key, cap = f"d:{day.isoformat()}", 1
    elif limits.mass_message_allowance == "week":
        year, week, _ = day.isocalendar()
        key, cap = f"w:{year}-{week}", 7
    else:
        key, cap = f"m:{day.year}-{day.month}", calendar.monthrange(day.year, day.month)[1]
    if limits.mass_messages_per_period is not None:
        cap = limits.mass_messages_per_period
    return key, cap


def _tag_filter(corp: Corp, body: dict[str, Any]) -> list[set[str]] | None:
    """tag_filter.group_list[].tag_list: tags of one group are alternatives (or), groups all
    apply (and). None when not given."""
    raw = body.get("tag_filter")
    if raw is None:
        return None
    groups = raw.get("group_list") if isinstance(raw, dict) else None
    if not isinstance(groups, list):
        raise ApiError(40058, "tag_filter.group_list must be a list")
    out = []
    for group in groups:
        tags = group.get("tag_list") if isinstance(group, dict) else None
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise ApiError(40058, "tag_filter.group_list[].tag_list must be a list of tag ids")
        if len(tags) > TAG_FILTER_GROUP_MAX_TAGS:
            raise ApiError(40058, f"tag_filter: at most {TAG_FILTER_GROUP_MAX_TAGS} tags a group")
        for t in tags:
            if t not in corp.tags:
                raise ApiError(40068, f"invalid tag id: {t}")
        if tags:
            out.append(set(tags))
    return out or None


def _matches(tags: list[str], tag_filter: list[set[str]] | None) -> bool:
    return tag_filter is None or all(group & set(tags) for group in tag_filter)


def _last_chatted(corp: Corp, external_userid: str) -> str | None:
    """The member of staff who last chatted with the customer (any follower when nobody has yet:
    the one who added them last)."""
    followers = corp.follows_of_customer(external_userid)
    if not followers:
        return None
    last = corp.last_chat.get(external_userid)
    if last is not None and (last[1], external_userid) in corp.follows:
        return last[1]
    return max(followers, key=lambda f: (f.createtime, f.userid)).userid


@locked
def add_msg_template(state: EmulatorState, corp: Corp, body: dict[str, Any]) -> dict[str, Any]:
    """创建企业群发: a task for each sending member, which they confirm in WeCom (unless the corp's
    `auto_confirm_mass_messages` friendlier mode is on). Single chats: the listed customers (or all
    of the sender's), narrowed by `tag_filter`; without a sender each customer's task goes to the
    member who last chatted with them. Group chats need a sender: the listed chats it owns (or all)."""
    chat_type = body.get("chat_type", "single")
    if chat_type not in ("single", "group"):
        raise ApiError(40058, "chat_type must be single or group")
    content, attachments = _content(body)
    if len(attachments) > ATTACHMENTS_MAX:
        raise ApiError(40058, f"attachments: at most {ATTACHMENTS_MAX}")
    sender = body.get("sender")
    if sender is not None:
        require_staff(corp, sender, active=True)
    targets = body.get("external_userid") or []
    if not isinstance(targets, list) or len(targets) > MASS_MESSAGE_MAX_CUSTOMERS:
        raise ApiError(40058, f"external_userid must be a list of at most {MASS_MESSAGE_MAX_CUSTOMERS}")
    chat_ids = body.get("chat_id_list") or []
    if not isinstance(chat_ids, list) or len(chat_ids) > MASS_MESSAGE_MAX_CHATS:
        raise ApiError(40058, f"chat_id_list must be a list of at most {MASS_MESSAGE_MAX_CHATS}")
    tag_filter = _tag_filter(corp, body)
    results: list[SendResult] = []
    fail_list: list[str] = []
    if chat_type == "group":
        if sender is None:
            raise ApiError(40058, "sender is required for group mass messages")
        if chat_ids:
            for chat_id in dict.fromkeys(chat_ids):
                chat = corp.group_chats.get(chat_id) if isinstance(chat_id, str) else None
                if chat is None or chat.dismissed or chat.owner != sender:
                    fail_list.append(str(chat_id))
                else:
                    results.append(SendResult(userid=sender, status=0, chat_id=chat.chat_id))
        else:
            for chat in corp.group_chats.values():
                if chat.owner == sender and not chat.dismissed:
                    results.append(SendResult(userid=sender, status=0, chat_id=chat.chat_id))
    else:
        if not targets and sender is None:
            raise ApiError(40058, "external_userid and sender are both empty")
        if targets:
            for ext in dict.fromkeys(targets):  # de-duplicated, order kept
                if not isinstance(ext, str) or not EXTERNAL_USERID_RE.match(ext) or ext not in corp.customers:
                    fail_list.append(str(ext))
                    continue
                userid = sender if sender is not None else _last_chatted(corp, ext)
                follow = corp.follows.get((userid, ext)) if userid is not None else None
                if follow is None:
                    fail_list.append(ext)
                elif _matches(follow.tags, tag_filter):
                    results.append(SendResult(userid=follow.userid, status=0, external_userid=ext))
        else:
            for f in sorted(corp.follows_of_staff(sender), key=lambda f: f.createtime):
                if _matches(f.tags, tag_filter):
                    results.append(SendResult(userid=sender, status=0, external_userid=f.external_userid))
    message = MassMessage(msgid=state.new_id("msg", 27), chat_type=chat_type, sender=sender, text=content,
                          attachments=attachments, created=state.now(), results=results, fail_list=fail_list)
    corp.mass_messages[message.msgid] = message
    if corp.limits.auto_confirm_mass_messages:
        for userid in dict.fromkeys(r.userid for r in results):
            confirm_mass_message(state, corp, message.msgid, userid)
    return {"fail_list": fail_list, "msgid": message.msgid}


@locked
def confirm_mass_message(state: EmulatorState, corp: Corp, msgid: str, userid: str | None = None) -> MassMessage:
    """The sender taps "send" in WeCom: pending results become sent, not-a-friend or over the
    customer's allowance (status 3)."""
    message = corp.mass_messages.get(msgid)
    if message is None:
        raise AdminError(404, f"no mass message {msgid!r}")
    now = state.now()
    period, cap = allowance_period(corp.limits, now)
    for result in message.results:
        if result.status != 0 or (userid is not None and result.userid != userid):
            continue
        if result.chat_id is not None:
            result.status, result.send_time = 1, int(now)
            continue
        ext = result.external_userid or ""
        if (result.userid, ext) not in corp.follows:
            result.status = 2
        elif corp.mass_received.get((ext, period), 0) >= cap:
            result.status = 3
        else:
            corp.mass_received[(ext, period)] = corp.mass_received.get((ext, period), 0) + 1
            result.status, result.send_time = 1, int(now)
    return message


@locked
def get_groupmsg_send_result(state: EmulatorState, corp: Corp, body: dict[str, Any]) -> dict[str, Any]:
    msgid = body.get("msgid")
    message = corp.mass_messages.get(msgid) if isinstance(msgid, str) else None
    if message is None:
        raise ApiError(40058, f"invalid msgid: {msgid}")
    userid = body.get("userid")
    require_staff(corp, userid)
    limit = body.get("limit", 500)
    if not isinstance(limit, int) or not 1 <= limit <= 1000:
        raise ApiError(40058, "limit must be 1..1000")
    rows = [r for r in message.results if r.userid == userid]
    offset = decode_cursor(f"send:{msgid}", body.get("cursor"))
    out: dict[str, Any] = {"send_list": [r.as_api() for r in rows[offset:offset + limit]], "next_cursor": ""}
    if offset + limit < len(rows):
        out["next_cursor"] = encode_cursor(f"send:{msgid}", offset + limit)
    return out


GROUPMSG_LIST_MAX_SPAN = 31 * 86400  # WeCom: start_time..end_time spans at most a month
GROUPMSG_LIST_MAX_LIMIT = 100
GROUPMSG_TASK_MAX_LIMIT = 1000


def _epoch_field(body: dict[str, Any], key: str) -> int:
    value = body.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ApiError(40058, f"{key} must be a unix time")
    return value


@locked
def get_groupmsg_list_v2(state: EmulatorState, corp: Corp, body: dict[str, Any]) -> dict[str, Any]:
    """获取群发记录列表: the corp's mass messages created in [start_time, end_time] (at most a month
    apart), of one chat type, optionally by one creator; newest last, paged by cursor. Messages made
    through the API are created by the corp (create_type 0) with their sender as creator."""
    chat_type = body.get("chat_type", "single")
    if chat_type not in ("single", "group"):
        raise ApiError(40058, "chat_type must be single or group")
    start, end = _epoch_field(body, "start_time"), _epoch_field(body, "end_time")
    if end < start or end - start > GROUPMSG_LIST_MAX_SPAN:
        raise ApiError(40058, "start_time..end_time must be ordered and at most a month apart")
    creator = body.get("creator")
    if creator is not None:
        require_staff(corp, creator)
    filter_type = body.get("filter_type", 2)
    if filter_type not in (0, 1, 2):
        raise ApiError(40058, "filter_type must be 0, 1 or 2")
    limit = body.get("limit", 50)
    if not isinstance(limit, int) or not 1 <= limit <= GROUPMSG_LIST_MAX_LIMIT:
        raise ApiError(40058, f"limit must be 1..{GROUPMSG_LIST_MAX_LIMIT}")
    rows = [m for m in corp.mass_messages.values()
            if m.chat_type == chat_type and start <= int(m.created) <= end
            and (creator is None or m.sender == creator) and filter_type in (0, 2)]
    offset = decode_cursor(f"list:{chat_type}:{start}:{end}:{creator}", body.get("cursor"))
    page = rows[offset:offset + limit]
    out: dict[str, Any] = {"group_msg_list": [
        {"msgid": m.msgid, "creator": m.sender or "", "create_type": 0, "create_time": int(m.created),
         **({"text": {"content": m.text}} if m.text else {}), "attachments": m.attachments} for m in page],
        "next_cursor": ""}
    if offset + limit < len(rows):
        out["next_cursor"] = encode_cursor(f"list:{chat_type}:{start}:{end}:{creator}", offset + limit)
    return out


@locked
def get_groupmsg_task(state: EmulatorState, corp: Corp, body: dict[str, Any]) -> dict[str, Any]:
    """获取群发成员发送任务列表: each sending member's task, status 0 (not sent: not confirmed yet) or
    2 (sent: confirmed), with its send time; paged by cursor."""
    msgid = body.get("msgid")
    message = corp.mass_messages.get(msgid) if isinstance(msgid, str) else None
    if message is None:
        raise ApiError(40058, f"invalid msgid: {msgid}")
    limit = body.get("limit", 500)
    if not isinstance(limit, int) or not 1 <= limit <= GROUPMSG_TASK_MAX_LIMIT:
        raise ApiError(40058, f"limit must be 1..{GROUPMSG_TASK_MAX_LIMIT}")
    tasks: dict[str, dict[str, Any]] = {}
    for r in message.results:
        task = tasks.setdefault(r.userid, {"userid": r.userid, "status": 0})
        if r.status != 0:
            task["status"] = 2
            task["send_time"] = max(task.get("send_time", 0), r.send_time or 0)
    rows = list(tasks.values())
    offset = decode_cursor(f"task:{msgid}", body.get("cursor"))
    out: dict[str, Any] = {"task_list": rows[offset:offset + limit], "next_cursor": ""}
    if offset + limit < len(rows):
        out["next_cursor"] = encode_cursor(f"task:{msgid}", offset + limit)
    return out


APP_MESSAGE_MAX_USERS = 1000
APP_TEXT_MAX_BYTES = 2048


@locked
def send_app_message(state: EmulatorState, corp: Corp, body: dict[str, Any]) -> dict[str, Any]:
    """发送应用消息 (text only): to staff by `touser` ("a|b|c"). Unknown or inactive members are
    answered in `invaliduser`; when none is valid the call fails (81013)."""
    if body.get("agentid") != corp.agent_id:
        raise ApiError(40056, f"invalid agentid: {body.get('agentid')}")
    if body.get("msgtype") != "text":
        raise ApiError(40008, "invalid message type (the emulator sends text)")
    text = body.get("text")
    content = text.get("content") if isinstance(text, dict) else None
    if not isinstance(content, str) or not content:
        raise ApiError(44004, "empty content")
    if len(content.encode()) > APP_TEXT_MAX_BYTES:
        raise ApiError(45002, f"content over {APP_TEXT_MAX_BYTES} bytes")
    touser = body.get("touser")
    if not isinstance(touser, str) or not touser:
        raise ApiError(40031, "touser is empty")
    users = list(dict.fromkeys(u for u in touser.split("|") if u))
    if len(users) > APP_MESSAGE_MAX_USERS:
        raise ApiError(40058, f"touser: at most {APP_MESSAGE_MAX_USERS}")
    invalid = [u for u in users if u not in corp.staff or corp.staff[u].status != "active"]
    valid = [u for u in users if u not in invalid]
    if not valid:
        raise ApiError(81013, "user & party & tag all invalid")
    message = AppMessage(msgid=state.new_id("app", 27), agentid=corp.agent_id, touser=valid, msgtype="text",
                         content=content, sent=state.now(), invaliduser=invalid)
    corp.app_messages.append(message)
    out: dict[str, Any] = {"msgid": message.msgid}
    if invalid:
        out["invaliduser"] = "|".join(invalid)
    return out


@locked
def add_moment_task(state: EmulatorState, corp: Corp, body: dict[str, Any]) -> dict[str, Any]:
    content, attachments = _content(body)
    for a in attachments:
        if not isinstance(a, dict) or a.get("msgtype") not in ("image", "video", "link"):
            raise ApiError(40058, "attachments[].msgtype must be image, video or link")
    visible = body.get("visible_range") or {}
    if not isinstance(visible, dict):
        raise ApiError(40058, "visible_range must be an object")
    senders_part = visible.get("sender_list") or {}
    contacts_part = visible.get("external_contact_list") or {}
    if not isinstance(senders_part, dict) or not isinstance(contacts_part, dict):
        raise ApiError(40058, "visible_range.sender_list and external_contact_list must be objects")
    users = list(senders_part.get("user_list") or [])
    departments = list(senders_part.get("department_list") or [])
    tag_list = list(contacts_part.get("tag_list") or [])
    invalid_users = [u for u in users if u not in corp.staff or corp.staff[u].status != "active"]
    known_departments = {d for s in corp.staff.values() for d in s.department}
    invalid_departments = [d for d in departments if d not in known_departments]
    invalid_tags = [t for t in tag_list if t not in corp.tags]
    senders = [u for u in users if u not in invalid_users]
    senders += [s.userid for s in corp.staff.values()
                if s.status == "active" and set(s.department) & set(departments) and s.userid not in senders]
    if not users and not departments:
        senders = [s.userid for s in corp.staff.values() if s.status == "active"]
    valid_tags = {t for t in tag_list if t in corp.tags}
    audience: list[str] = []
    for f in sorted(corp.follows.values(), key=lambda f: f.createtime):
        if f.userid in senders and f.external_userid not in audience:
            if not tag_list or valid_tags & set(f.tags):
                audience.append(f.external_userid)
    now = state.now()
    day = cn_day(now)
    cap = corp.limits.moments_per_customer_per_day
    shown, capped = [], []
    for ext in audience:
        if corp.moments_seen.get((ext, day), 0) >= cap:
            capped.append(ext)
        else:
            corp.moments_seen[(ext, day)] = corp.moments_seen.get((ext, day), 0) + 1
            shown.append(ext)
    task = MomentTask(jobid=state.new_id("job", 27), moment_id=state.new_id("mom", 27), created=now, text=content,
                      attachments=attachments, senders=senders, invalid_users=invalid_users,
                      invalid_departments=invalid_departments, invalid_tags=invalid_tags, shown_to=shown,
                      capped=capped)
    corp.moments[task.jobid] = task
    return {"jobid": task.jobid}


@locked
def get_moment_task_result(state: EmulatorState, corp: Corp, params: dict[str, Any]) -> dict[str, Any]:
    task = corp.moments.get(params.get("jobid") or "")
    if task is None:
        raise ApiError(40058, "invalid jobid")
    return {"status": 3, "type": "add_moment_task",
            "result": {"errcode": 0, "errmsg": "ok", "moment_id": task.moment_id,
                       "invalid_sender_list": {"user_list": task.invalid_users,
                                               "department_list": task.invalid_departments},
                       "invalid_external_contact_list": {"tag_list": task.invalid_tags}}}
