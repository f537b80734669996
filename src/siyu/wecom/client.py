"""A typed, synchronous client for WeCom's customer-contact API (客户联系), over httpx.

What every call gets, so callers do not have to think about it:
- an access token from a shared `TokenStore`, refreshed once and the call retried once when WeCom
  answers 40014 (invalid) or 42001 (expired);
- pacing by a token bucket per (corp, endpoint) (`RateLimiter`, shared through the database in
  production), a bounded backoff on 45009 that blocks the bucket for every process, and a
  concurrency limit that halves on 45033;
- bounded retries on -1 / 5xx / network errors, but only where repeating cannot send a message
  twice (idempotent endpoints, or a request that never left this machine);
- errcodes mapped to exceptions (`siyu.wecom.errors`) that carry errcode, errmsg and endpoint;
- one log line per call (endpoint, errcode, duration, attempt) that never holds the access token
  or the secret; httpx's own request log is redacted too.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Literal

import httpx

from siyu import metrics, netguard
from siyu.db import utcnow
from siyu.wecom.errors import (
    RateLimited,
    SystemBusy,
    WeComError,
    errcode_name,
    error_for,
)
from siyu.wecom.ratelimit import AdaptiveConcurrency, InMemoryRateLimiter, RateLimiter
from siyu.wecom.schemas import (
    AccessToken,
    AppMessageResult,
    ContactWay,
    CorpTagGroup,
    ExternalContactDetail,
    ExternalContactWithFollow,
    FailedChat,
    GroupChat,
    GroupChatSummary,
    GroupMsg,
    GroupMsgSendResult,
    GroupMsgTask,
    JoinWay,
    MomentTaskResult,
    MsgTemplateResult,
    TransferResult,
    TransferStatus,
    UnassignedCustomer,
)
from siyu.wecom.tokens import CachedToken, InMemoryTokenStore, TokenKey, TokenStore

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://qyapi.weixin.qq.com/cgi-bin/"
TOKEN_ERRCODES = frozenset({40014, 42001})
STATE_MAX_CHARS = 30
TRANSFER_BATCH_MAX = 100
TRANSFER_MSG_MAX_CHARS = 200
GROUP_TRANSFER_BATCH_MAX = 100
JOIN_WAY_CHATS_MAX = 5
ROOM_BASE_NAME_MAX = 40
GROUP_WELCOME_TEXT_MAX_BYTES = 3000

# Endpoints where sending the same request twice has the effect of sending it once: reads, and
# mark_tag (adding a tag that is there / removing one that is not changes nothing). Everything
# else creates or sends something and is never repeated after it may have reached WeCom.
IDEMPOTENT_ENDPOINTS = frozenset({
    "gettoken",
    "externalcontact/get",
    "externalcontact/list",
    "externalcontact/batch/get_by_user",
    "externalcontact/mark_tag",
    "externalcontact/get_corp_tag_list",
    "externalcontact/get_groupmsg_send_result",
    "externalcontact/get_moment_task_result",
    "externalcontact/groupchat/list",
    "externalcontact/groupchat/get",
    "externalcontact/groupchat/get_join_way",
    "externalcontact/groupchat/update_join_way",  # it replaces the whole configuration: twice is once
    "externalcontact/group_welcome_template/get",
    "externalcontact/group_welcome_template/edit",  # it replaces the whole template: twice is once
    "externalcontact/transfer_result",
    "externalcontact/resigned/transfer_result",
    "externalcontact/get_unassigned_list",
})

# --- redaction ----------------------------------------------------------------------------------

# access_token, suite_access_token, corpsecret, secret, ...
_SECRET_PARAMS = re.compile(r"(\b\w*(?:access_token|secret)=)[^&\s\"'#]*", re.IGNORECASE)


def redact(text: str) -> str:
    """Blank credentials in a URL or query string (for logs and error messages)."""
    return _SECRET_PARAMS.sub(r"\1***", text)


class RedactingFilter(logging.Filter):
    """Redacts credentials in records of loggers we do not own (httpx logs every request URL at
    INFO, and WeCom puts the access token in the query string)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(str(a)) if isinstance(a, str | httpx.URL) else a for a in record.args)
        return True


_REDACTED_LOGGERS = ("httpx", "httpcore.http11", "httpcore.http2", "httpcore.connection", "httpcore.proxy")
_install_lock = threading.Lock()


def install_log_redaction() -> None:
    """Attach `RedactingFilter` to httpx's loggers once per process."""
    with _install_lock:
        for name in _REDACTED_LOGGERS:
            logger = logging.getLogger(name)
            if not any(isinstance(f, RedactingFilter) for f in logger.filters):
                logger.addFilter(RedactingFilter())


# --- the client ---------------------------------------------------------------------------------


class WeComClient:
    """One WeCom app of one corp (a corp id and that app's secret).

    Construct one per (corp, secret) and share it between threads; pass a `DatabaseTokenStore`
    and `DatabaseRateLimiter` when more than one process calls WeCom (that is, in production)."""

    def __init__(
        self,
        corp_id: str,
        secret: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        token_store: TokenStore | None = None,
        rate_limiter: RateLimiter | None = None,
        concurrency: AdaptiveConcurrency | None = None,
        http: httpx.Client | None = None,
        timeout: float = 10.0,
        token_refresh_margin: float = 300.0,
        max_rate_limit_retries: int = 4,
        rate_limit_backoff: float = 1.0,
        rate_limit_backoff_max: float = 30.0,
        rate_limit_window: float | None = None,
        max_window_wait: float | None = None,
        max_concurrency_retries: int = 4,
        concurrency_backoff: float = 0.2,
        max_busy_retries: int = 2,
        busy_backoff: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not corp_id or not secret:
            raise ValueError("corp_id and secret are required")
        self.corp_id = corp_id
        self._secret = secret
        self._key = TokenKey.for_secret(corp_id, secret)
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self._tokens = token_store or InMemoryTokenStore()
        self._limiter = rate_limiter or InMemoryRateLimiter()
        self._concurrency = concurrency or AdaptiveConcurrency()
        self._owns_http = http is None
        self._http = http or netguard.client(timeout=timeout)
        self._margin = dt.timedelta(seconds=token_refresh_margin)
        self._max_rate_retries = max_rate_limit_retries
        self._rate_backoff = rate_limit_backoff
        self._rate_backoff_max = rate_limit_backoff_max
        # rate_limit_window: a 45009 closes the corp's window for this API, in every process
        # sharing the rate limiter, for exactly this long (instead of the growing backoff).
        # max_window_wait: a call finding the window closed for longer than this does not sleep
        # but raises RateLimited with `until` (a job is deferred to the window's end instead of
        # holding a worker thread); None sleeps through it.
        self._rate_window = rate_limit_window
        self._max_window_wait = max_window_wait
        self._max_concurrency_retries = max_concurrency_retries
        self._concurrency_backoff = concurrency_backoff
        self._max_busy_retries = max_busy_retries
        self._busy_backoff = busy_backoff
        self._sleep = sleep
        self._refresh_lock = threading.Lock()
        install_log_redaction()

    def __repr__(self) -> str:  # never show the secret
        return f"WeComClient(corp_id={self.corp_id!r}, base_url={self.base_url!r})"

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> WeComClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- access token ---------------------------------------------------------------------------

    def access_token(self, *, force_refresh: bool = False) -> str:
        if not force_refresh and (cached := self._tokens.get(self._key)) and cached.usable(margin=self._margin):
            return cached.access_token
        with self._refresh_lock:  # one refresh per process; others wait and read the result
            if not force_refresh and (cached := self._tokens.get(self._key)) and cached.usable(margin=self._margin):
                return cached.access_token
            data = self._call("GET", "gettoken", params={"corpid": self.corp_id, "corpsecret": self._secret},
                              authenticated=False)
            token = AccessToken.model_validate(data)
            self._tokens.put(self._key, CachedToken(token.access_token,
                                                    utcnow() + dt.timedelta(seconds=token.expires_in)))
            return token.access_token

    # --- the call loop --------------------------------------------------------------------------

    def _call(self, method: Literal["GET", "POST"], endpoint: str, *, params: Mapping[str, Any] | None = None,
              json: Mapping[str, Any] | None = None, authenticated: bool = True) -> dict[str, Any]:
        refreshed = False
        rate_retries = concurrency_retries = busy_retries = 0
        attempt = 0
        while True:
            attempt += 1
            self._pace(endpoint)
            query = dict(params or {})
            token = None
            if authenticated:
                token = self.access_token()
                query["access_token"] = token
            try:
                data = self._send(method, endpoint, query, json, attempt)
            except SystemBusy as exc:
                # Repeat only what cannot take effect twice: requests that never reached WeCom
                # (or that it refused as busy), and idempotent endpoints.
                retry_ok = not exc.maybe_applied or endpoint in IDEMPOTENT_ENDPOINTS
                if retry_ok and busy_retries < self._max_busy_retries:
                    busy_retries += 1
                    self._sleep(self._busy_backoff * 2 ** (busy_retries - 1))
                    continue
                raise
            errcode = int(data.get("errcode", 0) or 0)
            if errcode == 0:
                self._concurrency.succeeded()
                return data
            errmsg = str(data.get("errmsg", ""))
            if errcode in TOKEN_ERRCODES and token is not None and not refreshed:
                # Another process may have refreshed already; discard only the token that failed.
                self._tokens.discard(self._key, token)
                refreshed = True
                continue
            if errcode == 45009:
                if self._rate_window is not None:
                    delay = self._rate_window
                else:
                    delay = self._backoff(self._rate_backoff, rate_retries, self._rate_backoff_max)
                self._limiter.block(self.corp_id, endpoint, delay)
                if rate_retries < self._max_rate_retries:
                    rate_retries += 1
                    self._pace_or_raise(endpoint, delay)
                    continue
                raise RateLimited(errcode, errmsg, endpoint, until=utcnow() + dt.timedelta(seconds=delay))
            if errcode == 45033 and concurrency_retries < self._max_concurrency_retries:
                self._concurrency.overloaded()
                delay = self._backoff(self._concurrency_backoff, concurrency_retries, self._rate_backoff_max)
                concurrency_retries += 1
                self._sleep(delay)
                continue
            raise error_for(errcode, errmsg, endpoint)

    @staticmethod
    def _backoff(base: float, retry: int, cap: float) -> float:
        # Exponential with jitter, so processes told at the same moment do not return together.
        return min(cap, base * 2**retry) * random.uniform(0.75, 1.0)

    def _pace(self, endpoint: str) -> None:
        while (wait := self._limiter.reserve(self.corp_id, endpoint)) > 0:
            self._pace_or_raise(endpoint, wait)

    def _pace_or_raise(self, endpoint: str, wait: float) -> None:
        if self._max_window_wait is not None and wait > self._max_window_wait:
            # The corp's window for this API is closed (a 45009 here or in another process).
            raise RateLimited(45009, f"backing off after 45009 for {wait:.1f} s more", endpoint,
                              until=utcnow() + dt.timedelta(seconds=wait))
        self._sleep(wait)

    def _send(self, method: str, endpoint: str, query: dict[str, Any], json: Mapping[str, Any] | None,
              attempt: int) -> dict[str, Any]:
        url = self.base_url + endpoint
        started = time.perf_counter()
        errcode: int | str = "-"
        try:
            with self._concurrency.slot():
                try:
                    response = self._http.request(method, url, params=query, json=json)
                except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                    errcode = "connect_error"
                    raise SystemBusy(-1, f"cannot connect: {type(exc).__name__}", endpoint) from None
                except httpx.TransportError as exc:
                    # The request may have been received and acted on before the failure.
                    errcode = "transport_error"
                    raise SystemBusy(-1, f"transport error: {type(exc).__name__}", endpoint,
                                     maybe_applied=True) from None
            if response.status_code >= 500:
                errcode = f"http_{response.status_code}"
                raise SystemBusy(-1, f"HTTP {response.status_code}", endpoint, maybe_applied=True)
            try:
                data = response.json()
            except ValueError:
                errcode = "bad_json"
                raise SystemBusy(-1, f"HTTP {response.status_code}, response is not JSON", endpoint,
                                 maybe_applied=True) from None
            if not isinstance(data, dict):
                errcode = "bad_json"
                raise SystemBusy(-1, "response is not a JSON object", endpoint, maybe_applied=True)
            errcode = int(data.get("errcode", 0) or 0)
            if errcode == -1:
                # "System busy": WeCom did not process the request, so even a send may be retried
                # (its docs suggest at most three tries).
                raise SystemBusy(-1, str(data.get("errmsg") or "system busy"), endpoint)
            return data
        finally:
            duration_ms = (time.perf_counter() - started) * 1000
            metrics.count_wecom_call(endpoint, errcode)
            level = logging.INFO if errcode in (0, "-") else logging.WARNING
            log.log(level, "wecom call corp=%s endpoint=%s errcode=%s (%s) duration_ms=%.1f attempt=%d",
                    self.corp_id, endpoint, errcode, errcode_name(errcode) if isinstance(errcode, int) else errcode,
                    duration_ms, attempt)

    # --- pagination ---------------------------------------------------------------------------

    def _paginate(self, endpoint: str, body: dict[str, Any], list_key: str) -> Iterator[dict[str, Any]]:
        """POST endpoints with `cursor` / `next_cursor` paging."""
        cursor = ""
        seen: set[str] = set()
        while True:
            data = self._call("POST", endpoint, json={**body, **({"cursor": cursor} if cursor else {})})
            yield from data.get(list_key) or []
            cursor = str(data.get("next_cursor") or "")
            if not cursor:
                return
            if cursor in seen:  # a server that repeats a cursor would otherwise loop forever
                raise SystemBusy(-1, f"cursor repeated: {cursor[:16]}", endpoint)
            seen.add(cursor)

    # --- contact ways ("联系我") ------------------------------------------------------------

    def add_contact_way(
        self,
        *,
        type: Literal[1, 2],
        scene: Literal[1, 2],
        user: Sequence[str] = (),
        party: Sequence[int] = (),
        state: str | None = None,
        remark: str | None = None,
        style: int | None = None,
        skip_verify: bool = True,
        is_temp: bool = False,
        expires_in: int | None = None,
        chat_expires_in: int | None = None,
        unionid: str | None = None,
        conclusions: Mapping[str, Any] | None = None,
    ) -> ContactWay:
        """Create a channel code: a "contact me" QR (scene 2) whose `state` comes back on the add event."""
        if state is not None and len(state) > STATE_MAX_CHARS:
            raise ValueError(f"state: at most {STATE_MAX_CHARS} characters (got {len(state)})")
        if type == 1 and len(user) != 1:
            raise ValueError("user: a single-person contact way (type 1) needs exactly one user")
        if not user and not party:
            raise ValueError("user: give at least one user or party")
        body: dict[str, Any] = {"type": type, "scene": scene, "skip_verify": skip_verify}
        optional = {"user": list(user), "party": list(party), "state": state, "remark": remark, "style": style,
                    "is_temp": is_temp or None, "expires_in": expires_in, "chat_expires_in": chat_expires_in,
                    "unionid": unionid, "conclusions": dict(conclusions) if conclusions else None}
        body.update({k: v for k, v in optional.items() if v not in (None, [])})
        return ContactWay.model_validate(self._call("POST", "externalcontact/add_contact_way", json=body))

    def update_contact_way(
        self,
        *,
        config_id: str,
        user: Sequence[str] | None = None,
        party: Sequence[int] | None = None,
        state: str | None = None,
        remark: str | None = None,
        skip_verify: bool | None = None,
    ) -> None:
        """Change a contact way in place (same QR): a given `user`/`party` list replaces the old one."""
        if not config_id:
            raise ValueError("config_id: required")
        if state is not None and len(state) > STATE_MAX_CHARS:
            raise ValueError(f"state: at most {STATE_MAX_CHARS} characters (got {len(state)})")
        body: dict[str, Any] = {"config_id": config_id}
        optional = {"user": list(user) if user is not None else None,
                    "party": list(party) if party is not None else None,
                    "state": state, "remark": remark, "skip_verify": skip_verify}
        body.update({k: v for k, v in optional.items() if v is not None})
        self._call("POST", "externalcontact/update_contact_way", json=body)

    def del_contact_way(self, *, config_id: str) -> None:
        """Delete a contact way: its QR stops adding anyone."""
        if not config_id:
            raise ValueError("config_id: required")
        self._call("POST", "externalcontact/del_contact_way", json={"config_id": config_id})

    # --- customers ------------------------------------------------------------------------------

    def get_external_contact(self, external_userid: str) -> ExternalContactDetail:
        """A customer and everyone in the corp who follows them (all pages of follow_user)."""
        detail: ExternalContactDetail | None = None
        cursor = ""
        while True:
            params = {"external_userid": external_userid, **({"cursor": cursor} if cursor else {})}
            data = self._call("GET", "externalcontact/get", params=params)
            page = ExternalContactDetail.model_validate(data)
            if detail is None:
                detail = page
            else:
                detail.follow_user.extend(page.follow_user)
            next_cursor = str(data.get("next_cursor") or "")
            if not next_cursor or next_cursor == cursor:
                return detail
            cursor = next_cursor

    def list_external_contacts(self, userid: str) -> list[str]:
        """External user ids of one member of staff's customers (84061 "no customers" → [])."""
        try:
            data = self._call("GET", "externalcontact/list", params={"userid": userid})
        except WeComError as exc:
            if exc.errcode == 84061:
                return []
            raise
        return list(data.get("external_userid") or [])

    def iter_external_contacts_by_user(self, userids: Iterable[str], *, limit: int = 100
                                       ) -> Iterator[ExternalContactWithFollow]:
        """Every (customer, follow) pair of up to 100 members of staff, page by page."""
        ids = list(userids)
        if not 1 <= len(ids) <= 100:
            raise ValueError("userids: between 1 and 100 members of staff per call")
        if not 1 <= limit <= 100:
            raise ValueError("limit: between 1 and 100")
        for item in self._paginate("externalcontact/batch/get_by_user",
                                   {"userid_list": ids, "limit": limit}, "external_contact_list"):
            yield ExternalContactWithFollow.model_validate(item)

    def mark_tag(self, *, userid: str, external_userid: str, add_tag: Sequence[str] = (),
                 remove_tag: Sequence[str] = ()) -> None:
        if not add_tag and not remove_tag:
            raise ValueError("add_tag: give tags to add or to remove")
        self._call("POST", "externalcontact/mark_tag",
                   json={"userid": userid, "external_userid": external_userid, "add_tag": list(add_tag),
                         "remove_tag": list(remove_tag)})

    def get_corp_tag_list(self, *, tag_ids: Sequence[str] = (), group_ids: Sequence[str] = ()) -> list[CorpTagGroup]:
        body: dict[str, Any] = {}
        if tag_ids:
            body["tag_id"] = list(tag_ids)
        if group_ids:
            body["group_id"] = list(group_ids)
        data = self._call("POST", "externalcontact/get_corp_tag_list", json=body)
        return [CorpTagGroup.model_validate(g) for g in data.get("tag_group") or []]

    # --- messages -------------------------------------------------------------------------------

    def send_welcome_msg(self, *, welcome_code: str, text: str | None = None,
                         attachments: Sequence[Mapping[str, Any]] = ()) -> None:
        """The welcome message (欢迎语) for a new customer: once per welcome code, within 20 s of
        the add event. Raises `WelcomeNotNeeded` (41051) when the customer has already started
        chatting (or another application's welcome went first), `WelcomeSendingElsewhere` (41096)
        while another application is sending one (retry within the 20 s), and `InvalidRequest`
        (40058) for a code WeCom does not accept (unknown, or past its 20 s)."""
        if not text and not attachments:
            raise ValueError("text: a welcome message needs text or attachments")
        body: dict[str, Any] = {"welcome_code": welcome_code}
        if text:
            body["text"] = {"content": text}
        if attachments:
            body["attachments"] = [dict(a) for a in attachments]
        self._call("POST", "externalcontact/send_welcome_msg", json=body)

    def add_msg_template(self, *, sender: str | None = None, external_userids: Sequence[str] = (),
                         text: str | None = None, attachments: Sequence[Mapping[str, Any]] = (),
                         chat_type: Literal["single", "group"] = "single", chat_ids: Sequence[str] = (),
                         allow_select: bool | None = None) -> MsgTemplateResult:
        """A mass message (群发) task; the sender confirms it in WeCom, then results come from
        `iter_groupmsg_send_result`."""
        if not text and not attachments:
            raise ValueError("text: a message needs text or attachments")
        if chat_type == "single" and not sender and not external_userids:
            raise ValueError("sender: give a sender or external user ids")
        body: dict[str, Any] = {"chat_type": chat_type}
        if sender:
            body["sender"] = sender
        if chat_type == "group" and not sender:
            raise ValueError("sender: a group mass message needs its sender (the groups' owner)")
        if external_userids:
            body["external_userid"] = list(external_userids)
        if chat_ids:  # group chats: only the sender's own groups among them receive it
            body["chat_id_list"] = list(chat_ids)
        if text:
            body["text"] = {"content": text}
        if attachments:
            body["attachments"] = [dict(a) for a in attachments]
        if allow_select is not None:
            body["allow_select"] = allow_select
        return MsgTemplateResult.model_validate(self._call("POST", "externalcontact/add_msg_template", json=body))

    def iter_groupmsg_send_result(self, *, msgid: str, userid: str, limit: int = 1000
                                  ) -> Iterator[GroupMsgSendResult]:
        if not 1 <= limit <= 1000:
            raise ValueError("limit: between 1 and 1000")
        for item in self._paginate("externalcontact/get_groupmsg_send_result",
                                   {"msgid": msgid, "userid": userid, "limit": limit}, "send_list"):
            yield GroupMsgSendResult.model_validate(item)

    def iter_groupmsg_list(self, *, chat_type: Literal["single", "group"], start_time: int, end_time: int,
                           creator: str | None = None, filter_type: int = 2, limit: int = 100
                           ) -> Iterator[GroupMsg]:
        """The corp's mass messages created between two unix times (at most a month apart), by
        `creator` when given: how a sender that lost a call's answer finds what WeCom made."""
        if not 1 <= limit <= 100:
            raise ValueError("limit: between 1 and 100")
        body: dict[str, Any] = {"chat_type": chat_type, "start_time": start_time, "end_time": end_time,
                                "filter_type": filter_type, "limit": limit}
        if creator:
            body["creator"] = creator
        for item in self._paginate("externalcontact/get_groupmsg_list_v2", body, "group_msg_list"):
            yield GroupMsg.model_validate(item)

    def iter_groupmsg_task(self, *, msgid: str, limit: int = 1000) -> Iterator[GroupMsgTask]:
        """Each sending member's task of a mass message: status 0 not sent (not confirmed), 2 sent."""
        if not 1 <= limit <= 1000:
            raise ValueError("limit: between 1 and 1000")
        for item in self._paginate("externalcontact/get_groupmsg_task", {"msgid": msgid, "limit": limit},
                                   "task_list"):
            yield GroupMsgTask.model_validate(item)

    # --- application messages (应用消息) --------------------------------------------------------

    def send_app_text(self, *, agentid: int, touser: Sequence[str], content: str) -> AppMessageResult:
        """A text from the corp's application to members of staff (`message/send`)."""
        if not touser:
            raise ValueError("touser: at least one member of staff")
        if not content:
            raise ValueError("content: a message needs text")
        data = self._call("POST", "message/send", json={"touser": "|".join(touser), "msgtype": "text",
                                                         "agentid": agentid, "text": {"content": content}})
        return AppMessageResult.model_validate(data)

    # --- Moments (客户朋友圈) -------------------------------------------------------------------

    def add_moment_task(self, *, text: str | None = None, attachments: Sequence[Mapping[str, Any]] = (),
                        sender_userids: Sequence[str] = (), sender_department_ids: Sequence[int] = (),
                        tag_ids: Sequence[str] = ()) -> str:
        """Start a Moments post task; returns the job id to poll with `get_moment_task_result`."""
        if not text and not attachments:
            raise ValueError("text: a Moments post needs text or attachments")
        body: dict[str, Any] = {}
        if text:
            body["text"] = {"content": text}
        if attachments:
            body["attachments"] = [dict(a) for a in attachments]
        visible: dict[str, Any] = {}
        if sender_userids or sender_department_ids:
            visible["sender_list"] = {"user_list": list(sender_userids),
                                      "department_list": list(sender_department_ids)}
        if tag_ids:
            visible["external_contact_list"] = {"tag_list": list(tag_ids)}
        if visible:
            body["visible_range"] = visible
        return str(self._call("POST", "externalcontact/add_moment_task", json=body)["jobid"])

    def get_moment_task_result(self, jobid: str) -> MomentTaskResult:
        return MomentTaskResult.model_validate(
            self._call("GET", "externalcontact/get_moment_task_result", params={"jobid": jobid}))

    # --- customer groups (客户群) ---------------------------------------------------------------

    def iter_group_chats(self, *, status_filter: int = 0, owner_userids: Sequence[str] = (),
                         limit: int = 1000) -> Iterator[GroupChatSummary]:
        if status_filter not in (0, 1, 2, 3):
            raise ValueError("status_filter: 0, 1, 2 or 3")
        if not 1 <= limit <= 1000:
            raise ValueError("limit: between 1 and 1000")
        body: dict[str, Any] = {"status_filter": status_filter, "limit": limit}
        if owner_userids:
            body["owner_filter"] = {"userid_list": list(owner_userids)}
        for item in self._paginate("externalcontact/groupchat/list", body, "group_chat_list"):
            yield GroupChatSummary.model_validate(item)

    def get_group_chat(self, chat_id: str, *, need_name: bool = True) -> GroupChat:
        data = self._call("POST", "externalcontact/groupchat/get",
                          json={"chat_id": chat_id, "need_name": 1 if need_name else 0})
        return GroupChat.model_validate(data["group_chat"])

    # --- join ways (加入群聊 / 群活码) -------------------------------------------------------------

    @staticmethod
    def _join_way_body(*, scene: int, chat_ids: Sequence[str], state: str | None, remark: str | None,
                       auto_create_room: bool, room_base_name: str | None, room_base_id: int | None
                       ) -> dict[str, Any]:
        if scene not in (1, 2):
            raise ValueError("scene: 1 (mini-program) or 2 (QR code)")
        if not 1 <= len(chat_ids) <= JOIN_WAY_CHATS_MAX:
            raise ValueError(f"chat_ids: 1 to {JOIN_WAY_CHATS_MAX} groups")
        if state is not None and len(state) > STATE_MAX_CHARS:
            raise ValueError(f"state: at most {STATE_MAX_CHARS} characters")
        if room_base_name is not None and len(room_base_name) > ROOM_BASE_NAME_MAX:
            raise ValueError(f"room_base_name: at most {ROOM_BASE_NAME_MAX} characters")
        body: dict[str, Any] = {"scene": scene, "chat_id_list": list(chat_ids),
                                "auto_create_room": 1 if auto_create_room else 0}
        for key, value in (("state", state), ("remark", remark), ("room_base_name", room_base_name),
                           ("room_base_id", room_base_id)):
            if value is not None:
                body[key] = value
        return body

    def add_join_way(self, *, scene: int, chat_ids: Sequence[str], state: str | None = None,
                     remark: str | None = None, auto_create_room: bool = False, room_base_name: str | None = None,
                     room_base_id: int | None = None) -> str:
        """A join way over up to 5 groups; returns its config_id (`get_join_way` gives the QR code)."""
        body = self._join_way_body(scene=scene, chat_ids=chat_ids, state=state, remark=remark,
                                   auto_create_room=auto_create_room, room_base_name=room_base_name,
                                   room_base_id=room_base_id)
        return str(self._call("POST", "externalcontact/groupchat/add_join_way", json=body)["config_id"])

    def get_join_way(self, config_id: str) -> JoinWay:
        data = self._call("POST", "externalcontact/groupchat/get_join_way", json={"config_id": config_id})
        return JoinWay.model_validate(data["join_way"])

    def update_join_way(self, *, config_id: str, scene: int, chat_ids: Sequence[str], state: str | None = None,
                        remark: str | None = None, auto_create_room: bool = False,
                        room_base_name: str | None = None, room_base_id: int | None = None) -> None:
        """Replace the join way's settings (WeCom takes the whole configuration each time)."""
        body = self._join_way_body(scene=scene, chat_ids=chat_ids, state=state, remark=remark,
                                   auto_create_room=auto_create_room, room_base_name=room_base_name,
                                   room_base_id=room_base_id)
        self._call("POST", "externalcontact/groupchat/update_join_way", json={"config_id": config_id, **body})

    def del_join_way(self, config_id: str) -> None:
        self._call("POST", "externalcontact/groupchat/del_join_way", json={"config_id": config_id})

    # --- group welcome templates (入群欢迎语素材) ---------------------------------------------------

    @staticmethod
    def _group_welcome_body(*, text: str | None, link: Mapping[str, Any] | None, image: Mapping[str, Any] | None
                            ) -> dict[str, Any]:
        if text is not None and len(text.encode()) > GROUP_WELCOME_TEXT_MAX_BYTES:
            raise ValueError(f"text: at most {GROUP_WELCOME_TEXT_MAX_BYTES} bytes")
        body: dict[str, Any] = {}
        if text:
            body["text"] = {"content": text}
        if link:
            body["link"] = dict(link)
        if image:
            body["image"] = dict(image)
        if not body:
            raise ValueError("a group welcome needs a text, a link or an image")
        return body

    def add_group_welcome_template(self, *, text: str | None = None, link: Mapping[str, Any] | None = None,
                                   image: Mapping[str, Any] | None = None, notify: bool = True) -> str:
        """A template in the corp's group welcome library (≤100); returns its template_id. `notify`
        tells the owners to apply it to their groups in the app."""
        body = self._group_welcome_body(text=text, link=link, image=image)
        body["notify"] = 1 if notify else 0
        return str(self._call("POST", "externalcontact/group_welcome_template/add", json=body)["template_id"])

    def edit_group_welcome_template(self, *, template_id: str, text: str | None = None,
                                    link: Mapping[str, Any] | None = None,
                                    image: Mapping[str, Any] | None = None) -> None:
        body = self._group_welcome_body(text=text, link=link, image=image)
        self._call("POST", "externalcontact/group_welcome_template/edit", json={"template_id": template_id, **body})

    def get_group_welcome_template(self, template_id: str) -> dict[str, Any]:
        data = self._call("POST", "externalcontact/group_welcome_template/get", json={"template_id": template_id})
        return {k: data[k] for k in ("text", "image", "link", "miniprogram", "file", "video") if k in data}

    def del_group_welcome_template(self, template_id: str) -> None:
        self._call("POST", "externalcontact/group_welcome_template/del", json={"template_id": template_id})

    # --- handover (在职继承 / 离职继承) ---------------------------------------------------------

    def transfer_customer(self, *, handover_userid: str, takeover_userid: str, external_userids: Sequence[str],
                          transfer_success_msg: str | None = None) -> list[TransferResult]:
        """Active handover: each customer may be transferred at most twice in 90 days; customers
        are taken over 24 h later unless they refuse. Per-customer errcodes are in the result."""
        _check_batch(external_userids)
        if transfer_success_msg is not None and len(transfer_success_msg) > TRANSFER_MSG_MAX_CHARS:
            raise ValueError(f"transfer_success_msg: at most {TRANSFER_MSG_MAX_CHARS} characters")
        body: dict[str, Any] = {"handover_userid": handover_userid, "takeover_userid": takeover_userid,
                                "external_userid": list(external_userids)}
        if transfer_success_msg:
            body["transfer_success_msg"] = transfer_success_msg
        data = self._call("POST", "externalcontact/transfer_customer", json=body)
        return [TransferResult.model_validate(c) for c in data.get("customer") or []]

    def resigned_transfer_customer(self, *, handover_userid: str, takeover_userid: str,
                                   external_userids: Sequence[str]) -> list[TransferResult]:
        """Handover of a resigned member's customers, at most 100 per call, taken over after 24 h."""
        _check_batch(external_userids)
        data = self._call("POST", "externalcontact/resigned/transfer_customer",
                          json={"handover_userid": handover_userid, "takeover_userid": takeover_userid,
                                "external_userid": list(external_userids)})
        return [TransferResult.model_validate(c) for c in data.get("customer") or []]

    def transfer_result(self, *, handover_userid: str, takeover_userid: str) -> list[TransferStatus]:
        """在职继承: the takeover state of each customer handed from one member to another."""
        return self._transfer_result("externalcontact/transfer_result", handover_userid, takeover_userid)

    def resigned_transfer_result(self, *, handover_userid: str, takeover_userid: str) -> list[TransferStatus]:
        """离职继承: the takeover state of each customer handed from a resigned member."""
        return self._transfer_result("externalcontact/resigned/transfer_result", handover_userid, takeover_userid)

    def iter_unassigned(self, *, page_size: int = 1000) -> Iterator[UnassignedCustomer]:
        """获取待分配的离职成员列表: the customers of resigned members WeCom holds for a handover."""
        if not 1 <= page_size <= 1000:
            raise ValueError("page_size: between 1 and 1000")
        for item in self._paginate("externalcontact/get_unassigned_list", {"page_size": page_size}, "info"):
            yield UnassignedCustomer.model_validate(item)

    def _transfer_result(self, endpoint: str, handover_userid: str, takeover_userid: str) -> list[TransferStatus]:
        if not handover_userid or not takeover_userid:
            raise ValueError("handover_userid and takeover_userid are required")
        body = {"handover_userid": handover_userid, "takeover_userid": takeover_userid}
        return [TransferStatus.model_validate(c) for c in self._paginate(endpoint, body, "customer")]

    def transfer_group_chats(self, *, chat_ids: Sequence[str], new_owner: str) -> list[FailedChat]:
        """分配离职成员的客户群: groups of a resigned owner to `new_owner`; returns the groups that failed."""
        return self._group_transfer("externalcontact/groupchat/transfer", chat_ids, new_owner)

    def onjob_transfer_group_chats(self, *, chat_ids: Sequence[str], new_owner: str) -> list[FailedChat]:
        """分配在职成员的客户群 (each group at most twice in 90 days); returns the groups that failed."""
        return self._group_transfer("externalcontact/groupchat/onjob_transfer", chat_ids, new_owner)

    def _group_transfer(self, endpoint: str, chat_ids: Sequence[str], new_owner: str) -> list[FailedChat]:
        if not 1 <= len(chat_ids) <= GROUP_TRANSFER_BATCH_MAX:
            raise ValueError(f"chat_ids: between 1 and {GROUP_TRANSFER_BATCH_MAX} groups per call")
        if not new_owner:
            raise ValueError("new_owner is required")
        data = self._call("POST", endpoint, json={"chat_id_list": list(chat_ids), "new_owner": new_owner})
        return [FailedChat.model_validate(c) for c in data.get("failed_chat_list") or []]


def _check_batch(external_userids: Sequence[str]) -> None:
    if not 1 <= len(external_userids) <= TRANSFER_BATCH_MAX:
        raise ValueError(f"external_userids: between 1 and {TRANSFER_BATCH_MAX} customers per call")

