"""Chat archive (会话存档): the messages between staff and customers, as WeCom's archive delivers them.

Real WeCom hands archived messages out only through its archive SDK (`GetChatData(seq, limit)`
returns `chatdata[]{seq, msgid, publickey_ver, encrypt_random_key, encrypt_chat_msg}`; the firm
decrypts each message with its RSA private key and `DecryptData`). The emulator serves the same
list already decrypted, which is what a deployment's archive bridge (the SDK wrapped in a small
service) hands to Siyu:

    GET /_emulator/corps/{corp_id}/archive?seq=N&limit=M        (messages with seq > N, at most M ≤ 1000)
    {"errcode": 0, "errmsg": "ok",
     "chatdata": [{"seq": 1, "msgid": "...", "publickey_ver": 1, "message": {...}}]}

`message` is the decrypted record in the shape the official archive tool writes (one per line in
its JSON-lines export):

    {"msgid": "...", "action": "send", "from": "zhangsan", "tolist": ["wmXXXX"], "roomid": "",
     "msgtime": 1700000000123, "msgtype": "text", "text": {"content": "..."}}

and per `msgtype` instead of `text`:
    image      "image": {"md5sum": "...", "filesize": 0, "sdkfileid": "..."}
    link       "link": {"title": "...", "description": "...", "link_url": "https://...", "image_url": ""}
    redpacket  "redpacket": {"type": 1, "wish": "恭喜发财", "totalcnt": 1, "totalamount": 888}   (fen)
    transfer   "transfer": {"amount": 10000, "memo": "..."}                                  (fen)
    card       "card": {"corpname": "...", "userid": "..."}                       (a contact card, 名片)
    weapp      "weapp": {"title": "...", "description": "...", "username": "...", "displayname": "..."} (小程序)

`msgtime` is in milliseconds; `roomid` is the group chat id ("" in a single chat).

Consent: WeCom archives a customer's conversations only once the customer agreed (the
`msg_audit_approved` event). As in WeCom, a customer has not consented until they answer
`POST …/archive/consent` (agreeing sends the event); a corp's `archive_consent_default` limit is
the friendlier switch a test or the demo turns on explicitly to treat everyone as having agreed.
A message is archived when it is sent, and only if every customer in it has consented then.

Control API (tests, the demo and the customer simulator):
    POST /_emulator/corps/{corp_id}/messages   {from, to[], roomid?, msgtype, text, msgtime?, …}
    POST /_emulator/corps/{corp_id}/archive/consent   {external_userid, userid?, agree}
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from siyu.wecom.emulator.callbacks import emit
from siyu.wecom.emulator.state import AdminError, Corp, EmulatorState, locked

FEED_MAX_LIMIT = 1000  # GetChatData's limit
PUBLICKEY_VER = 1
MSGTYPES = ("text", "image", "link", "redpacket", "transfer", "card", "weapp")


class MessageIn(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: str = Field(alias="from", min_length=1, max_length=64)
    to: list[str] = Field(default_factory=list, max_length=500)
    roomid: str | None = Field(None, max_length=64)
    msgtype: Literal["text", "image", "link", "redpacket", "transfer", "card", "weapp"] = "text"
    text: str = Field("", max_length=4000, description="text: the content; redpacket: the wish; transfer: the memo; "
                                                      "link, weapp: the title; card: the card's name (userid)")
    description: str = Field("", max_length=500, description="link, weapp: its description; card: the company")
    link_url: str = Field("", max_length=2000)
    amount: int = Field(0, ge=0, le=100_000_000, description="redpacket / transfer: fen")
    msgtime: int | None = Field(None, ge=0, description="milliseconds since the epoch (default: now)")


class ConsentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    external_userid: str
    userid: str | None = None
    agree: bool = True


def _is_customer(corp: Corp, who: str) -> bool:
    return who in corp.customers


def _party(corp: Corp, who: str, field: str) -> None:
    if who not in corp.staff and who not in corp.customers:
        raise AdminError(404, f"{field}: {who!r} is neither staff nor a customer of this corp")


def _content(body: MessageIn, msgid: str) -> dict[str, Any]:
    if body.msgtype == "text":
        if not body.text:
            raise AdminError(422, "text: a text message needs its content")
        return {"text": {"content": body.text}}
    if body.msgtype == "image":
        return {"image": {"md5sum": hashlib.md5(msgid.encode()).hexdigest(), "filesize": 0,  # noqa: S324
                          "sdkfileid": "emulator-" + msgid}}
    if body.msgtype == "link":
        if not body.link_url:
            raise AdminError(422, "link_url: a link message needs its URL")
        return {"link": {"title": body.text, "description": body.description, "link_url": body.link_url,
                         "image_url": ""}}
    if body.msgtype == "card":
        if not body.text:
            raise AdminError(422, "text: a card message needs the card's user id")
        return {"card": {"corpname": body.description, "userid": body.text}}
    if body.msgtype == "weapp":
        if not body.text:
            raise AdminError(422, "text: a mini-program message needs its title")
        return {"weapp": {"title": body.text, "description": body.description, "username": "gh_emulator@app",
                          "displayname": body.description or body.text}}
    if body.msgtype == "redpacket":
        return {"redpacket": {"type": 1, "wish": body.text or "恭喜发财，大吉大利", "totalcnt": 1,
                              "totalamount": body.amount}}
    return {"transfer": {"amount": body.amount, "memo": body.text}}


@locked
def send_message(state: EmulatorState, corp: Corp, body: MessageIn) -> dict[str, Any]:
    """A member of staff or a customer sends a message; archived when every customer in it consented."""
    _party(corp, body.from_, "from")
    tolist = list(dict.fromkeys(body.to))
    roomid = body.roomid or ""
    if roomid:
        chat = corp.group_chats.get(roomid)
        if chat is None or chat.dismissed:
            raise AdminError(404, f"roomid: no group chat {roomid!r}")
        if body.from_ not in chat.members:
            raise AdminError(422, f"from: {body.from_!r} is not a member of the group chat")
        if not tolist:
            tolist = [m for m in chat.members if m != body.from_]
    elif not tolist:
        raise AdminError(422, "to: a single chat needs a recipient")
    for who in tolist:
        _party(corp, who, "to")
    msgid = state.new_id("", 20) + "_" + str(int(state.now() * 1000))
    msgtime = body.msgtime if body.msgtime is not None else int(state.now() * 1000)
    record: dict[str, Any] = {"msgid": msgid, "action": "send", "from": body.from_, "tolist": tolist,
                              "roomid": roomid, "msgtime": msgtime, "msgtype": body.msgtype,
                              **_content(body, msgid)}
    if not roomid and _is_customer(corp, body.from_):
        # The customer started chatting: their add's welcome is no longer possible (41051).
        for code in corp.welcome_codes.values():
            if code.external_userid == body.from_ and code.userid in tolist and code.chatted_at is None:
                code.chatted_at = state.now()
    customers = [w for w in (body.from_, *tolist) if _is_customer(corp, w)]
    if not roomid:  # who last chatted with the customer (add_msg_template without a sender)
        staff = [w for w in (body.from_, *tolist) if w in corp.staff]
        for customer in customers:
            if staff:
                corp.last_chat[customer] = (state.now(), staff[0])
    consent_default = corp.limits.archive_consent_default
    archived = all(corp.archive_consent.get(c, consent_default) for c in customers)
    seq = None
    if archived:
        seq = len(corp.archive) + 1
        corp.archive.append({"seq": seq, "msgid": msgid, "publickey_ver": PUBLICKEY_VER, "message": record})
    return {"msgid": msgid, "archived": archived, "seq": seq, "message": record}


@locked
def set_consent(state: EmulatorState, corp: Corp, body: ConsentIn) -> dict[str, Any]:
    """The customer answers the archive-consent prompt; agreeing sends `msg_audit_approved`."""
    if body.external_userid not in corp.customers:
        raise AdminError(404, f"external_userid: no customer {body.external_userid!r}")
    userid = body.userid
    if userid is None:
        follows = corp.follows_of_customer(body.external_userid)
        userid = follows[0].userid if follows else None
    elif userid not in corp.staff:
        raise AdminError(404, f"userid: no staff {userid!r}")
    corp.archive_consent[body.external_userid] = body.agree
    if body.agree:
        fields: list[tuple[str, str]] = [("ExternalUserID", body.external_userid)]
        if userid:
            fields.insert(0, ("UserID", userid))
        emit(state, corp, "change_external_contact", "msg_audit_approved", fields)
    return {"external_userid": body.external_userid, "userid": userid, "agree": body.agree}


@locked
def chat_data(state: EmulatorState, corp: Corp, *, seq: int, limit: int) -> dict[str, Any]:
    # seq n is at index n - 1: records are appended in order and never removed.
    return {"errcode": 0, "errmsg": "ok", "chatdata": [dict(r) for r in corp.archive[seq: seq + limit]]}


def add_routes(r: APIRouter, state: EmulatorState) -> None:
    """Adds the archive's control routes to the emulator's /_emulator router."""

    @r.post("/corps/{corp_id}/messages", status_code=201)
    def post_message(corp_id: str, body: MessageIn) -> dict[str, Any]:
        return send_message(state, state.corp(corp_id), body)

    @r.post("/corps/{corp_id}/archive/consent")
    def post_consent(corp_id: str, body: ConsentIn) -> dict[str, Any]:
        return set_consent(state, state.corp(corp_id), body)

    @r.get("/corps/{corp_id}/archive")
    def get_archive(corp_id: str, seq: int = Query(0, ge=0),
                    limit: int = Query(100, ge=1, le=FEED_MAX_LIMIT)) -> dict[str, Any]:
        return chat_data(state, state.corp(corp_id), seq=seq, limit=limit)
