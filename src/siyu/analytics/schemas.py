"""Pydantic shapes of the analytics API: the events the firm pushes. Money is integer fen (分); times
are ISO-8601 text with a UTC offset."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from siyu.analytics.service import FIRM_BATCH_MAX, MAX_SPEND_FEN

TIME_DOC = "ISO-8601 with a UTC offset, e.g. 2026-01-05T10:00:00+08:00 (stored in UTC)"


class FirmEventIn(BaseModel):
    """A reward paid (campaign.reward_paid), a coupon used (coupon.redeemed) or an order that matured
    (order.matured) of a customer known by the firm's customer id; idempotent by `event_id`."""

    model_config = ConfigDict(extra="forbid")
    event_id: str = Field(min_length=1, max_length=64, description="the firm's id of the event, unique per corp")
    type: Literal["campaign.reward_paid", "coupon.redeemed", "order.matured"]
    firm_customer_id: str = Field(min_length=1, max_length=64, description="the firm's customer id (linked)")
    occurred_at: str = Field(max_length=40, description=TIME_DOC)
    amount_fen: StrictInt | None = Field(None, gt=0, le=MAX_SPEND_FEN,
                                         description="integer fen; required for rewards and coupons")
    product_code: str | None = Field(None, min_length=1, max_length=64, description="required for order.matured")
    campaign: str | None = Field(None, min_length=1, max_length=64, description="the campaign's key")
    channel: str | None = Field(None, min_length=1, max_length=64,
                                description="the channel code's state; default: the channel the customer came by")


class FirmEventOut(BaseModel):
    event_id: str
    type: str
    firm_customer_id: str
    occurred_at: datetime
    amount_fen: int | None
    product_code: str | None
    campaign: str | None
    channel: str | None
    created: bool = Field(description="false when this event id was pushed before with the same body")


class FirmEventBatchIn(BaseModel):
    """Each event is checked by the service, so an error names its index and field."""

    model_config = ConfigDict(extra="forbid")
    items: list[dict[str, Any]] = Field(min_length=1, max_length=FIRM_BATCH_MAX, description="all stored, or none",
                                        json_schema_extra={"items": FirmEventIn.model_json_schema()})


class FirmEventBatchOut(BaseModel):
    items: list[FirmEventOut]
    created: int
