"""The emulator's in-memory world: corps, staff, customers, follow relations, tags, groups, messages,
transfers, tokens, a clock that tests can move forward, limits and fault switches.

Everything is guarded by one re-entrant lock (`EmulatorState.lock`): the API handlers, the admin
API, the callback dispatcher threads and the customer simulator all touch the same objects. No
operation holds the lock across network I/O or a sleep."""

from __future__ import annotations

import functools
import random
import string
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Concatenate, Literal, ParamSpec, TypeVar

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from siyu.wecom.emulator.callbacks import CallbackDispatcher

CN_UTC_OFFSET = 8 * 3600  # China has no daylight saving, so a fixed offset gives its calendar day
ID_ALPHABET = string.ascii_letters + string.digits
EXTERNAL_USERID_PREFIX = "wm"


class ApiError(Exception):
    """What a WeCom endpoint answers instead of data: an errcode with its message."""

    def __init__(self, errcode: int, errmsg: str) -> None:
        super().__init__(f"{errcode}: {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg


class AdminError(Exception):
    """A bad request to the emulator's own control API (answered with an HTTP 4xx)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class Clock:
    """Wall-clock time plus an offset that only moves forward (`advance`)."""

    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        return time.time() + self._offset

    def advance(self, seconds: float) -> float:
        if seconds < 0:
            raise ValueError("the emulator clock only moves forward")
        with self._lock:
            self._offset += seconds
        return self.now()


def cn_day(epoch: float) -> int:
    """The calendar day in China (for per-day caps) as a day number."""
    return int((epoch + CN_UTC_OFFSET) // 86400)


class Limits(BaseModel):
    """WeCom's documented limits, all configurable per corp (tests shrink the windows)."""

    model_config = ConfigDict(extra="forbid")

    token_ttl: int = Field(7200, ge=1, description="access token lifetime, seconds")
    welcome_code_ttl: float = Field(20.0, gt=0, description="a welcome code works this long after the add event")
    issue_welcome_codes: bool = Field(True, description="false: as when staff have a welcome configured in WeCom")
    # How many of the corp's mass messages one customer receives (later ones: status 3). WeCom's
    # default is as many a calendar month as the month has days; a corp may choose 1 a day or 7 a
    # week instead ("day", "week"). `mass_messages_per_period` overrides the count (tests).
    mass_message_allowance: Literal["month", "week", "day"] = "month"
    mass_messages_per_period: int | None = Field(None, ge=0, description="overrides the allowance's count")
    moments_per_customer_per_day: int = Field(3, ge=0)
    auto_confirm_mass_messages: bool = Field(
        False, description="true (a friendlier mode): mass messages go out without the advisor confirming them")
    archive_consent_default: bool = Field(
        False, description="true (a friendlier mode): customers count as having agreed to chat archiving")
    customers_per_staff: int = Field(50_000, ge=1, description="a take-over beyond this fails: customer_limit_exceed")
    transfer_batch_max: int = Field(100, ge=1)
    takeover_delay: float = Field(24 * 3600, ge=0, description="seconds until a transferred customer is taken over")
    active_transfer_window: float = Field(90 * 86400, gt=0)
    active_transfers_per_window: int = Field(2, ge=0)
    rate_limit_calls: int = Field(10_000, ge=1, description="calls per endpoint per window before 45009")
    rate_limit_window: float = Field(60.0, gt=0)
    max_concurrent_calls: int = Field(200, ge=1, description="in-flight calls per corp before 45033")
    follow_user_page_size: int = Field(500, ge=1, description="externalcontact/get pages follow_user beyond this")
    callback_timeout: float = Field(5.0, gt=0, description="an event not acknowledged within this is retried")
    callback_retries: int = Field(3, ge=0, description="retries after the first attempt")
    callback_retry_delay: float = Field(1.0, ge=0)
    certified: bool = Field(False, description="a certified corp's customer groups hold 500 members, else 200")
    group_capacity: int | None = Field(
        None, ge=2, le=500, description="a friendlier mode for demos and tests: customer groups hold this many "
        "members instead of WeCom's 200/500")


class Faults(BaseModel):
    """Fault-injection switches of one corp. Counters (`*_next`) are used up one per call or
    callback; rates are probabilities drawn from the emulator's seeded random generator."""

    model_config = ConfigDict(extra="forbid")

    latency_ms: int = Field(0, ge=0, description="added to every API call")
    latency_jitter_ms: int = Field(0, ge=0)
    error_5xx_next: int = Field(0, ge=0, description="the next N API calls answer HTTP 503")
    error_5xx_rate: float = Field(0.0, ge=0, le=1)
    system_busy_next: int = Field(0, ge=0, description="the next N API calls answer errcode -1 (not processed)")
    rate_limit_next: int = Field(0, ge=0, description="the next N API calls answer 45009 (a storm)")
    rate_limit_until: float = Field(0.0, description="emulator time until which every call answers 45009")
    welcome_elsewhere_next: int = Field(0, ge=0, description="the next N send_welcome_msg answer 41096 "
                                                             "(another application is sending a welcome now)")
    invalid_token_next: int = Field(0, ge=0, description="the next N authenticated calls answer 40014")
    duplicate_callbacks_next: int = Field(0, ge=0, description="the next N events are delivered twice")
    duplicate_callback_rate: float = Field(0.0, ge=0, le=1)
    drop_acks_next: int = Field(0, ge=0, description="the next N acknowledgements are ignored (event retried)")
    drop_ack_rate: float = Field(0.0, ge=0, le=1)
    endpoints: list[str] = Field(default_factory=list, description="limit API faults to these paths (empty: all)")

    def applies_to(self, endpoint: str) -> bool:
        return not self.endpoints or endpoint in self.endpoints


# --- entities ------------------------------------------------------------------------------------


@dataclass
class CallbackConfig:
    url: str
    token: str
    encoding_aes_key: str


@dataclass
class Staff:
    userid: str
    name: str
    department: list[int]
    status: str = "active"  # "active" | "resigned"
    resigned_at: float | None = None


@dataclass
class Customer:
    external_userid: str
    name: str
    type: int = 1
    gender: int = 0
    unionid: str | None = None
    avatar: str = ""

    def as_api(self) -> dict[str, Any]:
        out: dict[str, Any] = {"external_userid": self.external_userid, "name": self.name, "type": self.type,
                               "gender": self.gender, "avatar": self.avatar}
        if self.unionid:
            out["unionid"] = self.unionid
        return out


@dataclass
class Follow:
    userid: str
    external_userid: str
    createtime: int
    add_way: int
    state: str | None = None
    remark: str = ""
    description: str = ""
    oper_userid: str | None = None
    tags: list[str] = field(default_factory=list)  # corp tag ids, in the order they were added


@dataclass
class Tag:
    id: str
    name: str
    group_id: str
    create_time: int
    order: int = 0


@dataclass
class TagGroup:
    group_id: str
    group_name: str
    create_time: int
    order: int = 0


@dataclass
class ContactWay:
    config_id: str
    type: int
    scene: int
    users: list[str]
    parties: list[int]
    state: str | None
    remark: str | None
    skip_verify: bool
    qr_code: str | None
    created: float


@dataclass
class WelcomeCode:
    code: str
    userid: str
    external_userid: str
    issued_at: float
    used_at: float | None = None
    # When the customer sent the advisor a message before any welcome (then 41051: no welcome).
    chatted_at: float | None = None


@dataclass
class DeliveredWelcome:
    userid: str
    external_userid: str
    text: str | None
    attachments: list[dict[str, Any]]
    sent_at: float
    welcome_code: str


@dataclass
class SendResult:
    userid: str
    status: int  # 0 not sent, 1 sent, 2 not a friend, 3 already received another mass message
    external_userid: str | None = None
    chat_id: str | None = None
    send_time: int | None = None

    def as_api(self) -> dict[str, Any]:
        out: dict[str, Any] = {"userid": self.userid, "status": self.status}
        if self.external_userid is not None:
            out["external_userid"] = self.external_userid
        if self.chat_id is not None:
            out["chat_id"] = self.chat_id
        if self.send_time is not None:
            out["send_time"] = self.send_time
        return out


@dataclass
class MassMessage:
    msgid: str
    chat_type: str
    sender: str | None
    text: str | None
    attachments: list[dict[str, Any]]
    created: float
    results: list[SendResult]
    fail_list: list[str]


@dataclass
class AppMessage:
    """An application message (`message/send`) as the staff it reached see it in WeCom."""

    msgid: str
    agentid: int
    touser: list[str]
    msgtype: str
    content: str
    sent: float
    invaliduser: list[str]


@dataclass
class MomentTask:
    jobid: str
    moment_id: str
    created: float
    text: str | None
    attachments: list[dict[str, Any]]
    senders: list[str]
    invalid_users: list[str]
    invalid_departments: list[int]
    invalid_tags: list[str]
    shown_to: list[str]
    capped: list[str]  # customers who would have seen it but had their 3 posts for the day


@dataclass
class GroupMember:
    userid: str
    type: int  # 1 staff, 2 external contact
    join_time: int
    join_scene: int
    invitor: str | None = None
    name: str = ""
    state: str | None = None  # the join way's `state` when the member joined by one (群活码)


@dataclass
class GroupChat:
    chat_id: str
    name: str
    owner: str
    create_time: int
    notice: str = ""
    members: dict[str, GroupMember] = field(default_factory=dict)
    admins: list[str] = field(default_factory=list)
    member_version: int = 1
    dismissed: bool = False
    transferred_at: list[float] = field(default_factory=list)  # group handovers (离职/在职继承), emulator time


@dataclass
class JoinWay:
    """加入群聊 (群活码): a QR or mini-program entry over up to 5 groups; a scan joins the first group
    of the list that is not full (or, with `auto_create_room`, a new group when all are)."""

    config_id: str
    scene: int  # 1 mini-program, 2 QR
    chat_ids: list[str]
    remark: str = ""
    auto_create_room: int = 1
    room_base_name: str = ""
    room_base_id: int = 1
    state: str | None = None
    qr_code: str | None = None
    rooms_created: int = 0


@dataclass
class Transfer:
    kind: str  # "active" | "resigned"
    handover_userid: str
    takeover_userid: str
    external_userid: str
    requested_at: float
    takeover_at: float
    status: str = "waiting"  # waiting | done | refused | failed (take-over at its limit) | void (no longer applies)
    success_msg: str | None = None
    refused: bool = False


@dataclass
class CallbackAttempt:
    at: float
    status_code: int | None
    acknowledged: bool
    error: str | None = None
    duration_ms: float | None = None  # from sending the request to the answer (or the failure)


@dataclass
class CallbackRecord:
    id: int
    corp_id: str
    event: str
    change_type: str
    plaintext: str
    created: float
    duplicate: bool = False
    status: str = "pending"  # pending | acknowledged | failed
    attempts: list[CallbackAttempt] = field(default_factory=list)


@dataclass
class ApiCall:
    at: float
    endpoint: str
    errcode: int
    http_status: int


@dataclass
class IssuedToken:
    token: str
    corp_id: str
    secret: str
    expires_at: float
    revoked: bool = False


@dataclass
class Corp:
    corp_id: str
    name: str
    secrets: set[str]
    agent_id: int
    limits: Limits
    faults: Faults = field(default_factory=Faults)
    callback: CallbackConfig | None = None
    staff: dict[str, Staff] = field(default_factory=dict)
    customers: dict[str, Customer] = field(default_factory=dict)
    follows: dict[tuple[str, str], Follow] = field(default_factory=dict)  # (userid, external_userid)
    tag_groups: dict[str, TagGroup] = field(default_factory=dict)
    tags: dict[str, Tag] = field(default_factory=dict)
    contact_ways: dict[str, ContactWay] = field(default_factory=dict)
    welcome_codes: dict[str, WelcomeCode] = field(default_factory=dict)
    welcomes: list[DeliveredWelcome] = field(default_factory=list)
    mass_messages: dict[str, MassMessage] = field(default_factory=dict)
    # (external_userid, allowance period) -> mass messages received in it (see messaging.allowance_period)
    mass_received: dict[tuple[str, str], int] = field(default_factory=dict)
    moments: dict[str, MomentTask] = field(default_factory=dict)
    app_messages: list[AppMessage] = field(default_factory=list)  # message/send (应用消息) to staff
    moments_seen: dict[tuple[str, int], int] = field(default_factory=dict)
    group_chats: dict[str, GroupChat] = field(default_factory=dict)
    join_ways: dict[str, JoinWay] = field(default_factory=dict)
    group_welcome_templates: dict[str, dict[str, Any]] = field(default_factory=dict)  # template_id -> body
    transfers: list[Transfer] = field(default_factory=list)
    # Chat archive (会话存档, see emulator/archive.py): the archived records in seq order, and each
    # customer's answer to the consent prompt (absent: not asked, so not archived unless the corp's
    # `archive_consent_default` says otherwise).
    archive: list[dict[str, Any]] = field(default_factory=list)
    last_chat: dict[str, tuple[float, str]] = field(default_factory=dict)  # external_userid -> (at, staff userid)
    archive_consent: dict[str, bool] = field(default_factory=dict)
    callbacks: list[CallbackRecord] = field(default_factory=list)
    calls: deque[ApiCall] = field(default_factory=lambda: deque(maxlen=5000))
    rate_windows: dict[str, tuple[float, int]] = field(default_factory=dict)  # endpoint -> (start, count)
    in_flight: int = 0

    def follows_of_staff(self, userid: str) -> list[Follow]:
        return [f for (u, _), f in self.follows.items() if u == userid]

    def follows_of_customer(self, external_userid: str) -> list[Follow]:
        return [f for (_, e), f in self.follows.items() if e == external_userid]


P = ParamSpec("P")
R = TypeVar("R")


def locked(fn: Callable[Concatenate[EmulatorState, P], R]) -> Callable[Concatenate[EmulatorState, P], R]:
    """Run an operation under the state lock (operations take the state first)."""

    @functools.wraps(fn)
    def wrapper(state: EmulatorState, *args: P.args, **kwargs: P.kwargs) -> R:
        with state.lock:
            return fn(state, *args, **kwargs)

    return wrapper


class EmulatorState:
    def __init__(self, *, seed: int | None = None, default_limits: Limits | None = None,
                 callback_workers: int = 4) -> None:
        self.lock = threading.RLock()
        self.callback_workers = callback_workers  # deliveries in flight at once (WeCom's are many)
        self.clock = Clock()
        self.rng = random.Random(seed)
        self.default_limits = default_limits or Limits()
        self.corps: dict[str, Corp] = {}
        self.tokens: dict[str, IssuedToken] = {}
        self._callback_seq = 0
        self._dispatcher: CallbackDispatcher | None = None

    # --- ids -------------------------------------------------------------------------------------

    def new_id(self, prefix: str = "", length: int = 30) -> str:
        with self.lock:
            return prefix + "".join(self.rng.choice(ID_ALPHABET) for _ in range(length))

    def now(self) -> float:
        return self.clock.now()

    # --- corps ------------------------------------------------------------------------------------

    def corp(self, corp_id: str) -> Corp:
        with self.lock:
            corp = self.corps.get(corp_id)
            if corp is None:
                raise AdminError(404, f"no corp {corp_id!r} in the emulator")
            return corp

    def corp_for_token(self, token: str | None) -> Corp | None:
        with self.lock:
            issued = self.tokens.get(token or "")
            return None if issued is None else self.corps.get(issued.corp_id)

    def reset(self) -> None:
        with self.lock:
            self.corps.clear()
            self.tokens.clear()

    # --- callbacks ------------------------------------------------------------------------------

    @property
    def dispatcher(self) -> CallbackDispatcher:
        with self.lock:
            if self._dispatcher is None:
                from siyu.wecom.emulator.callbacks import CallbackDispatcher

                self._dispatcher = CallbackDispatcher(self, workers=self.callback_workers)
            return self._dispatcher

    def next_callback_id(self) -> int:
        with self.lock:
            self._callback_seq += 1
            return self._callback_seq

    def close(self) -> None:
        with self.lock:
            dispatcher, self._dispatcher = self._dispatcher, None
        if dispatcher is not None:
            dispatcher.close()
