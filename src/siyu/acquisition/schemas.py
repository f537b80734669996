"""Pydantic shapes of the acquisition REST API (channel codes with their counters, personas,
keyword rules). Money in integer fen."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict


class CodeAdvisorOut(BaseModel):
    userid: str
    daily_cap: int  # 0: no cap
    adds_today: int


class CodeCountersOut(BaseModel):
    adds_today: int
    adds_total: int
    lost: int
    active: int
    cost_fen: int
    cost_per_add_fen: int | None


class ChannelCodeOut(BaseModel):
    id: int
    name: str
    channel: str
    campaign: str
    persona_id: int | None
    multi_advisor: bool
    state: str
    status: Literal["pending", "active", "failed", "expired", "deleted"] | str
    qr_url: str | None
    expires_at: dt.datetime | None
    created_at: dt.datetime
    counters: CodeCountersOut


class ChannelCodeDetailOut(ChannelCodeOut):
    advisors: list[CodeAdvisorOut]


class ChannelCodeList(BaseModel):
    items: list[ChannelCodeOut]


class PersonaOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: str
    display_name: str
    title: str
    years_experience: int
    avatar_url: str
    introduction: str
    is_active: bool


class PersonaList(BaseModel):
    items: list[PersonaOut]


class KeywordCountsOut(BaseModel):
    matched: int
    replied: int
    tasks: int
    cooldown: int
    blocked: int
    failed: int


class KeywordRuleOut(BaseModel):
    id: int
    name: str
    keyword: str
    match_mode: Literal["exact", "contains"] | str
    action: Literal["reply", "task"] | str
    reply_text: str
    attachments: list[dict]
    advisors: list[str]  # empty: every advisor
    cooldown_minutes: int
    priority: int
    enabled: bool
    updated_at: dt.datetime
    counts: KeywordCountsOut


class KeywordRuleList(BaseModel):
    items: list[KeywordRuleOut]
