"""Customer groups (客户群): list/get endpoints, and members joining and leaving with the
`change_external_chat` events WeCom sends for them."""

from __future__ import annotations

from typing import Any

from siyu.wecom.emulator.callbacks import emit
from siyu.wecom.emulator.contacts import decode_cursor, encode_cursor
from siyu.wecom.emulator.state import (
    AdminError,
    ApiError,
    Corp,
    EmulatorState,
    GroupChat,
    GroupMember,
    JoinWay,
    locked,
)

JOIN_SCENE_INVITED = 1
JOIN_SCENE_LINK = 2
JOIN_SCENE_QR = 3
QUIT_SCENE_SELF = 0
QUIT_SCENE_REMOVED = 1
CAPACITY = 200  # members of a customer group
CAPACITY_CERTIFIED = 500  # after the corp's certification
JOIN_WAY_CHATS_MAX = 5
JOIN_WAY_STATE_MAX = 30
JOIN_WAY_REMARK_MAX = 30
ROOM_BASE_NAME_MAX = 40


class GroupFull(AdminError):
    def __init__(self, chat_id: str, capacity: int) -> None:
        super().__init__(409, f"group {chat_id} is full ({capacity} members)")


def capacity(corp: Corp) -> int:
    if corp.limits.group_capacity is not None:  # the explicit friendlier switch (demo, tests)
        return corp.limits.group_capacity
    return CAPACITY_CERTIFIED if corp.limits.certified else CAPACITY


def _status(corp: Corp, chat: GroupChat) -> int:
    """0 normal, 1 owner resigned and waiting for a takeover (2 and 3 follow a group transfer,
    which the emulator does not model)."""
    owner = corp.staff.get(chat.owner)
    return 1 if owner is not None and owner.status == "resigned" else 0


def _member_type(corp: Corp, member_id: str) -> int:
    if member_id in corp.staff:
        return 1
    if member_id in corp.customers:
        return 2
    raise AdminError(404, f"{member_id!r} is neither staff nor a customer of this corp")


@locked
def create_group_chat(state: EmulatorState, corp: Corp, *, owner: str, name: str, members: list[str],
                      notice: str = "", chat_id: str | None = None, send_event: bool = True) -> GroupChat:
    """The owner creates a customer group. A seeded group (`send_event` off: it existed before the
    app was connected) may carry its own `chat_id`."""
    if owner not in corp.staff:
        raise AdminError(404, f"no staff {owner!r}")
    if chat_id is not None and (not chat_id.startswith("wr") or not 8 <= len(chat_id) <= 64
                                or chat_id in corp.group_chats):
        raise AdminError(409 if chat_id in corp.group_chats else 422,
                         "a chat id starts with wr, is 8..64 characters and is not taken")
    now = int(state.now())
    chat = GroupChat(chat_id=chat_id or state.new_id("wr"), name=name, owner=owner, create_time=now, notice=notice)
    for member_id in [owner, *members]:
        if member_id not in chat.members:
            chat.members[member_id] = GroupMember(userid=member_id, type=_member_type(corp, member_id), join_time=now,
                                                  join_scene=JOIN_SCENE_INVITED,
                                                  invitor=None if member_id == owner else owner)
    corp.group_chats[chat.chat_id] = chat
    if send_event:
        emit(state, corp, "change_external_chat", "create", [("ChatId", chat.chat_id)])
    return chat


def _chat(corp: Corp, chat_id: str) -> GroupChat:
    chat = corp.group_chats.get(chat_id)
    if chat is None or chat.dismissed:
        raise AdminError(404, f"no group chat {chat_id!r}")
    return chat


def _member_change(state: EmulatorState, corp: Corp, chat: GroupChat, detail: str, member_id: str,
                   scene: tuple[str, int]) -> None:
    last = chat.member_version
    chat.member_version += 1
    emit(state, corp, "change_external_chat", "update",
         [("ChatId", chat.chat_id), ("UpdateDetail", detail), scene, ("MemChangeCnt", 1),
          ("MemChangeList", [member_id]), ("LastMemVer", f"v{last}"), ("CurMemVer", f"v{chat.member_version}")])


@locked
def join_group(state: EmulatorState, corp: Corp, chat_id: str, *, member_id: str,
               join_scene: int = JOIN_SCENE_QR, invitor: str | None = None,
               join_state: str | None = None) -> GroupChat:
    """A member joins: scene 1 invited directly, 2 invited by link, 3 scanned the group QR.
    `invitor` is the member who invited (WeCom names it for scenes 1 and 2); `join_state` is the
    join way's `state` when the member came through one."""
    chat = _chat(corp, chat_id)
    if member_id in chat.members:
        raise AdminError(409, f"{member_id} is already in the group")
    if len(chat.members) >= capacity(corp):
        raise GroupFull(chat.chat_id, capacity(corp))
    if join_scene not in (JOIN_SCENE_INVITED, JOIN_SCENE_LINK, JOIN_SCENE_QR):
        raise AdminError(422, "join scene is 1 (invited), 2 (link) or 3 (QR)")
    if invitor is not None and invitor not in chat.members:
        raise AdminError(409, f"the invitor {invitor} is not in the group")
    if join_state is not None and len(join_state) > 30:
        raise AdminError(422, "a join way's state is at most 30 characters")
    chat.members[member_id] = GroupMember(userid=member_id, type=_member_type(corp, member_id),
                                          join_time=int(state.now()), join_scene=join_scene,
                                          invitor=invitor if join_scene != JOIN_SCENE_QR else None,
                                          state=join_state)
    _member_change(state, corp, chat, "add_member", member_id, ("JoinScene", join_scene))
    return chat


@locked
def leave_group(state: EmulatorState, corp: Corp, chat_id: str, *, member_id: str,
                quit_scene: int = QUIT_SCENE_SELF) -> GroupChat:
    chat = _chat(corp, chat_id)
    if member_id == chat.owner:
        raise AdminError(409, "the owner cannot leave; dismiss the group instead")
    if chat.members.pop(member_id, None) is None:
        raise AdminError(404, f"{member_id} is not in the group")
    _member_change(state, corp, chat, "del_member", member_id, ("QuitScene", quit_scene))
    return chat


@locked
def update_group(state: EmulatorState, corp: Corp, chat_id: str, *, name: str | None = None,
                 notice: str | None = None, admins: list[str] | None = None) -> GroupChat:
    """The owner renames the group, posts a notice (群公告) or changes its admins in the app: WeCom
    sends change_name / change_notice (admin changes send no event; groupchat/get shows them)."""
    chat = _chat(corp, chat_id)
    if admins is not None:
        strangers = [a for a in admins if a not in chat.members or a not in corp.staff]
        if strangers:
            raise AdminError(409, f"admins must be staff members of the group: {strangers}")
        chat.admins = list(dict.fromkeys(admins))
    if name is not None and name != chat.name:
        chat.name = name
        emit(state, corp, "change_external_chat", "update", [("ChatId", chat.chat_id), ("UpdateDetail", "change_name")])
    if notice is not None and notice != chat.notice:
        chat.notice = notice
        emit(state, corp, "change_external_chat", "update",
             [("ChatId", chat.chat_id), ("UpdateDetail", "change_notice")])
    return chat


@locked
def dismiss_group(state: EmulatorState, corp: Corp, chat_id: str) -> None:
    chat = _chat(corp, chat_id)
    chat.dismissed = True
    emit(state, corp, "change_external_chat", "dismiss", [("ChatId", chat.chat_id)])


@locked
def groupchat_list(state: EmulatorState, corp: Corp, body: dict[str, Any]) -> dict[str, Any]:
    status_filter = body.get("status_filter", 0)
    if status_filter not in (0, 1, 2, 3):
        raise ApiError(40058, "status_filter must be 0..3")
    limit = body.get("limit")
    if not isinstance(limit, int) or not 1 <= limit <= 1000:
        raise ApiError(40058, "limit must be 1..1000")
    owner_filter = body.get("owner_filter") or {}
    owners = owner_filter.get("userid_list") if isinstance(owner_filter, dict) else None
    chats = [c for c in corp.group_chats.values() if not c.dismissed]  # creation order
    if owners:
        chats = [c for c in chats if c.owner in owners]
    if status_filter:
        chats = [c for c in chats if _status(corp, c) == status_filter]
    offset = decode_cursor("groupchat", body.get("cursor"))
    out: dict[str, Any] = {"group_chat_list": [{"chat_id": c.chat_id, "status": _status(corp, c)}
                                               for c in chats[offset:offset + limit]]}
    if offset + limit < len(chats):
        out["next_cursor"] = encode_cursor("groupchat", offset + limit)
    return out


@locked
def groupchat_get(state: EmulatorState, corp: Corp, body: dict[str, Any]) -> dict[str, Any]:
    chat = corp.group_chats.get(body.get("chat_id") or "")
    if chat is None or chat.dismissed:
        raise ApiError(40050, "chatid not found")
    need_name = bool(body.get("need_name"))
    members = []
    for m in sorted(chat.members.values(), key=lambda m: (m.join_time, m.userid)):
        item: dict[str, Any] = {"userid": m.userid, "type": m.type, "join_time": m.join_time,
                                "join_scene": m.join_scene}
        if m.invitor:
            item["invitor"] = {"userid": m.invitor}
        if m.state:
            item["state"] = m.state
        if m.type == 2 and (customer := corp.customers.get(m.userid)) and customer.unionid:
            item["unionid"] = customer.unionid
        if need_name:
            person = corp.staff.get(m.userid) or corp.customers.get(m.userid)
            item["name"] = getattr(person, "name", "")
        members.append(item)
    return {"group_chat": {"chat_id": chat.chat_id, "name": chat.name, "owner": chat.owner,
                           "create_time": chat.create_time, "notice": chat.notice, "member_list": members,
                           "admin_list": [{"userid": a} for a in chat.admins],
                           "member_version": f"v{chat.member_version}"}}


GROUP_TRANSFER_BATCH_MAX = 100


def _group_transfer(state: EmulatorState, corp: Corp, body: dict[str, Any], kind: str) -> dict[str, Any]:
    """分配离职/在职成员的客户群: each chat moves to `new_owner` at once, or is listed as failed.
    A serving owner's group may be handed over at most twice in 90 days (as customers are)."""
    from siyu.wecom.emulator.contacts import require_staff

    ids = body.get("chat_id_list")
    if not isinstance(ids, list) or not 1 <= len(ids) <= GROUP_TRANSFER_BATCH_MAX:
        raise ApiError(40058, f"chat_id_list holds 1..{GROUP_TRANSFER_BATCH_MAX} chats")
    new_owner = require_staff(corp, body.get("new_owner"), active=True)
    now = state.now()
    limits = corp.limits
    failed = []
    for chat_id in ids:
        chat = corp.group_chats.get(chat_id) if isinstance(chat_id, str) else None
        owner = corp.staff.get(chat.owner) if chat is not None else None
        if chat is None or chat.dismissed:
            code, msg = 90501, "chat is not external group chat"
        elif kind == "resigned" and (owner is None or owner.status != "resigned"):
            code, msg = 90500, "the owner of this chat is not resigned"
        elif kind == "onjob" and (owner is None or owner.status != "active"):
            code, msg = 90502, "the owner of this chat is resigned"
        elif chat.owner == new_owner.userid:
            code, msg = 90503, "the new owner is the owner already"
        elif kind == "onjob" and sum(1 for at in chat.transferred_at
                                     if now - at < limits.active_transfer_window) >= limits.active_transfers_per_window:
            code, msg = 40128, "the chat was handed over too often"
        else:
            code, msg = 0, ""
            chat.owner = new_owner.userid
            chat.transferred_at.append(now)
            if new_owner.userid not in chat.members:
                chat.members[new_owner.userid] = GroupMember(userid=new_owner.userid, type=1, join_time=int(now),
                                                             join_scene=JOIN_SCENE_INVITED)
            # No change_owner event: operations made through the API produce no callbacks.
        if code:
            failed.append({"chat_id": chat_id, "errcode": code, "errmsg": msg})
    return {"failed_chat_list": failed}


@locked
def groupchat_transfer(state: EmulatorState, corp: Corp, body: dict[str, Any]) -> dict[str, Any]:
    return _group_transfer(state, corp, body, "resigned")


@locked
def groupchat_onjob_transfer(state: EmulatorState, corp: Corp, body: dict[str, Any]) -> dict[str, Any]:
    return _group_transfer(state, corp, body, "onjob")


# --- join ways (加入群聊 / 群活码) --------------------------------------------------------------------------


def _join_way_fields(state: EmulatorState, corp: Corp, body: dict[str, Any]) -> dict[str, Any]:
    scene = body.get("scene")
    if scene not in (1, 2):
        raise ApiError(40058, "scene must be 1 (mini-program) or 2 (QR code)")
    chat_ids = body.get("chat_id_list")
    if not isinstance(chat_ids, list) or not 1 <= len(chat_ids) <= JOIN_WAY_CHATS_MAX \
            or not all(isinstance(c, str) for c in chat_ids):
        raise ApiError(40058, f"chat_id_list holds 1..{JOIN_WAY_CHATS_MAX} chat ids")
    if len(set(chat_ids)) != len(chat_ids):
        raise ApiError(40058, "chat_id_list repeats a chat id")
    for chat_id in chat_ids:
        chat = corp.group_chats.get(chat_id)
        if chat is None or chat.dismissed:
            raise ApiError(40050, f"invalid chatid: {chat_id}")
    state_param = body.get("state")
    if state_param is not None and (not isinstance(state_param, str) or len(state_param) > JOIN_WAY_STATE_MAX):
        raise ApiError(40058, f"state must be a string of at most {JOIN_WAY_STATE_MAX} characters")
    remark = body.get("remark") or ""
    if not isinstance(remark, str):
        raise ApiError(40058, "remark must be a string")
    auto = body.get("auto_create_room", 1)
    if auto not in (0, 1):
        raise ApiError(40058, "auto_create_room must be 0 or 1")
    base_name = body.get("room_base_name") or ""
    if not isinstance(base_name, str) or len(base_name) > ROOM_BASE_NAME_MAX:
        raise ApiError(40058, f"room_base_name is at most {ROOM_BASE_NAME_MAX} characters")
    base_id = body.get("room_base_id", 1)
    if not isinstance(base_id, int) or base_id < 0:
        raise ApiError(40058, "room_base_id must be a non-negative integer")
    # WeCom truncates a remark over 30 characters rather than refusing it.
    return {"scene": scene, "chat_ids": list(chat_ids), "state": state_param, "remark": remark[:JOIN_WAY_REMARK_MAX],
            "auto_create_room": auto, "room_base_name": base_name, "room_base_id": base_id}


def _require_join_way(corp: Corp, body: dict[str, Any]) -> JoinWay:
    config_id = body.get("config_id")
    if not isinstance(config_id, str) or not config_id:
        raise ApiError(40058, "config_id is required")
    way = corp.join_ways.get(config_id)
    if way is None:
        raise ApiError(40058, f"invalid config_id: {config_id}")
    return way


@locked
def add_join_way(state: EmulatorState, corp: Corp, body: dict[str, Any]) -> dict[str, Any]:
    fields = _join_way_fields(state, corp, body)
    config_id = state.new_id("", 32).lower()
    qr = f"https://wework.qpic.cn/wwpic/emulator/join/{config_id}/0" if fields["scene"] == 2 else None
    corp.join_ways[config_id] = JoinWay(config_id=config_id, qr_code=qr, **fields)
    return {"config_id": config_id}


@locked
def get_join_way(state: EmulatorState, corp: Corp, body: dict[str, Any]) -> dict[str, Any]:
    way = _require_join_way(corp, body)
    out: dict[str, Any] = {"config_id": way.config_id, "scene": way.scene, "remark": way.remark,
                           "auto_create_room": way.auto_create_room, "room_base_name": way.room_base_name,
                           "room_base_id": way.room_base_id, "chat_id_list": list(way.chat_ids)}
    if way.qr_code:
        out["qr_code"] = way.qr_code
    if way.state is not None:
        out["state"] = way.state
    return {"join_way": out}


@locked
def update_join_way(state: EmulatorState, corp: Corp, body: dict[str, Any]) -> dict[str, Any]:
    way = _require_join_way(corp, body)
    for key, value in _join_way_fields(state, corp, body).items():
        setattr(way, key, value)
    if way.scene == 2 and way.qr_code is None:
        way.qr_code = f"https://wework.qpic.cn/wwpic/emulator/join/{way.config_id}/0"
    return {}


@locked
def del_join_way(state: EmulatorState, corp: Corp, body: dict[str, Any]) -> dict[str, Any]:
    way = _require_join_way(corp, body)
    del corp.join_ways[way.config_id]
    return {}


@locked
def join_by_way(state: EmulatorState, corp: Corp, config_id: str, *, member_id: str) -> GroupChat:
    """A customer scans the join way: they join the first listed group that is not full, with the
    way's state; when every group is full, a new group is created (auto_create_room) named
    room_base_name + the next number, owned by the last group's owner and added to the list."""
    way = corp.join_ways.get(config_id)
    if way is None:
        raise AdminError(404, f"no join way {config_id!r}")
    if member_id not in corp.customers:
        raise AdminError(404, f"no customer {member_id!r}")
    limit = capacity(corp)
    for chat_id in way.chat_ids:
        chat = corp.group_chats.get(chat_id)
        if chat is None or chat.dismissed or member_id in chat.members:
            if chat is not None and member_id in chat.members:
                raise AdminError(409, f"{member_id} is already in the group")
            continue
        if len(chat.members) < limit:
            return join_group(state, corp, chat_id, member_id=member_id, join_scene=JOIN_SCENE_QR,
                              join_state=way.state)
    if not way.auto_create_room or len(way.chat_ids) >= JOIN_WAY_CHATS_MAX:
        raise AdminError(409, "every group of this join way is full")
    last = corp.group_chats[way.chat_ids[-1]]
    name = f"{way.room_base_name or last.name}{way.room_base_id + way.rooms_created}"
    way.rooms_created += 1
    chat = create_group_chat(state, corp, owner=last.owner, name=name, members=[])
    way.chat_ids.append(chat.chat_id)
    return join_group(state, corp, chat.chat_id, member_id=member_id, join_scene=JOIN_SCENE_QR, join_state=way.state)
