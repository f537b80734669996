"""Tables of the WeCom connector: state that every process calling WeCom must share.

Access tokens and rate-limit buckets live in the database, not in process memory: several
`siyu serve` and `siyu worker` processes call WeCom for the same corp, and WeCom counts their
calls (and issues their tokens) as one."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from siyu.db import Base, BigId, IdMixin, utcnow


class WecomAccessToken(IdMixin, Base):
    """The current access token of one (corp, secret): each WeCom app has its own secret and token.

    The secret itself is never stored, only its SHA-256, so rotating a secret starts a new row.
    The token is a bearer credential for two hours, so it is stored encrypted with the PII key
    (`siyu.pii.encrypt`, context "wecom_access_token"); `siyu.wecom.tokens` encrypts and decrypts."""

    __tablename__ = "wecom_access_token"
    __table_args__ = (UniqueConstraint("corp_id", "secret_sha256"),)

    corp_id: Mapped[str] = mapped_column(String(64))
    secret_sha256: Mapped[str] = mapped_column(String(64))
    access_token_encrypted: Mapped[str] = mapped_column(String(1024))
    expires_at: Mapped[dt.datetime]
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class WecomRateBucket(IdMixin, Base):
    """A token bucket per (corp, endpoint), shared by all processes.

    `tokens` is the fill at `updated_at`; the refill is computed on read. `blocked_until` is set
    when WeCom answered 45009 so that every process backs off, not only the one that was told."""

    __tablename__ = "wecom_rate_bucket"
    __table_args__ = (UniqueConstraint("corp_id", "endpoint"),)

    corp_id: Mapped[str] = mapped_column(String(64))
    endpoint: Mapped[str] = mapped_column(String(128))
    tokens: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    blocked_until: Mapped[dt.datetime | None]


class WecomInboxEvent(IdMixin, Base):
    """A callback event as WeCom sent it (decrypted plaintext), stored before anything acts on it.

    `natural_key` (from `siyu.wecom.events.WecomEvent.natural_key`) identifies the event across
    WeCom's retries and duplicates, so each event is stored, and handled, once; later deliveries
    only count up `deliveries`. Keyed by the WeCom corp id (ToUserName) rather than our corp row,
    so an event for a corp that is not (yet) configured is kept, not lost."""

    __tablename__ = "wecom_inbox_event"
    __table_args__ = (
        UniqueConstraint("wecom_corp_id", "natural_key"),
        # The dispatcher's query: events not handled yet, oldest first.
        Index("ix_wecom_inbox_event_unprocessed", "received_at", postgresql_where=text("processed_at IS NULL"),
              sqlite_where=text("processed_at IS NULL")),
    )

    wecom_corp_id: Mapped[str] = mapped_column(String(64))
    natural_key: Mapped[str] = mapped_column(String(80))
    event: Mapped[str] = mapped_column(String(64))
    change_type: Mapped[str] = mapped_column(String(64))
    create_time: Mapped[int] = mapped_column(BigInteger)  # WeCom's CreateTime (epoch seconds)
    plaintext: Mapped[str] = mapped_column(Text)
    deliveries: Mapped[int] = mapped_column(Integer, default=1)
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    processed_at: Mapped[dt.datetime | None]


class WecomCorpConfig(Base):
    """How Siyu talks to one corp's WeCom: its customer-contact secret, the callback token and
    EncodingAESKey of its callback URL, the API base URL, and the corp-wide default welcome.

    The WeCom corp id itself is `Corp.wecom_corp_id`. Secrets are encrypted with the PII key
    (`siyu.pii`, one context per column) and never shown again after they are saved."""

    __tablename__ = "wecom_corp_config"

    corp_id: Mapped[int] = mapped_column(BigId,
                                         ForeignKey("corp.id", ondelete="CASCADE"), primary_key=True)
    secret_encrypted: Mapped[str] = mapped_column(String(1024))
    token_encrypted: Mapped[str] = mapped_column(String(1024))
    aes_key_encrypted: Mapped[str] = mapped_column(String(1024))
    base_url: Mapped[str] = mapped_column(String(255))
    welcome_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    welcome_text: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class WecomOutbound(IdMixin, Base):
    """One outside effect sent to WeCom (a welcome message, a mass message, a transfer), recorded
    under its effect key *before* the call, so that no retry, duplicate event or crashed worker
    ever sends it twice.

    state: sending (claimed; the call is under way or its worker died mid-call), sent, failed
    (WeCom refused it: `retryable` when the request never took effect, e.g. 45009 or -1),
    unknown (the request may have reached WeCom but no answer came back: never repeated),
    blocked (compliance review stopped it), skipped (nothing to send), superseded (WeCom says it is
    no longer needed: 41051, the customer started chatting before the welcome)."""

    __tablename__ = "wecom_outbound"
    __table_args__ = (
        UniqueConstraint("corp_id", "effect_key"),
        Index("ix_wecom_outbound_corp_created", "corp_id", "created_at"),
    )

    corp_id: Mapped[int] = mapped_column(BigId,
                                         ForeignKey("corp.id", ondelete="CASCADE"))
    effect_key: Mapped[str] = mapped_column(String(200))
    endpoint: Mapped[str] = mapped_column(String(128))
    state: Mapped[str] = mapped_column(String(16))
    retryable: Mapped[bool] = mapped_column(Boolean, default=False)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    errcode: Mapped[int | None] = mapped_column(Integer)
    detail: Mapped[str] = mapped_column(String(500), default="")
    event_time: Mapped[dt.datetime | None]  # when the cause happened (e.g. the add), for latency
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[dt.datetime | None]
