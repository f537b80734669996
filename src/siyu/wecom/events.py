"""WeCom callback events: parse the decrypted XML, give each a natural key, map to domain events.

WeCom retries an event it thinks was not acknowledged and may deliver one twice; the natural key
is what the inbox dedupes on. A retry carries the same plaintext, so the key is built from the
event's own fields (never from the encrypted envelope, which is re-randomised each time)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from siyu.wecom.xmlsafe import MalformedXml, parse_xml_element

MAX_EVENT_BYTES = 64 * 1024


class EventParseError(ValueError):
    """The plaintext is not a WeCom event we can read (the callback answers 400)."""


def parse_xml(data: str | bytes) -> dict[str, object]:
    """Parse a flat WeCom XML document into a dict (nested elements become dicts/lists).

    Refuses DTDs and entities: WeCom never sends them and they are the usual XML attack surface."""
    raw = data.encode() if isinstance(data, str) else data
    if len(raw) > MAX_EVENT_BYTES:
        raise EventParseError("event too large")
    try:
        root = parse_xml_element(raw, max_bytes=MAX_EVENT_BYTES)
    except MalformedXml as exc:
        raise EventParseError(str(exc)) from None
    if root.tag != "xml":
        raise EventParseError("root element must be <xml>")
    return _element_to_dict(root)


def _element_to_dict(elem) -> dict[str, object]:
    out: dict[str, object] = {}
    for child in elem:
        value: object = _element_to_dict(child) if len(child) else (child.text or "").strip()
        if child.tag in out:
            existing = out[child.tag]
            out[child.tag] = (existing if isinstance(existing, list) else [existing]) + [value]
        else:
            out[child.tag] = value
    return out


# change_external_contact ChangeType -> domain event name
CONTACT_EVENTS = {
    "add_external_contact": "customer.added",
    "add_half_external_contact": "customer.added",
    "edit_external_contact": "customer.edited",
    "del_external_contact": "customer.deleted",  # the staff deleted the customer (but see TRANSFER_SOURCE)
    "del_follow_user": "customer.lost",  # the customer deleted the staff
    "transfer_fail": "customer.transfer_failed",
    "msg_audit_approved": "customer.archive_consented",
}

# del_external_contact with this Source: a handover (在职/离职继承) completed and WeCom moved the
# customer to the take-over member, who receives an add_external_contact of their own. Not a loss.
TRANSFER_SOURCE = "DELETE_BY_TRANSFER"
TRANSFERRED_OUT = "customer.transferred_out"

# change_external_chat: ChangeType (+ UpdateDetail for update) -> domain event name
CHAT_EVENTS = {
    "create": "group.created",
    "dismiss": "group.dismissed",
    ("update", "add_member"): "group.member_joined",
    ("update", "del_member"): "group.member_left",
    "update": "group.updated",
}


@dataclass(frozen=True)
class WecomEvent:
    corp_id: str  # ToUserName: the WeCom corp id
    event: str  # Event
    change_type: str
    create_time: int
    fields: dict[str, object] = field(default_factory=dict)

    @property
    def domain_event(self) -> str | None:
        if self.event == "change_external_contact":
            if self.change_type == "del_external_contact" and self.fields.get("Source") == TRANSFER_SOURCE:
                return TRANSFERRED_OUT
            return CONTACT_EVENTS.get(self.change_type)
        if self.event == "change_external_chat":
            if self.change_type == "update":
                return CHAT_EVENTS.get(("update", str(self.fields.get("UpdateDetail", ""))), "group.updated")
            return CHAT_EVENTS.get(self.change_type)  # type: ignore[call-overload]
        return None

    @property
    def natural_key(self) -> str:
        f = self.fields
        if self.event == "change_external_contact" and self.change_type in CONTACT_EVENTS:
            parts = [self.change_type, f.get("UserID"), f.get("ExternalUserID"), self.create_time,
                     f.get("WelcomeCode") or ""]
        elif self.event == "change_external_chat" and self.change_type in ("create", "update", "dismiss"):
            parts = [self.change_type, f.get("ChatId"), f.get("UpdateDetail") or "", self.create_time,
                     f.get("CurMemVer") or ""]
        else:
            parts = [self.event, self.change_type, self.create_time,
                     hashlib.sha256(repr(sorted(f.items())).encode()).hexdigest()]
        text = "|".join(str(p) for p in parts)
        # Keys stay short and index-friendly; the prefix keeps them readable in the console.
        return f"{self.event[:24]}:{hashlib.sha256(text.encode()).hexdigest()[:40]}"

    def payload(self) -> dict[str, object]:
        """What subscribers receive: the event's fields under snake_case names."""
        f = self.fields
        mapping = {
            "UserID": "userid",
            "ExternalUserID": "external_userid",
            "State": "state",
            "WelcomeCode": "welcome_code",
            "Source": "source",
            "FailReason": "fail_reason",
            "ChatId": "chat_id",
            "UpdateDetail": "update_detail",
            "JoinScene": "join_scene",
            "QuitScene": "quit_scene",
            "MemChangeCnt": "member_change_count",
            "MemChangeList": "member_change_list",
        }
        out: dict[str, object] = {"wecom_corp_id": self.corp_id, "change_type": self.change_type,
                                  "create_time": self.create_time}
        for src, dst in mapping.items():
            if src in f and f[src] not in ("", None):
                value = f[src]
                if src == "MemChangeList" and isinstance(value, dict):
                    items = value.get("Item", [])
                    value = items if isinstance(items, list) else [items]
                out[dst] = value
        return out


def parse_event(plaintext: str | bytes) -> WecomEvent:
    data = parse_xml(plaintext)
    corp_id = data.get("ToUserName")
    if not isinstance(corp_id, str) or not corp_id:
        raise EventParseError("ToUserName is missing")
    if data.get("MsgType") != "event":
        raise EventParseError("MsgType must be 'event'")
    event = data.get("Event")
    if not isinstance(event, str) or not event:
        raise EventParseError("Event is missing")
    try:
        create_time = int(str(data.get("CreateTime", "")))
    except ValueError:
        raise EventParseError("CreateTime must be an integer") from None
    change_type = str(data.get("ChangeType", ""))
    # A ChangeType Siyu does not know (WeCom adds new ones) is accepted and stored, with no domain
    # event: refusing it would make WeCom retry it for ever. Known ones must carry their ids.
    if event == "change_external_contact" and change_type in CONTACT_EVENTS:
        if change_type != "msg_audit_approved" and not data.get("UserID"):
            raise EventParseError("UserID is missing")
        if change_type not in ("msg_audit_approved",) and not data.get("ExternalUserID"):
            raise EventParseError("ExternalUserID is missing")
    elif event == "change_external_chat" and change_type in ("create", "update", "dismiss"):
        if not data.get("ChatId"):
            raise EventParseError("ChatId is missing")
    return WecomEvent(corp_id=corp_id, event=event, change_type=change_type, create_time=create_time,
                      fields={k: v for k, v in data.items() if k not in ("ToUserName", "MsgType", "Event",
                                                                         "ChangeType", "CreateTime")})
