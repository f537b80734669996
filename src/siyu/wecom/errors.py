"""WeCom API errors: one exception class per errcode family, each carrying errcode, errmsg and the
endpoint, so callers branch on types (`except WelcomeNotNeeded`) and logs name the code.

Meanings are WeCom's (企业微信全局错误码), not the Official Account's: 45033 and 40096 mean other
things there."""

from __future__ import annotations

# errcode -> short name used in logs and messages.
ERRCODE_NAMES: dict[int, str] = {
    -1: "system_busy",
    0: "ok",
    40001: "invalid_secret",
    40013: "invalid_corpid",
    40014: "invalid_access_token",
    40058: "invalid_parameter",
    40050: "invalid_chatid",
    40068: "invalid_tag_id",
    40096: "invalid_external_userid",
    40097: "handover_not_resigned",
    40128: "transfer_too_frequent",
    40129: "transfer_in_progress",
    41001: "access_token_missing",
    41051: "customer_started_chatting",
    41096: "welcome_sending_elsewhere",
    42001: "access_token_expired",
    44004: "empty_content",
    45009: "api_freq_out_of_limit",
    45033: "api_concurrent_out_of_limit",
    47001: "invalid_json",
    48002: "api_forbidden",
    60011: "no_privilege",
    60111: "invalid_userid",
    84061: "not_external_contact",
}


def errcode_name(errcode: int) -> str:
    return ERRCODE_NAMES.get(errcode, "unknown")


class WeComError(Exception):
    """WeCom answered a non-zero errcode (or could not be reached: errcode -1)."""

    # Whether the same request may succeed later without a change (the client already retried).
    retryable = False

    def __init__(self, errcode: int, errmsg: str, endpoint: str) -> None:
        self.errcode = errcode
        self.errmsg = errmsg
        self.endpoint = endpoint
        super().__init__(f"WeCom {endpoint}: errcode {errcode} ({errcode_name(errcode)}): {errmsg}")

    @property
    def name(self) -> str:
        return errcode_name(self.errcode)


class SystemBusy(WeComError):
    """-1, an HTTP 5xx, or a network failure. `maybe_applied` is true when the request may have
    reached WeCom (so a send must not simply be repeated)."""

    retryable = True

    def __init__(self, errcode: int, errmsg: str, endpoint: str, *, maybe_applied: bool = False) -> None:
        super().__init__(errcode, errmsg, endpoint)
        self.maybe_applied = maybe_applied


class InvalidCredential(WeComError):
    """40001 / 40013: the corp id or secret is wrong (a configuration problem, not transient)."""


class AccessTokenError(WeComError):
    """40014 / 42001 / 41001 that persisted after one token refresh."""


class RateLimited(WeComError):
    """45009: the call-frequency limit; still limited after the client's bounded backoff, or the
    corp's back-off window for this API is still open (`until`: when it closes, UTC)."""

    retryable = True

    def __init__(self, errcode: int, errmsg: str, endpoint: str, *, until=None) -> None:
        super().__init__(errcode, errmsg, endpoint)
        self.until = until


class ConcurrencyLimited(RateLimited):
    """45033: too many concurrent calls; still refused after the client lowered its concurrency."""


class InvalidRequest(WeComError):
    """40058 / 47001 / 44004: the request itself is wrong."""


class InvalidTagId(WeComError):
    """40068."""


class InvalidExternalUserId(WeComError):
    """40096: not an external user id of this corp."""


class WelcomeNotNeeded(WeComError):
    """41051 (externaluser has started chatting): no welcome can be sent any more because the
    customer has already started chatting, or another application's welcome with the same code
    went first. Not a failure: the welcome is superseded."""


class WelcomeSendingElsewhere(WeComError):
    """41096: another application is sending a welcome for this add right now; the request took no
    effect and may be retried (within the code's 20 s)."""

    retryable = True


class InvalidUserId(WeComError):
    """60111: no such member of staff."""


class NotExternalContact(WeComError):
    """84061: no follow relation between this member of staff and this customer."""


class InvalidChatId(WeComError):
    """40050: no such customer group (never existed, or dismissed)."""


class NotAllowed(WeComError):
    """48002 / 60011: the app lacks the permission or the visibility range."""


class RecipientFailed(WeComError):
    """WeCom accepted a mass-message call (errcode 0) but named the recipient in `fail_list`: no
    task was made for them (not the sender's customer, or not a customer at all)."""

    def __init__(self, recipient: str, endpoint: str) -> None:
        super().__init__(0, "the customer is in fail_list: WeCom made no task for them", endpoint)
        self.recipient = recipient
        Exception.__init__(self, f"WeCom {endpoint}: {self.errmsg}")

    @property
    def name(self) -> str:
        return "in_fail_list"


_BY_CODE: dict[int, type[WeComError]] = {
    -1: SystemBusy,
    40001: InvalidCredential,
    40013: InvalidCredential,
    40014: AccessTokenError,
    42001: AccessTokenError,
    41001: AccessTokenError,
    45009: RateLimited,
    45033: ConcurrencyLimited,
    40058: InvalidRequest,
    47001: InvalidRequest,
    44004: InvalidRequest,
    40068: InvalidTagId,
    40050: InvalidChatId,
    40096: InvalidExternalUserId,
    41051: WelcomeNotNeeded,
    41096: WelcomeSendingElsewhere,
    60111: InvalidUserId,
    84061: NotExternalContact,
    48002: NotAllowed,
    60011: NotAllowed,
}


def error_for(errcode: int, errmsg: str, endpoint: str) -> WeComError:
    return _BY_CODE.get(errcode, WeComError)(errcode, errmsg, endpoint)
