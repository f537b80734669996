"""Tables of the firm integration domain (系统对接): orders and redemptions the firm's core systems
push (money in integer fen), phone lookup keys, and outbound webhooks (endpoints, deliveries and
every delivery attempt).

No personal data in clear: a phone is kept only as a keyed lookup hash, a webhook secret is
encrypted with the PII key, delivery payloads carry ids and masked names only."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from siyu.db import Base, BigId, IdMixin, TimestampMixin, utcnow
from siyu.pii import EncryptedString


class FirmOrder(IdMixin, TimestampMixin, Base):
    """An investment (申购/认购) or a redemption (赎回) of a customer, as the firm pushed it.

    Idempotent by the firm's order id within the corp and kind: `fields` keeps the normalised body
    so that a repeat can be compared field by field."""

    __tablename__ = "firm_order"
    __table_args__ = (
        UniqueConstraint("corp_id", "kind", "firm_order_id"),
        Index("ix_firm_order_customer", "customer_id", "product_code"),
    )

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))  # investment | redemption
    firm_order_id: Mapped[str] = mapped_column(String(64))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"))
    firm_customer_id: Mapped[str] = mapped_column(String(64))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    product_code: Mapped[str] = mapped_column(String(64))
    # The product's risk level (R1–R5) in the compliance catalogue when the order arrived, if listed.
    product_risk_level: Mapped[str | None] = mapped_column(String(2))
    occurred_at: Mapped[dt.datetime] = mapped_column()
    fields: Mapped[dict] = mapped_column(JSON, default=dict)


class FirmPhoneKey(IdMixin, TimestampMixin, Base):
    """A customer's phone as a keyed hash (never in clear), pushed with a KYC record, for lookups."""

    __tablename__ = "firm_phone_key"
    __table_args__ = (UniqueConstraint("corp_id", "phone_hash"),)

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"))
    phone_hash: Mapped[str] = mapped_column(String(64))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"), index=True)


class WebhookEndpoint(IdMixin, TimestampMixin, Base):
    """A URL of the firm that Siyu calls on customer events, signed with the endpoint's secret."""

    __tablename__ = "webhook_endpoint"
    __table_args__ = (Index("ix_webhook_endpoint_corp", "corp_id", "enabled"),)

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(String(500))
    events: Mapped[list] = mapped_column(JSON, default=list)
    secret: Mapped[str] = mapped_column(EncryptedString(context="webhook_endpoint.secret"))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by_staff_id: Mapped[int | None] = mapped_column(BigId)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class WebhookDelivery(IdMixin, TimestampMixin, Base):
    """One event for one endpoint. `delivery_uid` is the `X-Siyu-Delivery` header, the same on
    every attempt (and on a redelivery from the console), so the receiver can drop repeats."""

    __tablename__ = "webhook_delivery"
    __table_args__ = (
        UniqueConstraint("delivery_uid"),
        UniqueConstraint("endpoint_id", "source_key"),
        Index("ix_webhook_delivery_corp_created", "corp_id", "created_at", "id"),
    )

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"))
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoint.id", ondelete="CASCADE"))
    event: Mapped[str] = mapped_column(String(40))
    delivery_uid: Mapped[str] = mapped_column(String(40))
    source_key: Mapped[str] = mapped_column(String(120))  # the published event's job: one delivery per endpoint
    payload: Mapped[dict] = mapped_column(JSON, default=dict)
    state: Mapped[str] = mapped_column(String(16), default="pending")  # pending | delivered | dead
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    delivered_at: Mapped[dt.datetime | None] = mapped_column()


class WebhookAttempt(IdMixin, Base):
    """One POST of a delivery: the answer's status code (None: no answer), latency and error."""

    __tablename__ = "webhook_attempt"
    __table_args__ = (Index("ix_webhook_attempt_delivery", "delivery_id", "id"),)

    corp_id: Mapped[int] = mapped_column(ForeignKey("corp.id", ondelete="CASCADE"))
    delivery_id: Mapped[int] = mapped_column(ForeignKey("webhook_delivery.id", ondelete="CASCADE"))
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    status_code: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str] = mapped_column(String(300), default="")
