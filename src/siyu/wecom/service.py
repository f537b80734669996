"""The WeCom connector's own logic: each corp's connection settings, the callback crypto and API
client built from them, and the send-once record of every outbound effect.

Service functions take the session first and never commit; `send_once` is the exception by
design (see its docstring): its record must be committed *before* the call to WeCom leaves."""

from __future__ import annotations

import datetime as dt
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.orm import Session

from siyu import metrics, pii
from siyu.config import get_settings
from siyu.db import dialect_insert, session_scope, utcnow
from siyu.errors import Conflict, InvalidInput, NotFound
from siyu.tenancy import audit
from siyu.tenancy.models import Corp
from siyu.tenancy.principal import Principal
from siyu.wecom import inbox
from siyu.wecom.client import DEFAULT_BASE_URL, WeComClient
from siyu.wecom.crypto import InvalidAesKey, WXBizMsgCrypt, decode_aes_key
from siyu.wecom.errors import RateLimited, SystemBusy, WeComError, WelcomeNotNeeded
from siyu.wecom.events import WecomEvent
from siyu.wecom.inbox import Delivery
from siyu.wecom.models import WecomCorpConfig, WecomInboxEvent, WecomOutbound, WecomRateBucket
from siyu.wecom.ratelimit import DatabaseRateLimiter
from siyu.wecom.tokens import DatabaseTokenStore

WECOM_CORP_ID_RE = re.compile(r"^[A-Za-z0-9_-]{4,64}$")
TOKEN_RE = re.compile(r"^[A-Za-z0-9]{1,32}$")  # WeCom: English letters and digits, at most 32
WELCOME_MAX_CHARS = 4000
_CONTEXT = {"secret": "wecom_corp_config.secret", "token": "wecom_corp_config.token",
            "aes_key": "wecom_corp_config.aes_key"}


# --- connection settings --------------------------------------------------------------------------

@dataclass(frozen=True)
class ConnectionView:
    """What the console shows of a corp's settings: never the secrets themselves."""

    wecom_corp_id: str | None
    configured: bool
    secret_set: bool
    token_set: bool
    aes_key_set: bool
    base_url: str
    welcome_enabled: bool
    welcome_text: str
    updated_at: dt.datetime | None


def get_config(session: Session, *, corp_id: int) -> WecomCorpConfig | None:
    return session.get(WecomCorpConfig, corp_id)


def connection_view(session: Session, *, corp_id: int) -> ConnectionView:
    corp = session.get(Corp, corp_id)
    if corp is None:
        raise NotFound("corp not found")
    cfg = get_config(session, corp_id=corp_id)
    return ConnectionView(
        wecom_corp_id=corp.wecom_corp_id, configured=cfg is not None and bool(corp.wecom_corp_id),
        secret_set=cfg is not None, token_set=cfg is not None, aes_key_set=cfg is not None,
        base_url=cfg.base_url if cfg else DEFAULT_BASE_URL, welcome_enabled=cfg.welcome_enabled if cfg else False,
        welcome_text=cfg.welcome_text if cfg else "", updated_at=cfg.updated_at if cfg else None,
    )


def _clean(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return value or None


def check_base_url(value: str) -> str:
    """The WeCom API base URL: https to one of WeCom's hosts (SIYU_WECOM_API_HOSTS), or an address
    in the installation's trusted local networks (the emulator); checked after DNS resolution."""
    from siyu import netguard
    from siyu.config import get_settings

    if not re.fullmatch(r"https?://[^\s]{1,240}", value):
        raise InvalidInput("the API base URL must start with https://", field="base_url")
    url = netguard.check_url(value, field="base_url", allowed_hosts=get_settings().wecom_api_hosts, max_length=240)
    return url if url.endswith("/") else url + "/"


def configure_connection(
    session: Session,
    *,
    corp_id: int,
    actor: Principal | str,
    wecom_corp_id: str | None = None,
    secret: str | None = None,
    token: str | None = None,
    aes_key: str | None = None,
    base_url: str | None = None,
    ip: str | None = None,
) -> WecomCorpConfig:
    """Set (or change) how Siyu connects to the corp's WeCom. Secrets left empty keep their saved
    value; the first save needs all of them. Audited without the secrets."""
    corp = session.get(Corp, corp_id)
    if corp is None:
        raise NotFound("corp not found")
    wecom_corp_id, secret, token, aes_key, base_url = map(_clean, (wecom_corp_id, secret, token, aes_key, base_url))
    cfg = get_config(session, corp_id=corp_id)
    if wecom_corp_id is not None:
        if not WECOM_CORP_ID_RE.fullmatch(wecom_corp_id):
            raise InvalidInput("the WeCom corp id is 4–64 letters, digits, '-' or '_'", field="wecom_corp_id")
        other = session.scalar(select(Corp.id).where(Corp.wecom_corp_id == wecom_corp_id, Corp.id != corp_id))
        if other is not None:
            raise Conflict("another corp of this installation uses this WeCom corp id", field="wecom_corp_id")
    elif not corp.wecom_corp_id:
        raise InvalidInput("the WeCom corp id is required", field="wecom_corp_id")
    if token is not None and not TOKEN_RE.fullmatch(token):
        raise InvalidInput("the callback token is 1–32 letters and digits", field="token")
    if aes_key is not None:
        try:
            decode_aes_key(aes_key)
        except InvalidAesKey:
            raise InvalidInput("the EncodingAESKey is 43 characters of base64", field="aes_key") from None
    if secret is not None and len(secret) > 256:
        raise InvalidInput("the secret is too long", field="secret")
    if base_url is not None:
        base_url = check_base_url(base_url)
        if cfg is not None and base_url != cfg.base_url and secret is None:
            # The secret (and the access token it gets) goes to whatever the URL names: whoever
            # changes where it goes must know it.
            raise InvalidInput("enter the secret again when you change the API base URL", field="secret")
    if cfg is None:
        for name, value in (("secret", secret), ("token", token), ("aes_key", aes_key)):
            if value is None:
                raise InvalidInput("required for the first connection", field=name)
        cfg = WecomCorpConfig(corp_id=corp_id, base_url=base_url or DEFAULT_BASE_URL, welcome_enabled=False,
                              welcome_text="", secret_encrypted="", token_encrypted="", aes_key_encrypted="")
        session.add(cfg)
    changed = []
    if wecom_corp_id is not None and wecom_corp_id != corp.wecom_corp_id:
        corp.wecom_corp_id = wecom_corp_id
        changed.append("wecom_corp_id")
    for name, value in (("secret", secret), ("token", token), ("aes_key", aes_key)):
        if value is not None:
            setattr(cfg, f"{name}_encrypted", pii.encrypt(value, context=_CONTEXT[name]))
            changed.append(name)
    if base_url is not None and base_url != cfg.base_url:
        cfg.base_url = base_url
        changed.append("base_url")
    cfg.updated_at = utcnow()
    session.flush()
    audit.record(session, corp_id=corp_id, actor=actor, action="wecom.connection_changed", target_type="corp",
                 target_id=corp_id, detail={"changed": changed, "wecom_corp_id": corp.wecom_corp_id}, ip=ip)
    _crypto_cache.clear()
    return cfg


def set_default_welcome(
    session: Session, *, corp_id: int, actor: Principal | str, text: str, enabled: bool, ip: str | None = None,
) -> WecomCorpConfig:
    """The corp-wide welcome sent on every add that carries a welcome code. The text is content of
    the corp for compliance's gate (`compliance.service.submit_content`, kind "welcome", owner the
    corp): a text the wording review blocks is refused with its findings; any other change waits for
    a compliance officer's approval, and what goes out meanwhile is the version approved before."""
    from siyu.compliance.service import submit_content

    cfg = get_config(session, corp_id=corp_id)
    if cfg is None:
        raise InvalidInput("connect the corp's WeCom first", field="welcome_text")
    text = (text or "").strip()
    if len(text) > WELCOME_MAX_CHARS:
        raise InvalidInput("the welcome text is at most %(n)s characters", field="welcome_text",
                           params={"n": WELCOME_MAX_CHARS})
    if enabled and not text:
        raise InvalidInput("write the welcome text before turning it on", field="welcome_text")
    if text:
        submit_content(session, corp_id=corp_id, actor=actor, kind="welcome", owner=("corp", corp_id), body=text,
                       title="默认欢迎语", field="welcome_text")
    cfg.welcome_text, cfg.welcome_enabled, cfg.updated_at = text, enabled, utcnow()
    session.flush()
    audit.record(session, corp_id=corp_id, actor=actor, action="wecom.welcome_changed", target_type="corp",
                 target_id=corp_id, detail={"enabled": enabled, "chars": len(text)}, ip=ip)
    return cfg


# --- events ---------------------------------------------------------------------------------------------

def dispatch_event(session: Session, *, corp_id: int, event_id: int, natural_key: str, received_at: dt.datetime,
                   event: WecomEvent) -> bool:
    """Publish the domain event of a stored callback event and mark it processed, in the caller's
    transaction: the subscribers' jobs exist if and only if the event is marked. Keyed by the
    event's natural key, so dispatching it again enqueues nothing new. False when it was
    processed already."""
    from siyu.jobs.events import publish_ids

    marked = session.connection().execute(_MARK_PROCESSED, {"event_id": event_id, "marked_at": utcnow()}).rowcount
    if not marked:
        return False
    domain_event = event.domain_event
    if domain_event is not None:
        body = {**event.payload(), "inbox_event_id": event_id, "received_at": received_at.isoformat()}
        publish_ids(session, domain_event, body, corp_id=corp_id, key=event_key(corp_id, natural_key), returning=False)
    return True


def event_key(corp_id: int, natural_key: str) -> str:
    """The key a stored event's domain event is published under (its jobs' idempotency keys):
    scoped to the corp like the inbox's own uniqueness, so that one corp's event can never
    stand for another's that happens to have the same natural key."""
    return f"corp{corp_id}:{natural_key}"


def store_and_dispatch(session: Session, deliveries: Sequence[tuple[int, Delivery]]) -> list[bool]:
    """Store callback deliveries, (corp id, delivery) each, and publish the domain events of those
    stored for the first time, in the caller's transaction: the rows are created already marked
    processed, so the subscribers' jobs exist if and only if the event is marked, as with
    `dispatch_event`. A few statements for the whole batch, whatever its size. Returns, per
    delivery, whether it was stored now (False: a repeat)."""
    from siyu.jobs.events import publish_many

    stored = inbox.store_events(session, [d for _corp, d in deliveries], processed_at=utcnow())
    published = []
    for (corp_id, delivery), row in zip(deliveries, stored, strict=True):
        domain_event = delivery.event.domain_event
        if row.id is not None and domain_event is not None:
            body = {**delivery.event.payload(), "inbox_event_id": row.id,
                    "received_at": delivery.received_at.isoformat()}
            published.append((domain_event, body, corp_id, event_key(corp_id, row.natural_key)))
    if published:
        publish_many(session, published)
    return [row.created for row in stored]


_MARK_PROCESSED = (update(WecomInboxEvent.__table__)
                   .where(WecomInboxEvent.__table__.c.id == bindparam("event_id"),
                          WecomInboxEvent.__table__.c.processed_at.is_(None))
                   .values(processed_at=bindparam("marked_at")))


# --- callback crypto, per corp slug -------------------------------------------------------------------

@dataclass(frozen=True)
class CallbackTarget:
    corp_id: int
    crypto: WXBizMsgCrypt


_crypto_cache: dict[str, tuple[float, CallbackTarget | None]] = {}
_CRYPTO_TTL = 10.0  # seconds: a changed token or key is in force everywhere within this


MISS = object()  # not cached (None is a cached "no such corp")


def cached_callback_target(corp_slug: str, *, stale: bool = False):
    """The cached `callback_target` of a slug (None: no such corp), or `MISS` when not cached.
    `stale`: also an expired entry (while the database is unreachable, the last known keys)."""
    hit = _crypto_cache.get(corp_slug)
    if hit is not None and (stale or hit[0] > time.monotonic()):
        return hit[1]
    return MISS


def callback_target(session: Session, *, corp_slug: str) -> CallbackTarget | None:
    """The corp and crypto of a callback URL, or None when no active, connected corp has that slug.
    Cached briefly per process: the callback endpoint answers thousands of requests a second."""
    now = time.monotonic()
    hit = cached_callback_target(corp_slug)
    if hit is not MISS:
        return hit
    row = session.execute(
        select(Corp.id, Corp.wecom_corp_id, Corp.is_active, WecomCorpConfig.token_encrypted,
               WecomCorpConfig.aes_key_encrypted)
        .join(WecomCorpConfig, WecomCorpConfig.corp_id == Corp.id)
        .where(Corp.slug == corp_slug)
    ).first()
    target = None
    if row is not None and row.is_active and row.wecom_corp_id:
        target = CallbackTarget(
            corp_id=row.id,
            crypto=WXBizMsgCrypt(pii.decrypt(row.token_encrypted, context=_CONTEXT["token"]),
                                 pii.decrypt(row.aes_key_encrypted, context=_CONTEXT["aes_key"]), row.wecom_corp_id),
        )
    if len(_crypto_cache) > 1000:
        _crypto_cache.clear()
    _crypto_cache[corp_slug] = (now + _CRYPTO_TTL, target)
    return target


# --- API clients ----------------------------------------------------------------------------------------

# A closed 45009 window longer than this is not slept through by a job's call (token-bucket pacing,
# at most 1/40 s, is).
MAX_WINDOW_WAIT = 0.25

_clients: dict[tuple, WeComClient] = {}
_clients_lock = threading.Lock()


def client_for_corp(session: Session, *, corp_id: int) -> WeComClient:
    """A client for the corp's customer-contact app, shared by this process's threads, with the
    token store and rate limits in the database so that every process shares them too.

    45009 closes the corp's window for that API for SIYU_WECOM_RATE_LIMIT_WINDOW_SECONDS in every
    process (`wecom_rate_bucket.blocked_until`); a call that meets a closed window or a 45009 is
    not slept through but raises `RateLimited` with `until`, the window's end: a job is deferred to
    exactly then (`defer_until`) and holds no worker meanwhile, and calls resume as soon as the
    window passes."""
    corp = session.get(Corp, corp_id)
    cfg = get_config(session, corp_id=corp_id)
    if corp is None or cfg is None or not corp.wecom_corp_id:
        raise NotFound("the corp's WeCom connection is not set up", field="wecom")
    secret = pii.decrypt(cfg.secret_encrypted, context=_CONTEXT["secret"])
    key = (corp.wecom_corp_id, secret, cfg.base_url)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = WeComClient(corp.wecom_corp_id, secret, base_url=cfg.base_url, token_store=DatabaseTokenStore(),
                                 rate_limiter=DatabaseRateLimiter(), max_rate_limit_retries=0,
                                 rate_limit_window=get_settings().wecom_rate_limit_window_seconds,
                                 max_window_wait=MAX_WINDOW_WAIT)
            _clients[key] = client
        return client


def rate_window_until(session: Session, *, corp_id: int, endpoint: str) -> dt.datetime | None:
    """When the corp's 45009 window for `endpoint` (e.g. "externalcontact/send_welcome_msg")
    closes, if it is closed now (shared by every process through `wecom_rate_bucket`), else None.
    A job that meets it defers to then rather than claiming its effect and calling."""
    corp = session.get(Corp, corp_id)
    if corp is None or not corp.wecom_corp_id:
        return None
    until = session.scalar(select(WecomRateBucket.blocked_until).where(
        WecomRateBucket.corp_id == corp.wecom_corp_id, WecomRateBucket.endpoint == endpoint))
    return until if until is not None and until > utcnow() else None


# --- send once ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SendOutcome:
    state: str  # see WecomOutbound
    sent_now: bool  # this call sent it (False: it was handled before, or not sent)
    errcode: int | None = None
    detail: str = ""
    # 45009: when the corp's window for the API closes (retry then, not before).
    retry_at: dt.datetime | None = None


_RETRYABLE = ("failed",)
_MAYBE_APPLIED = "no answer (may have arrived): "


def _finish_record(outbound_id: int, *, state: str, retryable: bool = False, errcode: int | None = None,
                   detail: str = "", session: Session | None = None) -> None:
    statement = update(WecomOutbound).where(WecomOutbound.id == outbound_id).values(
        state=state, retryable=retryable, errcode=errcode, detail=detail[:500], finished_at=utcnow())
    if session is not None:
        session.execute(statement)
        return
    with session_scope() as s:
        s.execute(statement)


def record_outcome(session: Session, *, corp_id: int, effect_key: str, endpoint: str, state: str,
                   detail: str = "", event_time: dt.datetime | None = None) -> None:
    """Record an effect that was decided without a call (blocked by review, nothing to send),
    unless it is recorded already."""
    table = WecomOutbound.__table__
    session.execute(dialect_insert(session)(table).values(
        corp_id=corp_id, effect_key=effect_key, endpoint=endpoint, state=state, retryable=False, attempts=0,
        detail=detail[:500], event_time=event_time, created_at=utcnow(), finished_at=utcnow(),
    ).on_conflict_do_nothing(index_elements=["corp_id", "effect_key"]))


@dataclass(frozen=True)
class Claim:
    """The right to make one outside call: `outbound_id` is None when the effect was made (or may
    have been) already, and `outcome` then says what is known of it."""

    outbound_id: int | None
    maybe_sent_before: bool = False
    outcome: SendOutcome | None = None
    endpoint: str = ""
    event_time: dt.datetime | None = None  # of the event that asked for the call (welcome latency)


def claim_effect(session: Session, *, corp_id: int, effect_key: str, endpoint: str,
                 event_time: dt.datetime | None = None, repeat_safe: bool = False) -> Claim:
    """Step 1 of `send_once`, in the caller's transaction, which must commit before the call.

    `repeat_safe` (WeCom itself refuses a second effect, as send_welcome_msg refuses a used code):
    a record left `sending` by a worker that died mid-call is claimed again, as "may have been sent
    before", rather than given up as unknown: the repeat either delivers the welcome the dead
    worker never got through, or is refused, and the record then says unknown. Never a second
    welcome either way."""
    now = utcnow()
    table = WecomOutbound.__table__
    new_id = session.execute(dialect_insert(session)(table).values(
        corp_id=corp_id, effect_key=effect_key, endpoint=endpoint, state="sending", retryable=False, attempts=1,
        detail="", event_time=event_time, created_at=now,
    ).on_conflict_do_nothing(index_elements=["corp_id", "effect_key"]).returning(table.c.id)).scalar_one_or_none()
    if new_id is not None:
        return Claim(outbound_id=new_id, endpoint=endpoint, event_time=event_time)
    row = session.scalar(select(WecomOutbound).where(WecomOutbound.corp_id == corp_id,
                                                     WecomOutbound.effect_key == effect_key).with_for_update())
    if row.state == "sending" and repeat_safe:
        row.attempts, row.detail = row.attempts + 1, f"{_MAYBE_APPLIED}an earlier attempt stopped during the call"
        session.flush()
        return Claim(outbound_id=row.id, maybe_sent_before=True)
    if row.state in _RETRYABLE and row.retryable:
        maybe_sent_before = row.detail.startswith(_MAYBE_APPLIED)
        row.state, row.retryable, row.attempts = "sending", False, row.attempts + 1
        session.flush()
        return Claim(outbound_id=row.id, maybe_sent_before=maybe_sent_before, endpoint=endpoint,
                     event_time=event_time)
    if row.state == "sending":
        row.state, row.finished_at = "unknown", now
        row.detail = "an earlier attempt stopped during the call; not repeated"
        session.flush()
    return Claim(outbound_id=None,
                 outcome=SendOutcome(state=row.state, sent_now=False, errcode=row.errcode, detail=row.detail))


def call_claimed(claim: Claim, call: Callable[[], Any], *, repeat_safe: bool = False,
                 record_in: Session | None = None) -> SendOutcome:
    """Steps 2 and 3 of `send_once`: make the claimed call, holding no transaction, and record the
    outcome in a short transaction of its own; a success may go into `record_in` instead (a job
    handler's session, which the worker commits with the job's completion: one transaction fewer;
    if the worker dies before that commit, the record stays "sending" and the job's next run marks
    it "unknown", never sending again)."""
    if claim.outbound_id is None:
        assert claim.outcome is not None
        return claim.outcome
    outbound_id = claim.outbound_id

    def _finish(outbound_id: int, *, state: str, **kw: Any) -> None:
        # Only a success goes into `record_in`: after a failure the handler may raise to be
        # retried, which rolls its session back, and the failure must stay recorded.
        _finish_record(outbound_id, state=state, session=record_in if state == "sent" else None, **kw)

    try:
        call()
    except (RateLimited, SystemBusy) as exc:
        maybe_applied = getattr(exc, "maybe_applied", False)
        if maybe_applied and repeat_safe:
            detail = f"{_MAYBE_APPLIED}{exc}"
            _finish(outbound_id, state="failed", retryable=True, errcode=exc.errcode, detail=detail)
            return SendOutcome(state="failed", sent_now=False, errcode=exc.errcode, detail=detail)
        state = "unknown" if maybe_applied else "failed"
        _finish(outbound_id, state=state, retryable=not maybe_applied, errcode=exc.errcode, detail=str(exc))
        return SendOutcome(state=state, sent_now=False, errcode=exc.errcode, detail=str(exc),
                           retry_at=getattr(exc, "until", None))
    except WeComError as exc:
        if claim.maybe_sent_before:
            state = "unknown"  # the refusal may be of our own earlier, unanswered attempt
        elif isinstance(exc, WelcomeNotNeeded):
            state = "superseded"  # 41051: the customer already started chatting; nothing to send
        else:
            state = "failed"
        # A refusal that took no effect and may pass later (41096) can be claimed again.
        retryable = state == "failed" and exc.retryable
        _finish(outbound_id, state=state, retryable=retryable, errcode=exc.errcode, detail=str(exc))
        return SendOutcome(state=state, sent_now=False, errcode=exc.errcode, detail=str(exc))
    except BaseException as exc:
        # Unknown whether the request left: never repeat it.
        _finish(outbound_id, state="unknown", detail=f"{type(exc).__name__}")
        raise
    _finish(outbound_id, state="sent")
    if claim.endpoint == "send_welcome_msg" and claim.event_time is not None:
        metrics.observe_welcome((utcnow() - claim.event_time).total_seconds())
    return SendOutcome(state="sent", sent_now=True)


def send_once(*, corp_id: int, effect_key: str, endpoint: str, call: Callable[[], Any],
              event_time: dt.datetime | None = None, repeat_safe: bool = False) -> SendOutcome:
    """Make one outside call at most once per `effect_key`, whatever retries, duplicate events or
    crashes happen around it.

    1. Claim (`claim_effect`): in a committed transaction, insert the record in state "sending",
       or take over a record whose earlier attempt failed in a way that left nothing at WeCom
       ("failed" and retryable). Any other existing record means the effect was made, or may have
       been: nothing is sent, and a record left in "sending" by a worker that died mid-call
       becomes "unknown".
    2. Call, holding no database transaction (on SQLite that would hold the write lock).
    3. Record the outcome in its own transaction.

    `repeat_safe`: WeCom itself makes a repeat harmless (send_welcome_msg: a welcome code works
    once), so a call whose answer was lost (HTTP 5xx, a dropped connection) may be tried again; a
    repeat that finds the code used up is then recorded as "unknown", not as a failure.

    Call this from a job handler *without* using the handler's session before it (its transaction
    would hold SQLite's write lock while the claim waits for it)."""
    with session_scope() as s:
        claim = claim_effect(s, corp_id=corp_id, effect_key=effect_key, endpoint=endpoint, event_time=event_time,
                             repeat_safe=repeat_safe)
    return call_claimed(claim, call, repeat_safe=repeat_safe)


# --- console figures ------------------------------------------------------------------------------------

def inbox_summary(session: Session, *, corp_id: int) -> dict[str, int]:
    corp = session.get(Corp, corp_id)
    if corp is None or not corp.wecom_corp_id:
        return {"events": 0, "deliveries": 0, "unprocessed": 0}
    row = session.execute(
        select(func.count(), func.coalesce(func.sum(WecomInboxEvent.deliveries), 0),
               func.count(WecomInboxEvent.id).filter(WecomInboxEvent.processed_at.is_(None)))
        .where(WecomInboxEvent.wecom_corp_id == corp.wecom_corp_id)
    ).one()
    return {"events": row[0], "deliveries": int(row[1]), "unprocessed": row[2]}


def recent_events(session: Session, *, corp_id: int, limit: int = 20) -> list[WecomInboxEvent]:
    corp = session.get(Corp, corp_id)
    if corp is None or not corp.wecom_corp_id:
        return []
    return list(session.scalars(select(WecomInboxEvent).where(WecomInboxEvent.wecom_corp_id == corp.wecom_corp_id)
                                .order_by(WecomInboxEvent.id.desc()).limit(limit)))


def outbound_counts(session: Session, *, corp_id: int) -> dict[str, int]:
    rows = session.execute(select(WecomOutbound.state, func.count()).where(WecomOutbound.corp_id == corp_id)
                           .group_by(WecomOutbound.state)).all()
    return {state: n for state, n in rows}


def recent_outbound(session: Session, *, corp_id: int, limit: int = 20) -> list[WecomOutbound]:
    return list(session.scalars(select(WecomOutbound).where(WecomOutbound.corp_id == corp_id)
                                .order_by(WecomOutbound.id.desc()).limit(limit)))
