"""Verification gate (门槛社群): a customer proves on an H5 page that they are the firm's customer
before they see a gated community's group code.

The flow: the customer opens the community's link (a signed token: per customer when an advisor
sends it, so the external_userid is known; a general link otherwise) → enters their phone → when the
community asks for it, the firm's REST hook says whether the phone is a customer → a 6-digit code goes
out through the SMS provider → the customer enters it → verified: the page shows the group code.

Limits: 5 codes per phone per hour and 1 per 60 s, 20 codes per IP per hour, 5 wrong entries per
code (then it is dead), 20 wrong entries per IP per hour, codes live 5 minutes and are stored as keyed
hashes. A verification is recorded (phone as keyed hash and encrypted), published as
`customer.verified`, and the customers domain links the firm's customer id to the WeCom contact.

The firm hook is called with no write done yet in the request's transaction; nothing is stored and
no code is sent when it fails."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import logging
import re
import secrets
import time
import unicodedata
from dataclasses import dataclass
from typing import Protocol

import httpx
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from siyu import netguard, pii
from siyu.acquisition import service
from siyu.acquisition.models import (
    CustomerVerification,
    GatedCommunity,
    GatedVisit,
    SmsOutbox,
    VerificationCode,
    VerificationHook,
)
from siyu.compliance.detectors import phone_valid
from siyu.config import get_settings
from siyu.db import utcnow
from siyu.errors import InvalidInput, NotFound, SiyuError, Unavailable
from siyu.jobs.events import publish
from siyu.tenancy import audit
from siyu.tenancy.principal import Principal

log = logging.getLogger(__name__)

# "sms": anyone who holds the number; "both": the firm's system says the number is a customer's,
# and the one-time code proves the visitor holds it. ("firm" alone, a number without the code, was
# withdrawn: knowing a customer's number proved nothing. It is accepted as "both".)
VERIFY_BY = ("sms", "both")
CODE_TTL = dt.timedelta(minutes=5)
CODE_LENGTH = 6
MAX_WRONG_PER_CODE = 5
MAX_SENDS_PER_PHONE_HOUR = 5
MIN_SEND_INTERVAL = dt.timedelta(seconds=60)
MAX_SENDS_PER_IP_HOUR = 20
MAX_WRONG_PER_IP_HOUR = 20
MAX_PHONES_PER_VISIT = 5
MAX_OPENS_PER_IP_HOUR = 60
HOOK_TIMEOUT = 3.0
MAX_IMAGE_BYTES = 2 * 1024 * 1024
IMAGE_TYPES = {b"\x89PNG\r\n\x1a\n": "image/png", b"\xff\xd8\xff": "image/jpeg"}
EXTERNAL_ID_RE = re.compile(r"[A-Za-z0-9_\-]{1,64}")
FIRM_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")
CODE_TEXT = "您正在验证客户身份，验证码 {code}，5 分钟内有效。请勿将验证码告诉任何人。"
HOUR = dt.timedelta(hours=1)


class RateLimited(SiyuError):
    """Too many codes or wrong entries: the customer waits (the message says how long)."""

    status_code = 429


# --- phone numbers -----------------------------------------------------------------------------------


_PHONE_SEPARATORS = re.compile(r"[\s\-()（）.]")


def normalise_phone(raw: object, *, field: str = "phone") -> str:
    """A mainland mobile number as 11 digits: full-width digits, spaces, dashes, brackets and a
    +86 / 0086 / 86 prefix are accepted; anything else is refused naming `field`."""
    if not isinstance(raw, str) or len(raw) > 40:
        raise InvalidInput("enter an 11-digit mobile number", field=field)
    text = _PHONE_SEPARATORS.sub("", unicodedata.normalize("NFKC", raw))
    if text.startswith("+86"):
        text = text[3:]
    elif text.startswith("0086"):
        text = text[4:]
    elif len(text) == 13 and text.startswith("86"):
        text = text[2:]
    if not (text.isascii() and text.isdigit() and phone_valid(text)):
        raise InvalidInput("enter an 11-digit mobile number", field=field)
    return text


def phone_hash(phone: str) -> str:
    return pii.lookup_hash(phone, kind="phone")


def _ip_hash(ip: str | None) -> str:
    return pii.lookup_hash(ip or "", kind="ip")


# --- SMS ---------------------------------------------------------------------------------------------


class SmsProvider(Protocol):
    name: str

    def send(self, phone: str, text: str) -> None:
        """Hands one SMS to the carrier; raises on failure."""


class ConsoleSms:
    """Writes the SMS to the log instead of sending it: the phone masked, and the text only when
    the installation shows codes (SIYU_SMS_SHOW_CODES, the demo), else with its digits hidden."""

    name = "console"

    def __init__(self, *, show_codes: bool = False) -> None:
        self.show_codes = show_codes

    def send(self, phone: str, text: str) -> None:
        shown = text if self.show_codes else re.sub(r"\d", "*", text)
        log.info("SMS to %s: %s", pii.mask_phone(phone), shown)


_PROVIDERS: dict[str, type] = {"console": ConsoleSms}


def register_provider(name: str, factory) -> None:
    """A deployment's own SMS provider: `factory(show_codes=bool)` returning an SmsProvider."""
    _PROVIDERS[name] = factory


def sms_provider() -> SmsProvider:
    settings = get_settings()
    factory = _PROVIDERS.get(settings.sms_provider)
    if factory is None:
        raise Unavailable("SMS is not set up: ask the administrator")
    return factory(show_codes=settings.sms_show_codes)


# --- links ---------------------------------------------------------------------------------------------


def _token_key() -> bytes:
    return hmac.new(get_settings().resolved_secret_key().encode(), b"siyu/acquisition/gated-link",
                    hashlib.sha256).digest()


def _signature(corp_id: int, community_id: int, external_userid: str) -> str:
    mac = hmac.new(_token_key(), f"{corp_id}:{community_id}:{external_userid}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac[:18]).decode()


def link_token(community: GatedCommunity, *, external_userid: str | None = None) -> str:
    """The token of the community's H5 link: general, or for one WeCom contact."""
    if external_userid:
        if not EXTERNAL_ID_RE.fullmatch(external_userid):
            raise InvalidInput("an external_userid is 1–64 letters, digits, '-' or '_'", field="external_userid")
        return f"{community.id}.{external_userid}.{_signature(community.corp_id, community.id, external_userid)}"
    return f"{community.id}.{_signature(community.corp_id, community.id, '')}"


def link_path(community: GatedCommunity, *, external_userid: str | None = None) -> str:
    return f"/h5/gated/{link_token(community, external_userid=external_userid)}"


def read_token(session: Session, *, token: str) -> tuple[GatedCommunity, str | None]:
    """The community and external_userid of a link; a changed or unknown token is not found."""
    parts = token.split(".") if isinstance(token, str) and len(token) < 200 else []
    if len(parts) not in (2, 3) or not parts[0].isascii() or not parts[0].isdigit() or len(parts[0]) > 18:
        raise NotFound("this link is not valid", field="token")
    external_userid = parts[1] if len(parts) == 3 else ""
    community = session.get(GatedCommunity, int(parts[0]))
    if community is None or not hmac.compare_digest(
            parts[-1].encode(), _signature(community.corp_id, community.id, external_userid).encode()):
        raise NotFound("this link is not valid", field="token")
    if not community.is_active:
        raise NotFound("this community no longer takes new members through this link", field="token")
    return community, external_userid or None


# --- gated communities (console) ------------------------------------------------------------------------


def image_type(data: bytes) -> str:
    """The MIME type of an uploaded group QR: PNG or JPEG, at most 2 MB; anything else is refused."""
    if len(data) > MAX_IMAGE_BYTES:
        raise InvalidInput("the image is larger than 2 MB", field="qr_image")
    for magic, mime in IMAGE_TYPES.items():
        if data.startswith(magic):
            return mime
    raise InvalidInput("upload the group QR as a PNG or JPEG image", field="qr_image")


def list_communities(session: Session, *, corp_id: int) -> list[GatedCommunity]:
    return list(session.scalars(select(GatedCommunity).where(GatedCommunity.corp_id == corp_id)
                                .order_by(GatedCommunity.id.desc())))


def get_community(session: Session, *, corp_id: int, community_id: int) -> GatedCommunity:
    community = (session.get(GatedCommunity, community_id)
                 if isinstance(community_id, int) and 0 < community_id < 2**63 else None)
    if community is None or community.corp_id != corp_id:
        raise NotFound("no such gated community", field="community_id")
    return community


def save_community(session: Session, *, corp_id: int, actor: Principal | str, name: str, verify_by: str,
                   join_url: str = "", qr_image_url: str = "", qr_image: bytes | None = None,
                   remove_image: bool = False, is_active: bool = True,
                   community_id: int | None = None) -> GatedCommunity:
    """Creates (no `community_id`) or changes a gated community; it needs a group code: an uploaded
    QR image, an image address or a join link."""
    community = get_community(session, corp_id=corp_id, community_id=community_id) if community_id else None
    name = service.text_field(name, field="name", max_length=60, required=True)
    verify_by = "both" if verify_by == "firm" else verify_by
    if verify_by not in VERIFY_BY:
        raise InvalidInput("choose how customers verify", field="verify_by")
    join_url = service.url_field(join_url, field="join_url")
    qr_image_url = service.url_field(qr_image_url, field="qr_image_url")
    mime = image_type(qr_image) if qr_image else ""
    has_image = bool(qr_image) or (community is not None and community.qr_image is not None and not remove_image)
    if not (join_url or qr_image_url or has_image or (community is not None and join_way_qr(community))):
        raise InvalidInput("give the group code: upload its QR image, or enter an image address or a join link",
                           field="qr_image")
    clash = session.scalar(select(GatedCommunity.id).where(GatedCommunity.corp_id == corp_id,
                                                           GatedCommunity.name == name,
                                                           GatedCommunity.id != (community_id or 0)))
    if clash is not None:
        raise InvalidInput("another gated community has this name", field="name")
    if verify_by in ("firm", "both") and get_hook(session, corp_id=corp_id) is None:
        raise InvalidInput("set up the firm's verification hook first", field="verify_by")
    created = community is None
    if community is None:
        community = GatedCommunity(corp_id=corp_id)
        session.add(community)
    community.name, community.verify_by, community.is_active = name, verify_by, is_active
    community.join_url, community.qr_image_url = join_url, qr_image_url
    if qr_image:
        community.qr_image, community.qr_image_type = qr_image, mime
    elif remove_image:
        community.qr_image, community.qr_image_type = None, ""
    community.updated_at = utcnow()
    session.flush()
    audit.record(session, corp_id=corp_id, actor=actor,
                 action="acquisition.gated_created" if created else "acquisition.gated_changed",
                 target_type="gated_community", target_id=community.id,
                 detail={"name": name, "verify_by": verify_by, "active": is_active})
    return community


@dataclass(frozen=True)
class GateStats:
    opened: int = 0
    codes_sent: int = 0
    verified: int = 0
    failed: int = 0


def community_stats(session: Session, *, corp_id: int, community_ids: list[int]) -> dict[int, GateStats]:
    if not community_ids:
        return {}
    visits = session.execute(
        select(GatedVisit.community_id, GatedVisit.status, func.count())
        .where(GatedVisit.corp_id == corp_id, GatedVisit.community_id.in_(community_ids))
        .group_by(GatedVisit.community_id, GatedVisit.status)).all()
    codes = dict(session.execute(
        select(GatedVisit.community_id, func.count(VerificationCode.id))
        .join(VerificationCode, VerificationCode.visit_id == GatedVisit.id)
        .where(GatedVisit.corp_id == corp_id, GatedVisit.community_id.in_(community_ids))
        .group_by(GatedVisit.community_id)).all())
    out = {}
    for cid in community_ids:
        by_status = {status: n for c, status, n in visits if c == cid}
        out[cid] = GateStats(opened=sum(by_status.values()), codes_sent=codes.get(cid, 0),
                             verified=by_status.get("verified", 0),
                             failed=by_status.get("refused", 0) + by_status.get("failed", 0))
    return out


@dataclass(frozen=True)
class VisitRow:
    opened_at: dt.datetime
    status: str
    phone: str  # masked
    external_userid: str | None
    firm_customer_id: str  # masked


def _masked_ref(value: str | None) -> str:
    if not value:
        return ""
    return "*" * max(0, len(value) - 4) + value[-4:] if len(value) > 4 else "*" * len(value)


def verification_log(session: Session, *, corp_id: int, community_id: int, limit: int = 50) -> list[VisitRow]:
    """The latest openings of the community's link and how each ended, phones masked."""
    visits = session.scalars(select(GatedVisit).where(GatedVisit.corp_id == corp_id,
                                                      GatedVisit.community_id == community_id)
                             .order_by(GatedVisit.id.desc()).limit(limit))
    return [VisitRow(opened_at=v.opened_at, status=v.status, phone=pii.mask_phone(v.phone),
                     external_userid=v.external_userid, firm_customer_id=_masked_ref(v.firm_customer_id))
            for v in visits]


@dataclass(frozen=True)
class OutboxRow:
    at: dt.datetime
    phone: str  # masked
    provider: str
    text: str
    state: str


def sms_outbox(session: Session, *, corp_id: int, limit: int = 50) -> list[OutboxRow]:
    rows = session.scalars(select(SmsOutbox).where(SmsOutbox.corp_id == corp_id)
                           .order_by(SmsOutbox.id.desc()).limit(limit))
    return [OutboxRow(at=r.at, phone=pii.mask_phone(r.phone), provider=r.provider, text=r.text, state=r.state)
            for r in rows]


# --- the firm's hook ----------------------------------------------------------------------------------------


def get_hook(session: Session, *, corp_id: int) -> VerificationHook | None:
    return session.scalar(select(VerificationHook).where(VerificationHook.corp_id == corp_id))


def save_hook(session: Session, *, corp_id: int, actor: Principal | str, url: str, secret: str = "") -> None:
    """Sets the firm's hook (a new secret, or the one it had when left empty); an empty address removes it."""
    url = (url or "").strip()
    if url:
        # The firm's system is told customers' phone numbers: https to a public address only
        # (plain http only to the installation's trusted local networks: the tests and the demo).
        url = netguard.check_url(url, field="url")
    secret = service.text_field(secret, field="secret", max_length=200)
    hook = get_hook(session, corp_id=corp_id)
    if not url:
        if hook is not None:
            in_use = session.scalar(select(GatedCommunity.id).where(
                GatedCommunity.corp_id == corp_id, GatedCommunity.is_active.is_(True),
                GatedCommunity.verify_by.in_(("firm", "both"))).limit(1))
            if in_use is not None:
                raise InvalidInput("a gated community asks the firm's system: change it first", field="url")
            session.delete(hook)
            audit.record(session, corp_id=corp_id, actor=actor, action="acquisition.hook_removed",
                         target_type="verification_hook")
        return
    if hook is None:
        if len(secret) < 16:
            raise InvalidInput("the signing secret has at least 16 characters", field="secret")
        hook = VerificationHook(corp_id=corp_id, url=url, secret=secret)
        session.add(hook)
    else:
        if secret and len(secret) < 16:
            raise InvalidInput("the signing secret has at least 16 characters", field="secret")
        hook.url = url
        hook.secret = secret or hook.secret
        hook.updated_at = utcnow()
    session.flush()
    audit.record(session, corp_id=corp_id, actor=actor, action="acquisition.hook_saved",
                 target_type="verification_hook", target_id=hook.id,
                 detail={"url": url, "secret_changed": bool(secret)})


def sign(secret: str, body: bytes) -> str:
    """The X-Siyu-Signature of a hook request: hex HMAC-SHA256 of the raw body with the corp's secret."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class FirmAnswer:
    customer: bool
    firm_customer_id: str | None


def ask_firm(hook: VerificationHook, *, corp_id: int, community_id: int, phone: str,
             client: httpx.Client | None = None) -> FirmAnswer:
    """POSTs {"phone", "corp_id", "community_id", "timestamp", "nonce"} to the firm's hook, signed;
    the answer is {"customer": true|false, "firm_customer_id": "..."}. Fails with Unavailable."""
    body = json.dumps({"phone": phone, "corp_id": corp_id, "community_id": community_id,
                       "timestamp": int(time.time()), "nonce": secrets.token_hex(8)},
                      separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json", "X-Siyu-Signature": "sha256=" + sign(hook.secret, body)}
    try:
        if client is not None:
            response = client.post(hook.url, content=body, headers=headers, timeout=HOOK_TIMEOUT)
        else:
            response = netguard.post(hook.url, content=body, headers=headers, timeout=HOOK_TIMEOUT)
    except httpx.TimeoutException:
        log.warning("verification hook of corp %s did not answer within %ss", corp_id, HOOK_TIMEOUT)
        raise Unavailable("the firm's system did not answer in time; no code was sent, please try again later",
                          field="phone") from None
    except httpx.HTTPError as exc:
        log.warning("verification hook of corp %s unreachable: %s", corp_id, type(exc).__name__)
        raise Unavailable("the firm's system cannot be reached; no code was sent, please try again later",
                          field="phone") from None
    try:
        answer = response.json() if response.status_code == 200 else None
    except ValueError:
        answer = None
    if not isinstance(answer, dict) or not isinstance(answer.get("customer"), bool):
        log.warning("verification hook of corp %s answered %s without a usable body", corp_id, response.status_code)
        raise Unavailable("the firm's system gave no usable answer; no code was sent, please try again later",
                          field="phone")
    ref = answer.get("firm_customer_id")
    ref = ref.strip() if isinstance(ref, str) and FIRM_ID_RE.fullmatch(ref.strip()) else None
    return FirmAnswer(customer=answer["customer"], firm_customer_id=ref if answer["customer"] else None)


# --- the H5 flow --------------------------------------------------------------------------------------------


def _key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def open_visit(session: Session, *, token: str, ip: str | None,
               now: dt.datetime | None = None) -> tuple[GatedCommunity, GatedVisit, str]:
    """A customer opened the link: a visit whose key the page carries through the flow."""
    now = now or utcnow()
    community, external_userid = read_token(session, token=token)
    ip_hash = _ip_hash(ip)
    opens = session.scalar(select(func.count()).select_from(GatedVisit).where(
        GatedVisit.corp_id == community.corp_id, GatedVisit.ip_hash == ip_hash, GatedVisit.opened_at > now - HOUR))
    if opens >= MAX_OPENS_PER_IP_HOUR:
        raise RateLimited("too many attempts from this network; please try again in an hour", field="token")
    key = secrets.token_urlsafe(24)
    visit = GatedVisit(corp_id=community.corp_id, community_id=community.id, key_hash=_key_hash(key),
                       external_userid=external_userid, ip_hash=ip_hash, opened_at=now)
    session.add(visit)
    session.flush()
    return community, visit, key


def get_visit(session: Session, *, token: str, key: str) -> tuple[GatedCommunity, GatedVisit]:
    community, _ext = read_token(session, token=token)
    visit = (session.scalar(select(GatedVisit).where(GatedVisit.key_hash == _key_hash(key)))
             if isinstance(key, str) and 10 < len(key) < 100 else None)
    if visit is None or visit.community_id != community.id:
        raise NotFound("this page has expired; please open the link again", field="visit")
    return community, visit


def _wait_minutes(oldest: dt.datetime, now: dt.datetime) -> int:
    return max(1, -(-int((oldest + HOUR - now).total_seconds()) // 60))


def _check_send_limits(session: Session, *, corp_id: int, phone_h: str, ip_hash: str, now: dt.datetime) -> None:
    sent = list(session.scalars(select(VerificationCode.sent_at).where(
        VerificationCode.corp_id == corp_id, VerificationCode.phone_hash == phone_h,
        VerificationCode.sent_at > now - HOUR).order_by(VerificationCode.sent_at)))
    if sent and now - sent[-1] < MIN_SEND_INTERVAL:
        wait = int((sent[-1] + MIN_SEND_INTERVAL - now).total_seconds()) + 1
        raise RateLimited("a code was just sent; you can ask for another in %(n)s seconds", field="phone",
                          params={"n": wait})
    if len(sent) >= MAX_SENDS_PER_PHONE_HOUR:
        raise RateLimited("too many codes for this number; please try again in %(n)s minutes", field="phone",
                          params={"n": _wait_minutes(sent[0], now)})
    by_ip = session.scalar(select(func.count()).select_from(VerificationCode).where(
        VerificationCode.corp_id == corp_id, VerificationCode.ip_hash == ip_hash,
        VerificationCode.sent_at > now - HOUR))
    if by_ip >= MAX_SENDS_PER_IP_HOUR:
        raise RateLimited("too many codes from this network; please try again in an hour", field="phone")


def _code_hash(visit_id: int, code: str) -> str:
    return pii.lookup_hash(f"{visit_id}:{code}", kind="otp")


def request_code(session: Session, *, token: str, key: str, phone: str, ip: str | None, consent_version: object,
                 now: dt.datetime | None = None, hook_client: httpx.Client | None = None,
                 provider: SmsProvider | None = None) -> GatedVisit:
    """The customer agreed to the privacy notice in force (`consent_version`, the version the page
    showed) and entered their phone: asks the firm (when the community wants it), then sends a code
    (when it wants SMS) or verifies at once (firm only). Returns the visit with its new status.
    Without the consent for the notice in force nothing is taken (field `consent`)."""
    from siyu.privacy import notices

    now = now or utcnow()
    community, visit = get_visit(session, token=token, key=key)
    if visit.status == "verified":
        return visit
    notice = notices.check_agreed(session, corp_id=community.corp_id, agreed_version=consent_version)
    phone = normalise_phone(phone)
    phone_h, ip_hash = phone_hash(phone), _ip_hash(ip)
    wants_firm = community.verify_by in ("firm", "both")
    # Every check that reads comes before the hook call, and nothing is written before it returns.
    # Every number is checked against the limits, a customer's or not: each check costs the same.
    if visit.phone_tries >= MAX_PHONES_PER_VISIT:
        raise RateLimited("too many numbers were tried on this page; please open the link again later",
                          field="phone")
    _check_send_limits(session, corp_id=community.corp_id, phone_h=phone_h, ip_hash=ip_hash, now=now)
    answer = None
    if wants_firm:
        hook = get_hook(session, corp_id=community.corp_id)
        if hook is None:
            raise Unavailable("verification is not set up yet; please try again later", field="phone")
        answer = ask_firm(hook, corp_id=community.corp_id, community_id=community.id, phone=phone,
                          client=hook_client)
    visit.phone_tries += 1
    visit.phone, visit.phone_hash = phone, phone_h
    if visit.notice_version != notice.version:
        _record_notice_consent(session, community=community, visit=visit, version=notice.version, now=now)
    visit.firm_customer_id = answer.firm_customer_id if answer is not None else None
    # Knowing a number is never enough: the one-time code proves the visitor holds it. A number the
    # firm does not know gets the same answer as a customer's (a code "on its way"), a code that is
    # never sent and that no entry matches: the page does not tell who is the firm's customer.
    not_customer = answer is not None and not answer.customer
    _send_code(session, community=community, visit=visit, phone=phone, ip_hash=ip_hash, now=now, provider=provider,
               decoy=not_customer)
    visit.status = "refused" if not_customer else "code_sent"
    session.flush()
    return visit


def _record_notice_consent(session: Session, *, community: GatedCommunity, visit: GatedVisit, version: int,
                           now: dt.datetime) -> None:
    """The visitor agreed to notice `version` before giving their phone: on the visit always, and in
    the consent ledger when the page knows who they are (a link sent to one customer)."""
    from siyu.privacy.service import record_consent

    visit.notice_version, visit.consented_at = version, now
    if visit.external_userid:
        record_consent(session, corp_id=community.corp_id, actor="h5", external_userid=visit.external_userid,
                       purpose="personal_info", granted=True, source="h5", at=now, notice_version=version)


def _send_code(session: Session, *, community: GatedCommunity, visit: GatedVisit, phone: str, ip_hash: str,
               now: dt.datetime, provider: SmsProvider | None, decoy: bool = False) -> None:
    """Sends a new code (the visit's earlier ones die). `decoy`: the same work and the same records,
    for a number the firm does not know, except that nothing is sent and the stored hash is of a
    secret no six digits match."""
    from siyu.compliance.service import prepare_outbound

    code = f"{secrets.randbelow(10**CODE_LENGTH):0{CODE_LENGTH}d}"
    # Compliance's outbound guard: the SMS sent is its final text; a "block" stops it, recorded in the
    # outbox as blocked (no text) and in the audit log with the findings (the phrases, never the phone).
    guarded = prepare_outbound(session, corp_id=community.corp_id, kind="service", text=CODE_TEXT.format(code=code))
    text = guarded.text
    if guarded.blocked:
        session.add(SmsOutbox(corp_id=community.corp_id, phone=phone, provider="", at=now, text="", state="blocked"))
        audit.record(session, corp_id=community.corp_id, actor="system", action="acquisition.sms_blocked",
                     target_type="gated_community", target_id=community.id,
                     detail={"findings": [f.match for f in guarded.findings], "summary": guarded.summary()})
        session.flush()
        raise Unavailable("the code message was stopped by compliance review; please tell the firm", field="phone")
    session.execute(update(VerificationCode).where(VerificationCode.visit_id == visit.id,
                                                   VerificationCode.used_at.is_(None),
                                                   VerificationCode.dead.is_(False)).values(dead=True))
    row = VerificationCode(corp_id=community.corp_id, visit_id=visit.id, phone_hash=phone_hash(phone),
                           ip_hash=ip_hash, code_hash=_code_hash(visit.id, secrets.token_hex(16) if decoy else code),
                           sent_at=now, expires_at=now + CODE_TTL)
    session.add(row)
    if decoy:
        session.flush()
        return
    provider = provider or sms_provider()
    settings = get_settings()
    outbox = SmsOutbox(corp_id=community.corp_id, phone=phone, provider=provider.name, at=now,
                       text=text if settings.sms_show_codes else "")
    session.add(outbox)
    try:
        provider.send(phone, text)
    except Exception as exc:  # the provider's own failure: the code is dead, the customer may retry
        log.warning("SMS provider %s failed: %s", provider.name, type(exc).__name__)
        row.dead, outbox.state = True, "failed"
        session.flush()
        raise Unavailable("the code could not be sent; please try again later", field="phone") from None
    session.flush()


def enter_code(session: Session, *, token: str, key: str, code: str, ip: str | None,
               now: dt.datetime | None = None) -> GatedVisit:
    """The customer entered the code: verified, or refused with what to do next. Wrong entries are
    counted in the caller's transaction even though this raises (the H5 page commits them)."""
    now = now or utcnow()
    community, visit = get_visit(session, token=token, key=key)
    if visit.status == "verified":
        return visit
    code = (code or "").strip() if isinstance(code, str) else ""
    code = unicodedata.normalize("NFKC", code)
    if not (len(code) == CODE_LENGTH and code.isascii() and code.isdigit()):
        raise InvalidInput("enter the 6-digit code from the SMS", field="code")
    ip_hash = _ip_hash(ip)
    wrong_by_ip = session.scalar(select(func.coalesce(func.sum(VerificationCode.wrong_entries), 0)).where(
        VerificationCode.corp_id == community.corp_id, VerificationCode.ip_hash == ip_hash,
        VerificationCode.last_wrong_at > now - HOUR))
    if wrong_by_ip >= MAX_WRONG_PER_IP_HOUR:
        raise RateLimited("too many wrong codes from this network; please try again in an hour", field="code")
    current = session.scalar(select(VerificationCode).where(VerificationCode.visit_id == visit.id)
                             .order_by(VerificationCode.id.desc()).limit(1))
    if current is None or current.used_at is not None:
        raise InvalidInput("ask for a code first", field="code")
    if current.dead:
        raise InvalidInput("this code was entered wrongly too often and no longer works; ask for a new one",
                           field="code")
    if now >= current.expires_at:
        raise InvalidInput("this code has expired; ask for a new one", field="code")
    if not hmac.compare_digest(current.code_hash, _code_hash(visit.id, code)):
        current.wrong_entries += 1
        current.last_wrong_at = now
        left = MAX_WRONG_PER_CODE - current.wrong_entries
        if left <= 0:
            current.dead = True
            if visit.status != "refused":  # the log keeps "not a customer"; the visitor sees the same
                visit.status = "failed"
            session.flush()
            raise InvalidInput("this code was entered wrongly too often and no longer works; ask for a new one",
                               field="code")
        session.flush()
        raise InvalidInput("the code is not right; %(n)s tries left", field="code", params={"n": left})
    current.used_at = now
    _verified(session, community=community, visit=visit, method="sms" if community.verify_by == "sms" else "both",
              now=now)
    return visit


def _verified(session: Session, *, community: GatedCommunity, visit: GatedVisit, method: str,
              now: dt.datetime) -> CustomerVerification:
    visit.status = "verified"
    record = CustomerVerification(corp_id=community.corp_id, community_id=community.id, visit_id=visit.id,
                                  phone_hash=visit.phone_hash, phone=visit.phone, method=method,
                                  external_userid=visit.external_userid, firm_customer_id=visit.firm_customer_id,
                                  at=now)
    session.add(record)
    session.flush()
    publish(session, "customer.verified",
            {"verification_id": record.id, "community_id": community.id, "method": method,
             "external_userid": visit.external_userid, "firm_customer_id": visit.firm_customer_id,
             "at": now.isoformat()},
            corp_id=community.corp_id, key=f"verification:{record.id}")
    return record


def join_way_qr(community: GatedCommunity) -> str | None:
    """The QR code of the group set's join way (群活码) this community hands out instead of an
    uploaded image (linked on the set's joining page, kept by the communities domain); None when
    there is none."""
    from sqlalchemy.orm import object_session

    from siyu import domain_module

    joinways = domain_module("communities", "joinways")
    session = object_session(community)
    if joinways is None or session is None or community.id is None:
        return None
    way = joinways.gate_join_way(session, corp_id=community.corp_id, gated_community_id=community.id)
    return way.qr_code if way is not None else None


def group_code_image(community: GatedCommunity) -> str:
    """The group QR for the verified page: the uploaded image as a data: address, or its URL."""
    if community.qr_image:
        return f"data:{community.qr_image_type};base64,{base64.b64encode(community.qr_image).decode()}"
    return community.qr_image_url
