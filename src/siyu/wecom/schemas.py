"""Typed shapes of WeCom API responses (客户联系 endpoints).

Unknown fields are kept (`extra="allow"`): WeCom adds fields without notice, and dropping them
silently would hide what a newer API returns."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class WeComModel(BaseModel):
    model_config = ConfigDict(extra="allow")


class AccessToken(WeComModel):
    access_token: str
    expires_in: int = 7200


class ContactWay(WeComModel):
    config_id: str
    qr_code: str | None = None


class ExternalContact(WeComModel):
    external_userid: str
    name: str = ""
    type: int = 1  # 1 WeChat user, 2 WeCom user
    gender: int = 0
    unionid: str | None = None
    avatar: str | None = None
    corp_name: str | None = None
    corp_full_name: str | None = None
    position: str | None = None


class FollowUserTag(WeComModel):
    group_name: str | None = None
    tag_name: str | None = None
    tag_id: str | None = None
    type: int = 1  # 1 corp tag, 2 personal tag, 3 rule-group tag


class FollowUser(WeComModel):
    userid: str
    remark: str = ""
    description: str = ""
    createtime: int = 0
    tags: list[FollowUserTag] = Field(default_factory=list)
    add_way: int | None = None
    oper_userid: str | None = None
    state: str | None = None  # the contact way's `state`: our channel code


class ExternalContactDetail(WeComModel):
    external_contact: ExternalContact
    follow_user: list[FollowUser] = Field(default_factory=list)


class FollowInfo(WeComModel):
    userid: str
    remark: str = ""
    description: str = ""
    createtime: int = 0
    tag_id: list[str] = Field(default_factory=list)
    add_way: int | None = None
    oper_userid: str | None = None
    state: str | None = None


class ExternalContactWithFollow(WeComModel):
    """One (customer, member of staff) pair from batch/get_by_user."""

    external_contact: ExternalContact
    follow_info: FollowInfo


class CorpTag(WeComModel):
    id: str
    name: str
    create_time: int = 0
    order: int = 0
    deleted: bool = False


class CorpTagGroup(WeComModel):
    group_id: str
    group_name: str
    create_time: int = 0
    order: int = 0
    deleted: bool = False
    tag: list[CorpTag] = Field(default_factory=list)


class MsgTemplateResult(WeComModel):
    msgid: str
    fail_list: list[str] = Field(default_factory=list)


class GroupMsgSendResult(WeComModel):
    """status: 0 not sent yet, 1 sent, 2 not a friend, 3 already received another mass message."""

    userid: str
    status: int
    external_userid: str | None = None
    chat_id: str | None = None
    send_time: int | None = None


class GroupMsg(WeComModel):
    """One mass message of `get_groupmsg_list_v2`."""

    msgid: str
    creator: str = ""
    create_type: int = 0  # 0 made by the corp (the API), 1 by a member
    create_time: int
    text: dict[str, Any] | None = None
    attachments: list[dict[str, Any]] = Field(default_factory=list)

    @property
    def content(self) -> str | None:
        return (self.text or {}).get("content")


class GroupMsgTask(WeComModel):
    """A sending member's task of a mass message: status 0 not sent yet, 2 sent."""

    userid: str
    status: int
    send_time: int | None = None


class AppMessageResult(WeComModel):
    msgid: str | None = None
    invaliduser: str = ""


class InvalidSenders(WeComModel):
    user_list: list[str] = Field(default_factory=list)
    department_list: list[int] = Field(default_factory=list)


class InvalidExternalContacts(WeComModel):
    tag_list: list[str] = Field(default_factory=list)


class MomentTaskOutcome(WeComModel):
    errcode: int = 0
    errmsg: str = ""
    moment_id: str | None = None
    invalid_sender_list: InvalidSenders | None = None
    invalid_external_contact_list: InvalidExternalContacts | None = None


class MomentTaskResult(WeComModel):
    """status: 1 started, 2 running, 3 finished."""

    status: int
    type: str | None = None
    result: MomentTaskOutcome | None = None


class GroupChatSummary(WeComModel):
    chat_id: str
    status: int = 0  # 0 normal, 1 owner resigned, 2 being taken over, 3 taken over


class GroupChatMember(WeComModel):
    userid: str
    type: int  # 1 staff, 2 external contact
    unionid: str | None = None
    join_time: int = 0
    join_scene: int = 0  # 1 invited directly, 2 invited by link, 3 scanned the group QR
    invitor: dict[str, Any] | None = None
    group_nickname: str | None = None
    name: str | None = None
    state: str | None = None  # the join way's state (群活码) the member joined by


class GroupChatAdmin(WeComModel):
    userid: str


class GroupChat(WeComModel):
    chat_id: str
    name: str = ""
    owner: str = ""
    create_time: int = 0
    notice: str = ""
    member_list: list[GroupChatMember] = Field(default_factory=list)
    admin_list: list[GroupChatAdmin] = Field(default_factory=list)
    member_version: str | None = None


class JoinWay(WeComModel):
    """加入群聊 (群活码) as `groupchat/get_join_way` answers it."""

    config_id: str
    scene: int  # 1 mini-program, 2 QR
    remark: str = ""
    auto_create_room: int = 1
    room_base_name: str = ""
    room_base_id: int = 0
    chat_id_list: list[str] = Field(default_factory=list)
    qr_code: str | None = None
    state: str | None = None


class TransferResult(WeComModel):
    """Per customer: errcode 0 means the takeover started (it completes after 24 h)."""

    external_userid: str
    errcode: int


class TransferStatus(WeComModel):
    """查询客户接替状态: 1 taken over, 2 waiting (takeover_time is when it will be), 3 refused by the
    customer, 4 the takeover member has reached the customer limit, 5 no transfer record."""

    external_userid: str
    status: int
    takeover_time: int = 0


class UnassignedCustomer(WeComModel):
    """A customer of a resigned member waiting for a handover (get_unassigned_list)."""

    handover_userid: str
    external_userid: str
    dimission_time: int = 0


class FailedChat(WeComModel):
    """A customer group that a group handover could not move to the new owner."""

    chat_id: str
    errcode: int
    errmsg: str = ""
