"""Pydantic shapes of the firm integration API. Money is integer fen (分): a decimal, a string or a
boolean is refused, never rounded. Times are ISO-8601 text with a UTC offset."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from siyu.integration.service import BATCH_MAX, MAX_AMOUNT_FEN

TIME_DOC = "ISO-8601 with a UTC offset, e.g. 2026-01-05T10:00:00+08:00 (stored in UTC)"


class KycIn(BaseModel):
    """A risk assessment (C1–C5) of a customer known by `firm_customer_id` or `external_userid`."""

    model_config = ConfigDict(extra="forbid")
    firm_customer_id: str | None = Field(None, max_length=64, description="the firm's own customer id (linked)")
    external_userid: str | None = Field(None, max_length=64, description="WeCom's external_userid")
    level: str = Field(max_length=2, description="C1 (conservative) … C5 (aggressive)")
    source: str | None = Field(None, max_length=32, description="firm_kyc_api (default), questionnaire, "
                                                                "branch_import or manual")
    assessed_at: str | None = Field(None, max_length=40, description=TIME_DOC + "; default now")
    expires_at: str | None = Field(None, max_length=40, description=TIME_DOC + "; default one year after")
    reference: str | None = Field(None, max_length=200, description="the firm's reference of the assessment")
    phone: str | None = Field(None, max_length=20, description="the customer's mobile, kept only as a keyed hash "
                                                               "for lookups")


class KycOut(BaseModel):
    external_userid: str
    firm_customer_id: str | None
    level: str
    source: str
    assessed_at: datetime
    expires_at: datetime


class OrderIn(BaseModel):
    """An investment or a redemption; idempotent by `order_id`."""

    model_config = ConfigDict(extra="forbid")
    order_id: str = Field(min_length=1, max_length=64, description="the firm's order id, unique per kind")
    firm_customer_id: str = Field(min_length=1, max_length=64, description="the firm's customer id (linked)")
    amount_fen: StrictInt = Field(gt=0, le=MAX_AMOUNT_FEN, description="integer fen (分): 100 = 1 yuan")
    product_code: str = Field(min_length=1, max_length=64, description="the firm's product code")
    occurred_at: str = Field(max_length=40, description=TIME_DOC)


class OrderOut(BaseModel):
    order_id: str
    kind: str
    firm_customer_id: str
    amount_fen: int
    product_code: str
    product_risk_level: str | None = Field(description="R1–R5 when the product is in the compliance catalogue")
    occurred_at: datetime
    created: bool = Field(description="false when this order id was pushed before with the same body")


class OrderBatchIn(BaseModel):
    """Each record is checked by the service (so that an error names `items.<index>.<field>` and its
    index); the schema of a record is the single order's, written inline."""

    model_config = ConfigDict(extra="forbid")
    items: list[dict[str, Any]] = Field(min_length=1, max_length=BATCH_MAX, description="all stored, or none",
                                        json_schema_extra={"items": OrderIn.model_json_schema()})


class OrderBatchOut(BaseModel):
    items: list[OrderOut]
    created: int


class HoldingOut(BaseModel):
    product_code: str
    product_risk_level: str | None
    invested_fen: int
    redeemed_fen: int
    held_fen: int = Field(description="invested − redeemed, fen")


class CustomerLookupOut(BaseModel):
    external_userid: str
    firm_customer_id: str | None
    name: str = Field(description="masked (张**)")
    stage: str
    risk_level: str | None
    risk_expires_at: datetime | None
    risk_expired: bool
    holdings: list[HoldingOut]


class PhoneLookupIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    phone: str = Field(max_length=20, description="a mobile number pushed before with a KYC record")
