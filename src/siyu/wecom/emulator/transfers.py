"""Handover of customers (在职继承 / 离职继承).

Both kinds take at most `transfer_batch_max` (100) customers a call and complete after
`takeover_delay` (24 h) on the emulator clock; until then the customer stays with the handover
member and a second transfer answers 40129. An active transfer may refuse (the customer says
no during the 24 h) and is limited to two per customer per 90 days (40128). Completion is
evaluated lazily: `settle` runs before every API call and admin read."""

from __future__ import annotations

from typing import Any

from siyu.wecom.emulator.callbacks import emit
from siyu.wecom.emulator.contacts import EXTERNAL_USERID_RE, decode_cursor, encode_cursor, require_staff
from siyu.wecom.emulator.state import AdminError, ApiError, Corp, EmulatorState, Follow, Transfer, locked

ADD_WAY_ASSIGNED = 202  # 管理员/负责人分配
TRANSFER_MSG_MAX_CHARS = 200


def _request(state: EmulatorState, corp: Corp, body: dict[str, Any], kind: str) -> dict[str, Any]:
    handover = require_staff(corp, body.get("handover_userid"))
    takeover = require_staff(corp, body.get("takeover_userid"), active=True)
    if handover.userid == takeover.userid:
        raise ApiError(40058, "handover_userid and takeover_userid are the same")
    if kind == "resigned" and handover.status != "resigned":
        raise ApiError(40097, "handover user has not resigned")
    if kind == "active" and handover.status != "active":
        raise ApiError(60111, "handover user is not an active member")
    ids = body.get("external_userid")
    if not isinstance(ids, list) or not ids:
        raise ApiError(40058, "external_userid must be a non-empty list")
    if len(ids) > corp.limits.transfer_batch_max:
        raise ApiError(40058, f"external_userid holds at most {corp.limits.transfer_batch_max} customers a call")
    message = body.get("transfer_success_msg")
    if kind == "active" and message is not None and (not isinstance(message, str)
                                                     or len(message) > TRANSFER_MSG_MAX_CHARS):
        raise ApiError(40058, f"transfer_success_msg is at most {TRANSFER_MSG_MAX_CHARS} characters")
    now = state.now()
    limits = corp.limits
    results = []
    for ext in ids:
        if not isinstance(ext, str) or not EXTERNAL_USERID_RE.match(ext) or ext not in corp.customers:
            code = 40096
        elif (handover.userid, ext) not in corp.follows:
            code = 84061
        elif any(t.external_userid == ext and t.status == "waiting" for t in corp.transfers):
            code = 40129  # already being transferred
        elif kind == "active" and sum(
            1 for t in corp.transfers
            if t.kind == "active" and t.external_userid == ext and t.status not in ("failed", "void")
            and now - t.requested_at < limits.active_transfer_window
        ) >= limits.active_transfers_per_window:
            code = 40128  # transferred too often
        else:
            code = 0
            corp.transfers.append(Transfer(kind=kind, handover_userid=handover.userid, takeover_userid=takeover.userid,
                                           external_userid=ext, requested_at=now,
                                           takeover_at=now + limits.takeover_delay,
                                           success_msg=message if kind == "active" else None))
        results.append({"external_userid": ext, "errcode": code})
    return {"customer": results}


@locked
def transfer_customer(state: EmulatorState, corp: Corp, body: dict[str, Any]) -> dict[str, Any]:
    return _request(state, corp, body, "active")


@locked
def resigned_transfer_customer(state: EmulatorState, corp: Corp, body: dict[str, Any]) -> dict[str, Any]:
    return _request(state, corp, body, "resigned")


@locked
def refuse_transfer(state: EmulatorState, corp: Corp, external_userid: str) -> Transfer:
    """The customer declines an active transfer during the 24 h (resigned ones cannot be refused)."""
    for t in corp.transfers:
        if t.external_userid == external_userid and t.status == "waiting" and t.kind == "active":
            t.refused = True
            return t
    raise AdminError(404, f"no waiting active transfer of {external_userid}")


@locked
def settle(state: EmulatorState, corp: Corp) -> None:
    """Complete the transfers whose 24 h are over. A completed one moves the follow relation and
    sends what WeCom sends: `del_external_contact` with `Source=DELETE_BY_TRANSFER` to the handing
    member and `add_external_contact` to the taking one (no State: no contact way was scanned; no
    WelcomeCode: the customer is not newly added, and an active transfer's greeting is its
    `transfer_success_msg`). A refusal or a take-over member at their customer limit sends
    `transfer_fail` with that reason; a transfer that no longer applies (the customer left the
    handing member, or already follows the taking one) ends without an event ("no record")."""
    now = state.now()
    for t in corp.transfers:
        if t.status != "waiting" or t.takeover_at > now:
            continue
        old = corp.follows.get((t.handover_userid, t.external_userid))
        if t.refused:
            t.status = "refused"
            _transfer_fail(state, corp, t, "customer_refused")
            continue
        if old is None or (t.takeover_userid, t.external_userid) in corp.follows:
            t.status = "void"
            continue
        if len(corp.follows_of_staff(t.takeover_userid)) >= corp.limits.customers_per_staff:
            t.status = "failed"
            _transfer_fail(state, corp, t, "customer_limit_exceed")
            continue
        del corp.follows[(t.handover_userid, t.external_userid)]
        corp.follows[(t.takeover_userid, t.external_userid)] = Follow(
            userid=t.takeover_userid, external_userid=t.external_userid, createtime=int(t.takeover_at),
            add_way=ADD_WAY_ASSIGNED, remark=old.remark, description=old.description,
            oper_userid=t.handover_userid, tags=list(old.tags))
        t.status = "done"
        emit(state, corp, "change_external_contact", "del_external_contact",
             [("UserID", t.handover_userid), ("ExternalUserID", t.external_userid), ("Source", "DELETE_BY_TRANSFER")])
        emit(state, corp, "change_external_contact", "add_external_contact",
             [("UserID", t.takeover_userid), ("ExternalUserID", t.external_userid)])


def _transfer_fail(state: EmulatorState, corp: Corp, t: Transfer, reason: str) -> None:
    emit(state, corp, "change_external_contact", "transfer_fail",
         [("FailReason", reason), ("UserID", t.takeover_userid), ("ExternalUserID", t.external_userid)])


# transfer_result's status codes: 1 taken over, 2 waiting, 3 refused, 4 takeover at its limit, 5 no record
RESULT_STATUS = {"done": 1, "waiting": 2, "refused": 3, "failed": 4, "void": 5}
RESULT_PAGE_SIZE = 1000


def _transfer_result(state: EmulatorState, corp: Corp, body: dict[str, Any], kind: str) -> dict[str, Any]:
    handover = require_staff(corp, body.get("handover_userid"))
    takeover = require_staff(corp, body.get("takeover_userid"))
    settle(state, corp)
    latest: dict[str, Transfer] = {}
    for t in corp.transfers:  # in request order: the last request of each customer wins
        if t.kind == kind and t.handover_userid == handover.userid and t.takeover_userid == takeover.userid:
            latest[t.external_userid] = t
    rows = [{"external_userid": t.external_userid, "status": RESULT_STATUS[t.status],
             "takeover_time": int(t.takeover_at) if t.status in ("done", "waiting") else 0}
            for t in latest.values()]
    offset = decode_cursor("transfer", body.get("cursor"))
    out: dict[str, Any] = {"customer": rows[offset:offset + RESULT_PAGE_SIZE]}
    out["next_cursor"] = encode_cursor("transfer", offset + RESULT_PAGE_SIZE) \
        if offset + RESULT_PAGE_SIZE < len(rows) else ""
    return out


@locked
def transfer_result(state: EmulatorState, corp: Corp, body: dict[str, Any]) -> dict[str, Any]:
    """查询客户接替状态 (在职继承): the state of each customer handed from handover to takeover."""
    return _transfer_result(state, corp, body, "active")


@locked
def resigned_transfer_result(state: EmulatorState, corp: Corp, body: dict[str, Any]) -> dict[str, Any]:
    """查询客户接替状态 (离职继承)."""
    return _transfer_result(state, corp, body, "resigned")


UNASSIGNED_PAGE_MAX = 1000


@locked
def get_unassigned_list(state: EmulatorState, corp: Corp, body: dict[str, Any]) -> dict[str, Any]:
    """获取待分配的离职成员列表: every customer of a resigned member who has not been taken over yet
    (a requested resigned transfer still waiting keeps the customer listed until the take-over), with
    the member's resignation time; paged by `cursor` and `page_size` (at most 1000, default 1000)."""
    settle(state, corp)
    size = body.get("page_size", UNASSIGNED_PAGE_MAX)
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= UNASSIGNED_PAGE_MAX:
        raise ApiError(40058, f"page_size is between 1 and {UNASSIGNED_PAGE_MAX}")
    resigned = {s.userid: s for s in corp.staff.values() if s.status == "resigned"}
    rows = [{"handover_userid": f.userid, "external_userid": f.external_userid,
             "dimission_time": int(resigned[f.userid].resigned_at or 0)}
            for (userid, _ext), f in sorted(corp.follows.items()) if userid in resigned]
    offset = decode_cursor("unassigned", body.get("cursor"))
    page = rows[offset:offset + size]
    last = offset + size >= len(rows)
    return {"info": page, "is_last": last, "next_cursor": "" if last else encode_cursor("unassigned", offset + size)}
