"""Pydantic shapes of the customers REST API. Names and remarks are masked unless the caller
asked for them in clear (which is audited)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

Stage = Literal["new", "activated", "invested", "reinvested", "dormant", "lost"]
FollowStatusOut = Literal["active", "deleted_by_staff", "lost", "transferred"]
EXTERNAL_USERID_PATTERN = r"^[A-Za-z0-9_\-]{1,64}$"
FIRM_CUSTOMER_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"


class FollowOut(BaseModel):
    """A follow relation: which member of staff has the customer, since when, through which channel."""

    wecom_userid: str
    staff_id: int | None = Field(description="the Siyu staff with this WeCom user id, when known")
    staff_name: str | None
    status: FollowStatusOut
    state: str | None = Field(description="the contact way's `state` (channel code) as WeCom sent it")
    add_time: datetime
    add_way: int | None = None
    ended_at: datetime | None = None
    remark: str = Field("", description="the advisor's remark for the customer, masked unless `unmask`")


class CustomerOut(BaseModel):
    external_userid: str
    name: str = Field(description="masked (张**) unless `unmask=true` was asked for (audited)")
    gender: int = Field(description="0 unknown, 1 male, 2 female (WeCom's codes)")
    stage: Stage
    firm_customer_id: str | None = Field(description="the firm's own customer id, once linked")
    first_added_at: datetime
    tags: list[str]
    follows: list[FollowOut]


class CustomerPageOut(BaseModel):
    items: list[CustomerOut]
    next_after: str | None = Field(description="pass as `after` for the next page; null on the last")


class RiskOut(BaseModel):
    level: str
    expires_at: datetime
    expired: bool


class CustomerDetailOut(CustomerOut):
    unionid: str | None
    lost_at: datetime | None
    risk: RiskOut | None = Field(description="the risk assessment in force (C1–C5), from compliance")


class LinkIn(BaseModel):
    firm_customer_id: str = Field(pattern=FIRM_CUSTOMER_ID_PATTERN, description="the firm's own customer id (客户号)")
