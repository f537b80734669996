"""The WeCom API surface under /cgi-bin/: transport-level behaviour shared by every endpoint
(faults, access tokens, frequency and concurrency limits, JSON parsing) and the endpoint table.

WeCom answers API errors with HTTP 200 and a non-zero errcode; only transport trouble (the 5xx
fault) is an HTTP error."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from siyu.wecom.client import redact
from siyu.wecom.emulator import contacts, group_welcome, groups, messaging, transfers
from siyu.wecom.emulator.state import ApiCall, ApiError, Corp, EmulatorState, IssuedToken

log = logging.getLogger(__name__)

Handler = Callable[[EmulatorState, Corp, dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class Endpoint:
    method: str
    handler: Handler


ENDPOINTS: dict[str, Endpoint] = {
    "externalcontact/add_contact_way": Endpoint("POST", contacts.add_contact_way),
    "externalcontact/update_contact_way": Endpoint("POST", contacts.update_contact_way),
    "externalcontact/del_contact_way": Endpoint("POST", contacts.del_contact_way),
    "externalcontact/get": Endpoint("GET", contacts.get_external_contact),
    "externalcontact/list": Endpoint("GET", contacts.list_external_contacts),
    "externalcontact/batch/get_by_user": Endpoint("POST", contacts.batch_get_by_user),
    "externalcontact/mark_tag": Endpoint("POST", contacts.mark_tag),
    "externalcontact/get_corp_tag_list": Endpoint("POST", contacts.get_corp_tag_list),
    "externalcontact/send_welcome_msg": Endpoint("POST", contacts.send_welcome_msg),
    "externalcontact/add_msg_template": Endpoint("POST", messaging.add_msg_template),
    "externalcontact/get_groupmsg_send_result": Endpoint("POST", messaging.get_groupmsg_send_result),
    "externalcontact/get_groupmsg_list_v2": Endpoint("POST", messaging.get_groupmsg_list_v2),
    "externalcontact/get_groupmsg_task": Endpoint("POST", messaging.get_groupmsg_task),
    "message/send": Endpoint("POST", messaging.send_app_message),
    "externalcontact/add_moment_task": Endpoint("POST", messaging.add_moment_task),
    "externalcontact/get_moment_task_result": Endpoint("GET", messaging.get_moment_task_result),
    "externalcontact/groupchat/list": Endpoint("POST", groups.groupchat_list),
    "externalcontact/groupchat/get": Endpoint("POST", groups.groupchat_get),
    "externalcontact/groupchat/add_join_way": Endpoint("POST", groups.add_join_way),
    "externalcontact/groupchat/get_join_way": Endpoint("POST", groups.get_join_way),
    "externalcontact/groupchat/update_join_way": Endpoint("POST", groups.update_join_way),
    "externalcontact/groupchat/del_join_way": Endpoint("POST", groups.del_join_way),
    "externalcontact/group_welcome_template/add": Endpoint("POST", group_welcome.add_template),
    "externalcontact/group_welcome_template/edit": Endpoint("POST", group_welcome.edit_template),
    "externalcontact/group_welcome_template/get": Endpoint("POST", group_welcome.get_template),
    "externalcontact/group_welcome_template/del": Endpoint("POST", group_welcome.del_template),
    "externalcontact/transfer_customer": Endpoint("POST", transfers.transfer_customer),
    "externalcontact/resigned/transfer_customer": Endpoint("POST", transfers.resigned_transfer_customer),
    "externalcontact/transfer_result": Endpoint("POST", transfers.transfer_result),
    "externalcontact/resigned/transfer_result": Endpoint("POST", transfers.resigned_transfer_result),
    "externalcontact/get_unassigned_list": Endpoint("POST", transfers.get_unassigned_list),
    "externalcontact/groupchat/transfer": Endpoint("POST", groups.groupchat_transfer),
    "externalcontact/groupchat/onjob_transfer": Endpoint("POST", groups.groupchat_onjob_transfer),
}


def _ok(data: dict[str, Any]) -> dict[str, Any]:
    return {"errcode": 0, "errmsg": "ok", **data}


def _error(errcode: int, errmsg: str) -> JSONResponse:
    return JSONResponse({"errcode": errcode, "errmsg": errmsg})


def issue_token(state: EmulatorState, corp: Corp, secret: str) -> IssuedToken:
    """WeCom returns the same token while it is valid and a new one after it expired."""
    with state.lock:
        now = state.now()
        for issued in state.tokens.values():
            if (issued.corp_id == corp.corp_id and issued.secret == secret and issued.expires_at > now
                    and not issued.revoked):
                return issued
        issued = IssuedToken(token=state.new_id("", 64), corp_id=corp.corp_id, secret=secret,
                             expires_at=now + corp.limits.token_ttl)
        state.tokens[issued.token] = issued
        return issued


def revoke_tokens(state: EmulatorState, corp: Corp) -> int:
    """Invalidate the corp's tokens (as when its secret is reset): they answer 40014 from now on."""
    with state.lock:
        revoked = [i for i in state.tokens.values() if i.corp_id == corp.corp_id and not i.revoked]
        for issued in revoked:
            issued.revoked = True
        return len(revoked)


def _rate_limited(state: EmulatorState, corp: Corp, endpoint: str) -> bool:
    """Fixed windows per (corp, endpoint), as WeCom counts "per minute"; over the limit stays
    refused until the window ends."""
    now = state.now()
    start, count = corp.rate_windows.get(endpoint, (now, 0))
    if now - start >= corp.limits.rate_limit_window:
        start, count = now, 0
    corp.rate_windows[endpoint] = (start, count + 1)
    return count >= corp.limits.rate_limit_calls


def build_router(state: EmulatorState) -> APIRouter:
    router = APIRouter()

    @router.api_route("/cgi-bin/{path:path}", methods=["GET", "POST"], include_in_schema=False)
    async def cgi_bin(path: str, request: Request) -> Response:
        params = dict(request.query_params)
        body = await request.body()
        if path == "gettoken":
            corp = state.corps.get(params.get("corpid", ""))
        else:
            corp = state.corp_for_token(params.get("access_token"))
        if corp is None:
            # No corp to account the call to: only the authentication answers apply.
            return _unauthenticated(path, params)
        with state.lock:
            corp.in_flight += 1
        try:
            response, errcode = await _handle(state, corp, path, request.method, params, body)
        finally:
            with state.lock:
                corp.in_flight -= 1
        with state.lock:
            corp.calls.append(ApiCall(at=state.now(), endpoint=path, errcode=errcode,
                                      http_status=response.status_code))
        log.debug("emulator %s %s errcode=%s", request.method, redact(str(request.url)), errcode)
        return response

    return router


def _unauthenticated(path: str, params: dict[str, str]) -> Response:
    if path == "gettoken":
        return _error(40013, "invalid corpid")
    token = params.get("access_token")
    if not token:
        return _error(41001, "access_token missing")
    return _error(40014, "invalid access_token")


async def _handle(state: EmulatorState, corp: Corp, path: str, method: str, params: dict[str, str],
                  raw_body: bytes) -> tuple[Response, int]:
    with state.lock:
        transfers.settle(state, corp)
        faults = corp.faults
        applies = faults.applies_to(path)
        latency = 0.0
        if applies and (faults.latency_ms or faults.latency_jitter_ms):
            latency = (faults.latency_ms + state.rng.uniform(0, faults.latency_jitter_ms)) / 1000
        if corp.in_flight > corp.limits.max_concurrent_calls:
            return _error(45033, "api concurrent out of limit"), 45033
    if latency:
        await asyncio.sleep(latency)
    with state.lock:
        faults = corp.faults  # the control API may have replaced them during the latency
        if applies and (faults.error_5xx_next > 0
                        or (faults.error_5xx_rate and state.rng.random() < faults.error_5xx_rate)):
            faults.error_5xx_next = max(0, faults.error_5xx_next - 1)
            return PlainTextResponse("503 Service Unavailable (emulator fault)", status_code=503), -1
        if applies and faults.system_busy_next > 0:
            faults.system_busy_next -= 1
            return _error(-1, "system busy (emulator fault)"), -1
        if applies and (faults.rate_limit_next > 0 or faults.rate_limit_until > state.now()):
            faults.rate_limit_next = max(0, faults.rate_limit_next - 1)
            return _error(45009, "api freq out of limit (emulator fault)"), 45009
        if path == "gettoken":
            secret = params.get("corpsecret", "")
            if secret not in corp.secrets:
                return _error(40001, "invalid secret"), 40001
            if _rate_limited(state, corp, path):
                return _error(45009, "api freq out of limit"), 45009
            issued = issue_token(state, corp, secret)
            return JSONResponse(_ok({"access_token": issued.token,
                                     "expires_in": max(0, int(issued.expires_at - state.now()))})), 0
        issued = state.tokens.get(params.get("access_token", ""))
        if applies and faults.invalid_token_next > 0:
            faults.invalid_token_next -= 1
            issued = None
        if issued is None or issued.revoked:
            return _error(40014, "invalid access_token"), 40014
        if issued.expires_at <= state.now():
            return _error(42001, "access_token expired"), 42001
        endpoint = ENDPOINTS.get(path)
        if endpoint is None:
            return JSONResponse({"errcode": 404, "errmsg": f"unknown api path /cgi-bin/{path}"},
                                status_code=404), 404
        if method != endpoint.method:
            return _error(40058, f"{path} expects {endpoint.method}"), 40058
        if _rate_limited(state, corp, path):
            return _error(45009, "api freq out of limit"), 45009
        if endpoint.method == "POST":
            try:
                data = json.loads(raw_body or b"{}")
            except ValueError:
                return _error(47001, "data format error: body is not JSON"), 47001
            if not isinstance(data, dict):
                return _error(47001, "data format error: body is not a JSON object"), 47001
        else:
            data = {k: v for k, v in params.items() if k != "access_token"}
        try:
            return JSONResponse(_ok(endpoint.handler(state, corp, data))), 0
        except ApiError as exc:
            return _error(exc.errcode, exc.errmsg), exc.errcode
