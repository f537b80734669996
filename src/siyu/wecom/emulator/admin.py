"""The emulator's control API under /_emulator/: seed corps, act as customers, inspect what WeCom
would have delivered, set faults and move the clock. Not part of WeCom; tests, the demo and the
customer simulator drive the emulator through it."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from siyu.wecom.crypto import decode_aes_key
from siyu.wecom.emulator import archive, callbacks, contacts, groups, messaging, transfers
from siyu.wecom.emulator.api import revoke_tokens
from siyu.wecom.emulator.state import AdminError, CallbackConfig, Corp, EmulatorState, Faults, Limits


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CallbackIn(_Body):
    url: str
    token: str = Field(min_length=1)
    encoding_aes_key: str = Field(min_length=43, max_length=43)


class StaffIn(_Body):
    userid: str = Field(min_length=1, max_length=64)
    name: str = ""
    department: list[int] = Field(default_factory=lambda: [1])


class TagGroupIn(_Body):
    group_name: str
    tags: list[str] = Field(default_factory=list)
    order: int = 0


class CustomerIn(_Body):
    name: str | None = None
    external_userid: str | None = None
    gender: int = 0
    unionid: str | None = None
    follow: list[str] = Field(default_factory=list, description="staff who have this customer (no event sent)")


class GroupChatSeedIn(_Body):
    chat_id: str | None = None
    owner: str
    name: str = ""
    notice: str = ""
    members: list[str] = Field(default_factory=list)


class CorpIn(_Body):
    corp_id: str = Field(min_length=1, max_length=64)
    name: str = "Emulated corp"
    secret: str | None = Field(None, min_length=1)
    secrets: list[str] = Field(default_factory=list)
    agent_id: int = 1000002
    callback: CallbackIn | None = None
    staff: list[StaffIn] = Field(default_factory=list)
    tag_groups: list[TagGroupIn] = Field(default_factory=list)
    customers: list[CustomerIn] = Field(default_factory=list)
    group_chats: list[GroupChatSeedIn] = Field(default_factory=list, description="groups that exist already "
                                                                                   "(no event sent)")
    limits: dict[str, Any] = Field(default_factory=dict)


class AddContactIn(_Body):
    config_id: str | None = None
    userid: str | None = None
    external_userid: str | None = None
    name: str | None = None


class DeleteFollowIn(_Body):
    userid: str
    external_userid: str
    by: Literal["customer", "staff"] = "customer"


class GroupChatIn(_Body):
    owner: str
    name: str = ""
    members: list[str] = Field(default_factory=list)
    notice: str = ""


class MemberIn(_Body):
    member_id: str
    scene: int | None = None
    invitor: str | None = None
    state: str | None = None


class GroupUpdateIn(_Body):
    name: str | None = None
    notice: str | None = None
    admins: list[str] | None = None


class AdvanceIn(_Body):
    seconds: float = Field(ge=0)


class ConfirmIn(_Body):
    userid: str | None = None


class RefuseIn(_Body):
    external_userid: str


def _dump(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {k: _dump(v) for k, v in dataclasses.asdict(obj).items()}
    if isinstance(obj, list | tuple):
        return [_dump(v) for v in obj]
    if isinstance(obj, set):
        return sorted(obj)
    return obj


def seed_corp(state: EmulatorState, spec: CorpIn) -> Corp:
    secrets = [*([spec.secret] if spec.secret else []), *spec.secrets]
    if not secrets:
        raise AdminError(422, "give a secret (or secrets)")
    if spec.callback is not None:
        _check_aes_key(spec.callback.encoding_aes_key)
    try:
        limits = Limits.model_validate({**state.default_limits.model_dump(), **spec.limits})
    except ValueError as exc:
        raise AdminError(422, f"limits: {exc}") from None
    with state.lock:
        if spec.corp_id in state.corps:
            raise AdminError(409, f"corp {spec.corp_id!r} exists")
        corp = Corp(corp_id=spec.corp_id, name=spec.name, secrets=set(secrets), agent_id=spec.agent_id, limits=limits,
                    callback=CallbackConfig(**spec.callback.model_dump()) if spec.callback else None)
        state.corps[corp.corp_id] = corp
        for s in spec.staff:
            contacts.add_staff(state, corp, userid=s.userid, name=s.name or s.userid, department=s.department)
        for g in spec.tag_groups:
            contacts.create_tag_group(state, corp, group_name=g.group_name, tags=g.tags, order=g.order)
        for c in spec.customers:
            customer = contacts.add_customer(state, corp, name=c.name, external_userid=c.external_userid,
                                             gender=c.gender, unionid=c.unionid)
            for userid in c.follow:
                if userid not in corp.staff:
                    raise AdminError(404, f"no staff {userid!r}")
                corp.follows[(userid, customer.external_userid)] = contacts.Follow(
                    userid=userid, external_userid=customer.external_userid, createtime=int(state.now()),
                    add_way=contacts.ADD_WAY_SEARCH_PHONE)
        for g in spec.group_chats:
            groups.create_group_chat(state, corp, owner=g.owner, name=g.name, members=g.members, notice=g.notice,
                                     chat_id=g.chat_id, send_event=False)
        return corp


def _check_aes_key(key: str) -> None:
    try:
        decode_aes_key(key)
    except ValueError as exc:
        raise AdminError(422, f"callback.encoding_aes_key: {exc}") from None


def corp_summary(state: EmulatorState, corp: Corp) -> dict[str, Any]:
    with state.lock:
        transfers.settle(state, corp)
        return {
            "corp_id": corp.corp_id, "name": corp.name, "agent_id": corp.agent_id,
            "callback_url": corp.callback.url if corp.callback else None,
            "staff": [_dump(s) for s in corp.staff.values()],
            "tag_groups": [
                {**_dump(g), "tags": [_dump(t) for t in corp.tags.values() if t.group_id == g.group_id]}
                for g in corp.tag_groups.values()
            ],
            "counts": {"customers": len(corp.customers), "follows": len(corp.follows),
                       "contact_ways": len(corp.contact_ways), "group_chats": len(corp.group_chats),
                       "welcomes": len(corp.welcomes), "mass_messages": len(corp.mass_messages),
                       "moments": len(corp.moments), "transfers": len(corp.transfers),
                       "callbacks": len(corp.callbacks)},
            "limits": corp.limits.model_dump(), "faults": corp.faults.model_dump(),
        }


def build_admin_router(state: EmulatorState) -> APIRouter:
    r = APIRouter(prefix="/_emulator", tags=["emulator control"])

    def corp_of(corp_id: str) -> Corp:
        return state.corp(corp_id)

    @r.get("/health")
    def health() -> dict[str, Any]:
        return {"ok": True, "now": state.now(), "corps": len(state.corps)}

    @r.post("/reset")
    def reset() -> dict[str, Any]:
        state.reset()
        return {"ok": True}

    @r.get("/clock")
    def clock() -> dict[str, Any]:
        return {"now": state.now()}

    @r.post("/clock/advance")
    def advance(body: AdvanceIn) -> dict[str, Any]:
        return {"now": state.clock.advance(body.seconds)}

    @r.post("/corps", status_code=201)
    def create_corp(body: CorpIn) -> dict[str, Any]:
        return corp_summary(state, seed_corp(state, body))

    @r.get("/corps/{corp_id}")
    def get_corp(corp_id: str) -> dict[str, Any]:
        return corp_summary(state, corp_of(corp_id))

    @r.put("/corps/{corp_id}/callback")
    def set_callback(corp_id: str, body: CallbackIn) -> dict[str, Any]:
        corp = corp_of(corp_id)
        _check_aes_key(body.encoding_aes_key)
        with state.lock:
            corp.callback = CallbackConfig(**body.model_dump())
        return {"ok": True}

    @r.post("/corps/{corp_id}/callback/verify")
    async def verify_callback(corp_id: str) -> dict[str, Any]:
        corp = corp_of(corp_id)
        # The receiver may be served by this very process: do the blocking GET off the event loop.
        return await asyncio.to_thread(callbacks.verify_callback_url, state, corp)

    @r.patch("/corps/{corp_id}/limits")
    def set_limits(corp_id: str, body: dict[str, Any]) -> dict[str, Any]:
        corp = corp_of(corp_id)
        with state.lock:
            try:
                corp.limits = Limits.model_validate({**corp.limits.model_dump(), **body})
            except ValueError as exc:
                raise AdminError(422, str(exc)) from None
            return corp.limits.model_dump()

    @r.get("/corps/{corp_id}/faults")
    def get_faults(corp_id: str) -> dict[str, Any]:
        return corp_of(corp_id).faults.model_dump()

    @r.post("/corps/{corp_id}/faults")
    def set_faults(corp_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """Merge the given switches into the corp's faults; `rate_limit_seconds` starts a 45009
        storm of that length on the emulator clock."""
        corp = corp_of(corp_id)
        with state.lock:
            update = dict(body)
            if "rate_limit_seconds" in update:
                update["rate_limit_until"] = state.now() + float(update.pop("rate_limit_seconds"))
            try:
                corp.faults = Faults.model_validate({**corp.faults.model_dump(), **update})
            except ValueError as exc:
                raise AdminError(422, str(exc)) from None
            return corp.faults.model_dump()

    @r.delete("/corps/{corp_id}/faults")
    def clear_faults(corp_id: str) -> dict[str, Any]:
        corp = corp_of(corp_id)
        with state.lock:
            corp.faults = Faults()
        return corp.faults.model_dump()

    @r.post("/corps/{corp_id}/tokens/revoke")
    def revoke(corp_id: str) -> dict[str, Any]:
        return {"revoked": revoke_tokens(state, corp_of(corp_id))}

    @r.post("/corps/{corp_id}/staff", status_code=201)
    def add_staff(corp_id: str, body: StaffIn) -> dict[str, Any]:
        staff = contacts.add_staff(state, corp_of(corp_id), userid=body.userid, name=body.name or body.userid,
                                   department=body.department)
        return _dump(staff)

    @r.post("/corps/{corp_id}/staff/{userid}/resign")
    def resign(corp_id: str, userid: str) -> dict[str, Any]:
        return _dump(contacts.resign_staff(state, corp_of(corp_id), userid))

    @r.post("/corps/{corp_id}/customers", status_code=201)
    def add_customer(corp_id: str, body: CustomerIn) -> dict[str, Any]:
        if body.follow:
            raise AdminError(422, "follow: use add_contact to start a follow relation")
        return _dump(contacts.add_customer(state, corp_of(corp_id), name=body.name,
                                           external_userid=body.external_userid, gender=body.gender,
                                           unionid=body.unionid))

    @r.post("/corps/{corp_id}/add_contact", status_code=201)
    def add_contact(corp_id: str, body: AddContactIn) -> dict[str, Any]:
        """A customer scans a contact way (config_id) or adds a member of staff (userid)."""
        return contacts.customer_adds_staff(state, corp_of(corp_id), config_id=body.config_id, userid=body.userid,
                                            external_userid=body.external_userid, name=body.name)

    @r.post("/corps/{corp_id}/delete_follow")
    def delete_follow(corp_id: str, body: DeleteFollowIn) -> dict[str, Any]:
        contacts.remove_follow(state, corp_of(corp_id), userid=body.userid, external_userid=body.external_userid,
                               by=body.by)
        return {"ok": True}

    @r.get("/corps/{corp_id}/contact_ways")
    def contact_ways(corp_id: str) -> list[dict[str, Any]]:
        corp = corp_of(corp_id)
        with state.lock:
            return [_dump(w) for w in corp.contact_ways.values()]

    @r.get("/corps/{corp_id}/customers")
    def customers(corp_id: str) -> list[dict[str, Any]]:
        corp = corp_of(corp_id)
        with state.lock:
            return [_dump(c) for c in corp.customers.values()]

    @r.get("/corps/{corp_id}/follows")
    def follows(corp_id: str) -> list[dict[str, Any]]:
        corp = corp_of(corp_id)
        with state.lock:
            transfers.settle(state, corp)
            return [_dump(f) for f in corp.follows.values()]

    @r.get("/corps/{corp_id}/welcomes")
    def welcomes(corp_id: str) -> list[dict[str, Any]]:
        corp = corp_of(corp_id)
        with state.lock:
            return [_dump(w) for w in corp.welcomes]

    @r.get("/corps/{corp_id}/mass_messages")
    def mass_messages(corp_id: str) -> list[dict[str, Any]]:
        corp = corp_of(corp_id)
        with state.lock:
            return [_dump(m) for m in corp.mass_messages.values()]

    @r.post("/corps/{corp_id}/mass_messages/{msgid}/confirm")
    def confirm(corp_id: str, msgid: str, body: ConfirmIn) -> dict[str, Any]:
        return _dump(messaging.confirm_mass_message(state, corp_of(corp_id), msgid, body.userid))

    @r.get("/corps/{corp_id}/app_messages")
    def app_messages(corp_id: str) -> list[dict[str, Any]]:
        """The application messages staff received (message/send), as they read them in WeCom."""
        corp = corp_of(corp_id)
        with state.lock:
            return [_dump(m) for m in corp.app_messages]

    @r.get("/corps/{corp_id}/mass_messages/pending")
    def pending_mass_messages(corp_id: str, userid: str | None = None) -> list[dict[str, Any]]:
        """What each member sees waiting in WeCom's 群发助手: mass messages with results they have not
        confirmed yet (the simulated owner's to-do; confirm with POST …/{msgid}/confirm)."""
        corp = corp_of(corp_id)
        with state.lock:
            out = []
            for m in corp.mass_messages.values():
                waiting = sorted({x.userid for x in m.results
                                  if x.status == 0 and (userid is None or x.userid == userid)})
                if waiting:
                    out.append({"msgid": m.msgid, "chat_type": m.chat_type, "created": m.created, "userids": waiting})
            return out

    @r.get("/corps/{corp_id}/moments")
    def moments(corp_id: str) -> list[dict[str, Any]]:
        corp = corp_of(corp_id)
        with state.lock:
            return [_dump(m) for m in corp.moments.values()]

    @r.get("/corps/{corp_id}/transfers")
    def list_transfers(corp_id: str) -> list[dict[str, Any]]:
        corp = corp_of(corp_id)
        with state.lock:
            transfers.settle(state, corp)
            return [_dump(t) for t in corp.transfers]

    @r.post("/corps/{corp_id}/transfers/refuse")
    def refuse(corp_id: str, body: RefuseIn) -> dict[str, Any]:
        return _dump(transfers.refuse_transfer(state, corp_of(corp_id), body.external_userid))

    @r.get("/corps/{corp_id}/group_chats")
    def group_chats(corp_id: str) -> list[dict[str, Any]]:
        corp = corp_of(corp_id)
        with state.lock:
            return [_dump(c) for c in corp.group_chats.values() if not c.dismissed]

    @r.post("/corps/{corp_id}/group_chats", status_code=201)
    def create_group_chat(corp_id: str, body: GroupChatIn) -> dict[str, Any]:
        chat = groups.create_group_chat(state, corp_of(corp_id), owner=body.owner, name=body.name,
                                        members=body.members, notice=body.notice)
        return _dump(chat)

    @r.post("/corps/{corp_id}/group_chats/{chat_id}/join")
    def join(corp_id: str, chat_id: str, body: MemberIn) -> dict[str, Any]:
        chat = groups.join_group(state, corp_of(corp_id), chat_id, member_id=body.member_id,
                                 join_scene=body.scene if body.scene is not None else groups.JOIN_SCENE_QR,
                                 invitor=body.invitor, join_state=body.state)
        return _dump(chat)

    @r.post("/corps/{corp_id}/join_ways/{config_id}/scan")
    def scan_join_way(corp_id: str, config_id: str, body: MemberIn) -> dict[str, Any]:
        chat = groups.join_by_way(state, corp_of(corp_id), config_id, member_id=body.member_id)
        return {"chat_id": chat.chat_id, "name": chat.name, "members": len(chat.members)}

    @r.get("/corps/{corp_id}/join_ways")
    def join_ways(corp_id: str) -> list[dict[str, Any]]:
        corp = corp_of(corp_id)
        with state.lock:
            return [_dump(w) for w in corp.join_ways.values()]

    @r.post("/corps/{corp_id}/group_chats/{chat_id}/update")
    def update_chat(corp_id: str, chat_id: str, body: GroupUpdateIn) -> dict[str, Any]:
        chat = groups.update_group(state, corp_of(corp_id), chat_id, name=body.name, notice=body.notice,
                                   admins=body.admins)
        return _dump(chat)

    @r.post("/corps/{corp_id}/group_chats/{chat_id}/leave")
    def leave(corp_id: str, chat_id: str, body: MemberIn) -> dict[str, Any]:
        chat = groups.leave_group(state, corp_of(corp_id), chat_id, member_id=body.member_id,
                                  quit_scene=body.scene if body.scene is not None else groups.QUIT_SCENE_SELF)
        return _dump(chat)

    @r.post("/corps/{corp_id}/group_chats/{chat_id}/dismiss")
    def dismiss(corp_id: str, chat_id: str) -> dict[str, Any]:
        groups.dismiss_group(state, corp_of(corp_id), chat_id)
        return {"ok": True}

    @r.get("/corps/{corp_id}/callbacks")
    def callback_log(corp_id: str) -> list[dict[str, Any]]:
        corp = corp_of(corp_id)
        with state.lock:
            return [_dump(c) for c in corp.callbacks]

    @r.post("/corps/{corp_id}/callbacks/wait")
    async def wait_callbacks(corp_id: str, timeout: float = 10.0) -> dict[str, Any]:
        """Wait until every queued callback of the corp was delivered or given up."""
        corp_of(corp_id)
        idle = await asyncio.to_thread(state.dispatcher.wait_idle, timeout, corp_id)
        return {"idle": idle}

    @r.get("/corps/{corp_id}/calls")
    def calls(corp_id: str) -> list[dict[str, Any]]:
        corp = corp_of(corp_id)
        with state.lock:
            return [_dump(c) for c in corp.calls]

    archive.add_routes(r, state)
    return r
