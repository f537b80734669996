"""Customers and follow relations: contact ways (渠道活码), adds, deletes, tags, welcome messages,
and the read endpoints (get, list, batch/get_by_user).

Operations take the state and the corp first, run under the state lock, and raise `ApiError`
with WeCom's errcode where WeCom would refuse (`AdminError` for misuse of the control API)."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

from siyu.wecom.emulator.callbacks import emit
from siyu.wecom.emulator.state import (
    EXTERNAL_USERID_PREFIX,
    AdminError,
    ApiError,
    ContactWay,
    Corp,
    Customer,
    DeliveredWelcome,
    EmulatorState,
    Follow,
    Staff,
    Tag,
    TagGroup,
    WelcomeCode,
    locked,
)

EXTERNAL_USERID_RE = re.compile(r"^w[mo][A-Za-z0-9_-]{8,62}$")
STATE_MAX_CHARS = 30
ADD_WAY_QR = 1  # 扫描二维码
ADD_WAY_SEARCH_PHONE = 2

_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
_GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华"


# --- cursors -------------------------------------------------------------------------------------


def encode_cursor(kind: str, offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps([kind, offset]).encode()).decode().rstrip("=")


def decode_cursor(kind: str, cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        got_kind, offset = json.loads(raw)
    except (ValueError, TypeError):
        raise ApiError(40058, "invalid cursor") from None
    if got_kind != kind or not isinstance(offset, int) or offset < 0:
        raise ApiError(40058, "invalid cursor")
    return offset


# --- validation helpers --------------------------------------------------------------------------


def require_staff(corp: Corp, userid: object, *, active: bool = False) -> Staff:
    staff = corp.staff.get(userid) if isinstance(userid, str) else None
    if staff is None or (active and staff.status != "active"):
        raise ApiError(60111, f"invalid userid: {userid}")
    return staff


def require_customer(corp: Corp, external_userid: object) -> Customer:
    if not isinstance(external_userid, str) or not EXTERNAL_USERID_RE.match(external_userid):
        raise ApiError(40096, f"invalid external userid: {external_userid}")
    customer = corp.customers.get(external_userid)
    if customer is None:  # ids are per corp: another corp's id is as invalid as a made-up one
        raise ApiError(40096, f"invalid external userid: {external_userid}")
    return customer


def _str_list(body: dict[str, Any], key: str) -> list[str]:
    value = body.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ApiError(40058, f"{key} must be a list of strings")
    return value


def random_name(state: EmulatorState) -> str:
    return state.rng.choice(_SURNAMES) + "".join(state.rng.choice(_GIVEN) for _ in range(state.rng.randint(1, 2)))


# --- control-API operations (what happens on the customer's phone) ------------------------------


@locked
def add_staff(state: EmulatorState, corp: Corp, *, userid: str, name: str, department: list[int] | None = None
              ) -> Staff:
    if userid in corp.staff:
        raise AdminError(409, f"staff {userid!r} exists")
    staff = Staff(userid=userid, name=name, department=department or [1])
    corp.staff[userid] = staff
    return staff


@locked
def resign_staff(state: EmulatorState, corp: Corp, userid: str) -> Staff:
    staff = corp.staff.get(userid)
    if staff is None:
        raise AdminError(404, f"no staff {userid!r}")
    staff.status, staff.resigned_at = "resigned", state.now()
    return staff


@locked
def add_customer(state: EmulatorState, corp: Corp, *, name: str | None = None, external_userid: str | None = None,
                 gender: int = 0, unionid: str | None = None) -> Customer:
    if external_userid is None:
        external_userid = state.new_id(EXTERNAL_USERID_PREFIX)
    elif not EXTERNAL_USERID_RE.match(external_userid):
        raise AdminError(422, "external_userid must look like wm + 8..62 letters, digits, _ or -")
    if external_userid in corp.customers:
        raise AdminError(409, f"customer {external_userid!r} exists")
    customer = Customer(external_userid=external_userid, name=name or random_name(state), gender=gender,
                        unionid=unionid, avatar=f"https://wework.qpic.cn/emulator/{external_userid}/0")
    corp.customers[external_userid] = customer
    return customer


@locked
def create_tag_group(state: EmulatorState, corp: Corp, *, group_name: str, tags: list[str], order: int = 0
                     ) -> TagGroup:
    now = int(state.now())
    group = TagGroup(group_id=state.new_id("et"), group_name=group_name, create_time=now, order=order)
    corp.tag_groups[group.group_id] = group
    for i, name in enumerate(tags):
        tag = Tag(id=state.new_id("et"), name=name, group_id=group.group_id, create_time=now, order=i)
        corp.tags[tag.id] = tag
    return group


@locked
def customer_adds_staff(state: EmulatorState, corp: Corp, *, config_id: str | None = None, userid: str | None = None,
                        external_userid: str | None = None, name: str | None = None) -> dict[str, Any]:
    """A customer scans a contact way (or adds a member of staff directly): the follow relation
    starts, a welcome code is issued and the add event goes to the callback URL."""
    way: ContactWay | None = None
    if config_id is not None:
        way = corp.contact_ways.get(config_id)
        if way is None:
            raise AdminError(404, f"no contact way {config_id!r}")
        candidates = [u for u in way.users if u in corp.staff and corp.staff[u].status == "active"]
        candidates += [s.userid for s in corp.staff.values()
                       if s.status == "active" and set(s.department) & set(way.parties) and s.userid not in candidates]
        if userid is None:
            if not candidates:
                raise AdminError(409, "nobody on this contact way can be added")
            userid = state.rng.choice(candidates)
        elif userid not in candidates:
            raise AdminError(422, f"{userid!r} is not on this contact way")
    if userid is None:
        raise AdminError(422, "give config_id or userid")
    staff = corp.staff.get(userid)
    if staff is None or staff.status != "active":
        raise AdminError(404, f"no active staff {userid!r}")
    if external_userid is None:
        customer = add_customer(state, corp, name=name)
    else:
        customer = corp.customers.get(external_userid) or add_customer(state, corp, name=name,
                                                                       external_userid=external_userid)
    if (userid, customer.external_userid) in corp.follows:
        raise AdminError(409, f"{customer.external_userid} already follows {userid}")
    now = state.now()
    follow = Follow(userid=userid, external_userid=customer.external_userid, createtime=int(now),
                    add_way=ADD_WAY_QR if way is not None else ADD_WAY_SEARCH_PHONE,
                    state=way.state if way is not None else None)
    corp.follows[(userid, customer.external_userid)] = follow
    welcome_code = None
    if corp.limits.issue_welcome_codes:
        welcome_code = state.new_id("", 43)
        corp.welcome_codes[welcome_code] = WelcomeCode(welcome_code, userid, customer.external_userid, now)
    fields: list[tuple[str, str | int | list[str]]] = [("UserID", userid), ("ExternalUserID", customer.external_userid)]
    if follow.state:
        fields.append(("State", follow.state))
    if welcome_code:
        fields.append(("WelcomeCode", welcome_code))
    emit(state, corp, "change_external_contact", "add_external_contact", fields)
    return {"external_userid": customer.external_userid, "userid": userid, "state": follow.state,
            "welcome_code": welcome_code, "name": customer.name}


@locked
def remove_follow(state: EmulatorState, corp: Corp, *, userid: str, external_userid: str, by: str) -> None:
    """`by="customer"`: the customer deleted the member of staff (del_follow_user);
    `by="staff"`: the member of staff deleted the customer (del_external_contact)."""
    if corp.follows.pop((userid, external_userid), None) is None:
        raise AdminError(404, f"{external_userid} does not follow {userid}")
    change = "del_follow_user" if by == "customer" else "del_external_contact"
    fields: list[tuple[str, str | int | list[str]]] = [("UserID", userid), ("ExternalUserID", external_userid)]
    if by == "staff":
        fields.append(("Source", "API"))
    emit(state, corp, "change_external_contact", change, fields)


# --- API endpoints -----------------------------------------------------------------------------


@locked
def add_contact_way(state: EmulatorState, corp: Corp, body: dict[str, Any]) -> dict[str, Any]:
    way_type, scene = body.get("type"), body.get("scene")
    if way_type not in (1, 2) or scene not in (1, 2):
        raise ApiError(40058, "type and scene must be 1 or 2")
    users = _str_list(body, "user")
    parties = body.get("party") or []
    if not isinstance(parties, list) or not all(isinstance(p, int) for p in parties):
        raise ApiError(40058, "party must be a list of department ids")
    if way_type == 1 and (len(users) != 1 or parties):
        raise ApiError(40058, "a single-person contact way needs exactly one user")
    if not users and not parties:
        raise ApiError(40058, "user and party are both empty")
    for u in users:
        require_staff(corp, u, active=True)
    state_param = body.get("state")
    if state_param is not None and (not isinstance(state_param, str) or len(state_param) > STATE_MAX_CHARS):
        raise ApiError(40058, f"state must be a string of at most {STATE_MAX_CHARS} characters")
    remark = body.get("remark")
    if remark is not None and (not isinstance(remark, str) or len(remark) > 30):
        raise ApiError(40058, "remark must be at most 30 characters")
    config_id = state.new_id("", 32).lower()
    qr = f"https://wework.qpic.cn/wwpic/emulator/{config_id}/0" if scene == 2 else None
    corp.contact_ways[config_id] = ContactWay(config_id=config_id, type=way_type, scene=scene, users=users,
                                              parties=parties, state=state_param, remark=remark,
                                              skip_verify=bool(body.get("skip_verify", True)), qr_code=qr,
                                              created=state.now())
    out: dict[str, Any] = {"config_id": config_id}
    if qr:
        out["qr_code"] = qr
    return out


def _require_way(corp: Corp, body: dict[str, Any]) -> ContactWay:
    config_id = body.get("config_id")
    if not isinstance(config_id, str) or not config_id:
        raise ApiError(40058, "config_id is required")
    way = corp.contact_ways.get(config_id)
    if way is None:  # WeCom does not say which corp's it was: another corp's id is invalid too
        raise ApiError(40058, f"invalid config_id: {config_id}")
    return way


@locked
def update_contact_way(state: EmulatorState, corp: Corp, body: dict[str, Any]) -> dict[str, Any]:
    """Changes a contact way in place: what is given replaces what was there (user and party as
    whole lists); the QR code and config_id stay the same."""
    way = _require_way(corp, body)
    users, parties = way.users, way.parties
    if "user" in body:
        users = _str_list(body, "user")
        for u in users:
            require_staff(corp, u, active=True)
    if "party" in body:
        parties = body.get("party") or []
        if not isinstance(parties, list) or not all(isinstance(p, int) for p in parties):
            raise ApiError(40058, "party must be a list of department ids")
    if way.type == 1 and (len(users) != 1 or parties):
        raise ApiError(40058, "a single-person contact way needs exactly one user")
    if not users and not parties:
        raise ApiError(40058, "user and party are both empty")
    state_param = body.get("state", way.state)
    if state_param is not None and (not isinstance(state_param, str) or len(state_param) > STATE_MAX_CHARS):
        raise ApiError(40058, f"state must be a string of at most {STATE_MAX_CHARS} characters")
    remark = body.get("remark", way.remark)
    if remark is not None and (not isinstance(remark, str) or len(remark) > 30):
        raise ApiError(40058, "remark must be at most 30 characters")
    way.users, way.parties, way.state, way.remark = list(users), list(parties), state_param, remark
    if "skip_verify" in body:
        way.skip_verify = bool(body["skip_verify"])
    return {}


@locked
def del_contact_way(state: EmulatorState, corp: Corp, body: dict[str, Any]) -> dict[str, Any]:
    way = _require_way(corp, body)
    del corp.contact_ways[way.config_id]
    return {}


def _follow_user_api(corp: Corp, follow: Follow) -> dict[str, Any]:
    tags = []
    for tag_id in follow.tags:
        tag = corp.tags.get(tag_id)
        if tag is not None:
            group = corp.tag_groups.get(tag.group_id)
            tags.append({"group_name": group.group_name if group else "", "tag_name": tag.name, "tag_id": tag.id,
                         "type": 1})
    out: dict[str, Any] = {"userid": follow.userid, "remark": follow.remark, "description": follow.description,
                           "createtime": follow.createtime, "tags": tags, "add_way": follow.add_way}
    if follow.oper_userid:
        out["oper_userid"] = follow.oper_userid
    if follow.state:
        out["state"] = follow.state
    return out


@locked
def get_external_contact(state: EmulatorState, corp: Corp, params: dict[str, Any]) -> dict[str, Any]:
    customer = require_customer(corp, params.get("external_userid"))
    follows = sorted(corp.follows_of_customer(customer.external_userid), key=lambda f: (f.createtime, f.userid))
    if not follows:
        raise ApiError(84061, "not external contact")
    page = corp.limits.follow_user_page_size
    offset = decode_cursor("follow", params.get("cursor"))
    chunk = follows[offset:offset + page]
    out: dict[str, Any] = {"external_contact": customer.as_api(),
                           "follow_user": [_follow_user_api(corp, f) for f in chunk]}
    if offset + page < len(follows):
        out["next_cursor"] = encode_cursor("follow", offset + page)
    return out


@locked
def list_external_contacts(state: EmulatorState, corp: Corp, params: dict[str, Any]) -> dict[str, Any]:
    staff = require_staff(corp, params.get("userid"))
    ids = [f.external_userid for f in sorted(corp.follows_of_staff(staff.userid), key=lambda f: f.createtime)]
    if not ids:
        raise ApiError(84061, "not external contact")  # WeCom answers this, not an empty list
    return {"external_userid": ids}


@locked
def batch_get_by_user(state: EmulatorState, corp: Corp, body: dict[str, Any]) -> dict[str, Any]:
    userids = _str_list(body, "userid_list")
    if not userids and isinstance(body.get("userid"), str):
        userids = [body["userid"]]  # the older single-user form
    if not 1 <= len(userids) <= 100:
        raise ApiError(40058, "userid_list must hold 1 to 100 userids")
    limit = body.get("limit", 50)
    if not isinstance(limit, int) or limit < 1:
        raise ApiError(40058, "limit must be a positive integer")
    limit = min(limit, 100)  # WeCom clamps a larger limit to 100 rather than refusing it
    for u in userids:
        require_staff(corp, u)
    follows = sorted((f for f in corp.follows.values() if f.userid in userids),
                     key=lambda f: (userids.index(f.userid), f.createtime, f.external_userid))
    offset = decode_cursor("batch", body.get("cursor"))
    chunk = follows[offset:offset + limit]
    items = []
    for f in chunk:
        info = {"userid": f.userid, "remark": f.remark, "description": f.description, "createtime": f.createtime,
                "tag_id": list(f.tags), "add_way": f.add_way}
        if f.state:
            info["state"] = f.state
        if f.oper_userid:
            info["oper_userid"] = f.oper_userid
        items.append({"external_contact": corp.customers[f.external_userid].as_api(), "follow_info": info})
    out: dict[str, Any] = {"external_contact_list": items, "next_cursor": ""}
    if offset + limit < len(follows):
        out["next_cursor"] = encode_cursor("batch", offset + limit)
    return out


@locked
def mark_tag(state: EmulatorState, corp: Corp, body: dict[str, Any]) -> dict[str, Any]:
    staff = require_staff(corp, body.get("userid"))
    customer = require_customer(corp, body.get("external_userid"))
    add, remove = _str_list(body, "add_tag"), _str_list(body, "remove_tag")
    if not add and not remove:
        raise ApiError(40058, "add_tag and remove_tag are both empty")
    for tag_id in add + remove:
        if tag_id not in corp.tags:
            raise ApiError(40068, f"invalid tag id: {tag_id}")
    follow = corp.follows.get((staff.userid, customer.external_userid))
    if follow is None:
        raise ApiError(84061, "not external contact")
    for tag_id in add:
        if tag_id not in follow.tags:
            follow.tags.append(tag_id)
    follow.tags = [t for t in follow.tags if t not in remove]
    return {}


@locked
def get_corp_tag_list(state: EmulatorState, corp: Corp, body: dict[str, Any]) -> dict[str, Any]:
    tag_ids, group_ids = set(_str_list(body, "tag_id")), set(_str_list(body, "group_id"))
    groups = []
    for group in sorted(corp.tag_groups.values(), key=lambda g: -g.order):  # stable: creation order next
        tags = [t for t in corp.tags.values() if t.group_id == group.group_id]
        if tag_ids:  # tag_id filters tags (and wins over group_id, as in WeCom)
            tags = [t for t in tags if t.id in tag_ids]
            if not tags:
                continue
        elif group_ids and group.group_id not in group_ids:
            continue
        groups.append({"group_id": group.group_id, "group_name": group.group_name, "create_time": group.create_time,
                       "order": group.order, "deleted": False,
                       "tag": [{"id": t.id, "name": t.name, "create_time": t.create_time, "order": t.order,
                                "deleted": False} for t in sorted(tags, key=lambda t: t.order)]})
    return {"tag_group": groups}


@locked
def send_welcome_msg(state: EmulatorState, corp: Corp, body: dict[str, Any]) -> dict[str, Any]:
    code = body.get("welcome_code")
    if not isinstance(code, str) or not code:
        raise ApiError(40058, "welcome_code is required")
    text = body.get("text") or {}
    content = text.get("content") if isinstance(text, dict) else None
    attachments = body.get("attachments") or []
    if not content and not attachments:
        raise ApiError(44004, "empty content")
    if not isinstance(attachments, list) or len(attachments) > 9:
        raise ApiError(40058, "attachments must be a list of at most 9")
    welcome = corp.welcome_codes.get(code)
    now = state.now()
    # WeCom documents no errcode of its own for an unknown or expired code: it is an invalid
    # parameter. 41051 means the welcome is no longer possible for this add: the customer has
    # already started chatting, or the first welcome with this code (any application's) went out.
    if welcome is None or now - welcome.issued_at > corp.limits.welcome_code_ttl:
        raise ApiError(40058, "invalid welcome_code (unknown, or past its 20 s)")
    if welcome.used_at is not None or welcome.chatted_at is not None:
        raise ApiError(41051, "externaluser has started chatting")
    if corp.faults.welcome_elsewhere_next > 0:
        corp.faults.welcome_elsewhere_next -= 1
        raise ApiError(41096, "another application is sending a welcome message now")
    welcome.used_at = now
    corp.welcomes.append(DeliveredWelcome(userid=welcome.userid, external_userid=welcome.external_userid,
                                          text=content, attachments=list(attachments), sent_at=now,
                                          welcome_code=code))
    return {}
