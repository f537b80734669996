"""Groups made the way WeCom makes them: a `groupchat/get` answer applied by the sync."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy.orm import Session

from siyu.communities import sync
from siyu.communities.models import GroupChat
from siyu.wecom.schemas import GroupChat as WecomGroupChat

T0 = dt.datetime(2026, 3, 1, 2, 0, tzinfo=dt.UTC)


def chat_id() -> str:
    return "wr" + uuid.uuid4().hex[:20]


def wecom_chat(cid: str, *, name: str, owner: str, members: list[dict], notice: str = "", admins=(),
               created: dt.datetime = T0) -> WecomGroupChat:
    """`members`: dicts with userid, type (1 staff, 2 customer), and optional join_time (datetime),
    join_scene, invitor, state, name."""
    return WecomGroupChat.model_validate({
        "chat_id": cid, "name": name, "owner": owner, "create_time": int(created.timestamp()), "notice": notice,
        "admin_list": [{"userid": a} for a in admins],
        "member_list": [{"userid": m["userid"], "type": m.get("type", 2),
                         "join_time": int(m.get("join_time", created).timestamp()),
                         "join_scene": m.get("join_scene", 3),
                         **({"invitor": {"userid": m["invitor"]}} if m.get("invitor") else {}),
                         **({"state": m["state"]} if m.get("state") else {}),
                         **({"name": m["name"]} if m.get("name") else {})} for m in members],
    })


def make_group(session: Session, corp_id: int, *, name: str = "稳健理财福利群", owner: str = "zhang",
               customers: list[str] = (), at: dt.datetime = T0, cid: str | None = None) -> GroupChat:
    members = [{"userid": owner, "type": 1, "join_scene": 1}] + [{"userid": c, "type": 2} for c in customers]
    group, _ = sync.apply_group_chat(session, corp_id=corp_id, detail=wecom_chat(cid or chat_id(), name=name,
                                                                                 owner=owner, members=members,
                                                                                 created=at), at=at)
    return group
