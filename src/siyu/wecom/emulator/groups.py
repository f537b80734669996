"""Customer groups (客户群): list/get endpoints, and members joining and leaving with the
`change_external_chat` events WeCom sends for them."""

from __future__ import annotations

from typing import Any

from siyu.wecom.emulator.callbacks import emit
from siyu.wecom.emulator.contacts import decode_cursor, encode_cursor
from siyu.wecom.emulator.state import AdminError, ApiError, Corp, EmulatorState, GroupChat, GroupMember, locked

JOIN_SCENE_INVITED = 1
JOIN_SCENE_LINK = 2
JOIN_SCENE_QR = 3
QUIT_SCENE_SELF = 0
QUIT_SCENE_REMOVED = 1


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
            emit(state, corp, "change_external_chat", "update",
                 [("ChatId", chat.chat_id), ("UpdateDetail", "change_owner")])
        if code:
            failed.append({"chat_id": chat_id, "errcode": code, "errmsg": msg})
    return {"failed_chat_list": failed}


@locked
def groupchat_transfer(state: EmulatorState, corp: Corp, body: dict[str, Any]) -> dict[str, Any]:
    return _group_transfer(state, corp, body, "resigned")


@locked
def groupchat_onjob_transfer(state: EmulatorState, corp: Corp, body: dict[str, Any]) -> dict[str, Any]:
    return _group_transfer(state, corp, body, "onjob")
